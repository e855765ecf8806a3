import type { Logger } from 'pino';
import { vmMemoryMaxBytes } from '../domain/caps-fit.js';
import type { AgentConfig } from '../config/schema.js';
import type { PoolJobData } from '../queue/contracts.js';
import type { VmExit } from '../vm/driver.js';
import type { ControlClient } from './control-client.js';
import { tapName } from '../net/addressing.js';
import type { Tap } from '../net/host-network.js';
import { readConsoleTail } from './console-tail.js';
import type { GuestImage, HostParts } from './host-parts.js';
import { JitHandover } from './jit-handover.js';
import { openMetadataEndpoint, type GateHints, type GateReply, type MetadataEndpoint } from './metadata.js';
import type { AttachedVm, EgressRecord } from './guest-network.js';
import type { PoolConfig } from '../config/schema.js';

/**
 * One job's life on this host: ask the control for a runner and, side by side, boot a VM (its
 * spec carries no job data); hand the runner's JIT config to the guest when it asks the VM's
 * metadata endpoint; wait for the VM to exit or hit its time cap; destroy everything it had —
 * whatever happened. `consoleTail` (the console's last 8 KiB, secrets cut out) comes with every
 * outcome of a VM that failed.
 */
interface VmRan { vmId: string; runnerName: string; vmMs: number; egress?: EgressRecord }
export type JobOutcome =
  | (VmRan & { kind: 'ran'; exitCode: number | null; consoleTail?: string })
  | (VmRan & { kind: 'timeout'; consoleTail: string })
  | (VmRan & { kind: 'lost'; consoleTail: string })
  /**
   * The VM ended and its runner never started a job (the gate was never asked): the guest never
   * fetched its JIT config (it did not boot, or did not reach its gateway), or it fetched it and
   * no job started (e.g. the runner could not reach GitHub). The job was not run: never "completed".
   */
  | (VmRan & { kind: 'not-run'; reason: NotRunReason; consoleTail: string })
  /**
   * The gate refused the job GitHub gave this runner (`workflowJobId`: which one, when GitHub
   * showed it; it need not be the job the runner was minted for).
   */
  | (VmRan & { kind: 'refused-at-start'; reason: string; workflowJobId: number | null })
  | { kind: 'skipped'; reason: string };

export type NotRunReason = 'jit-not-fetched' | 'runner-never-started-a-job';

/** After a refusal the guest's runner fails its job and powers off; past this its VM is killed. */
export const REFUSED_VM_GRACE_MS = 60_000;

export interface RunJobDeps {
  parts: HostParts;
  control: ControlClient;
  image: GuestImage;
  agent: AgentConfig;
  /** The pools this host serves (their egress). */
  pools: readonly PoolConfig[];
  logger: Logger;
  /** Called once the VM is up: the agent tracks it for heartbeats. */
  onVm?: (vmId: string, running: boolean) => void;
  /**
   * The VM is up and its runner minted: the agent reports it to the control, before the guest
   * gets its config (so the job's moves keep their order: minted, vm-up, then the gate). Must
   * settle, bounded; a report that fails does not hold the job up.
   */
  onVmUp?: (vmId: string, runnerName: string) => Promise<void>;
  /** The guest booted: its first request to the metadata endpoint, this long after its VM was created. */
  onBooted?: (seconds: number) => void;
}

/** The VM's name derives from the job attempt, so a retried job finds (and replaces) its VM. */
export const vmIdFor = (job: Pick<PoolJobData, 'workflowJobId' | 'runAttempt'>): string => `wj-${job.workflowJobId}-${job.runAttempt}`;

/** What the control said, settled: never rejects (a rejection is kept as `failed`). */
type Mint =
  | { kind: 'minted'; runnerName: string; at: number }
  | { kind: 'refused'; reason: string }
  | { kind: 'busy'; runnerName: string }
  | { kind: 'failed'; error: unknown };
interface MintCall { readonly result: Mint | null; done: Promise<Mint> }

/** What the `finally` of runJob must take down, filled in as it is made. */
interface Held { meta?: MetadataEndpoint; attached?: AttachedVm; killTimer?: NodeJS.Timeout; secret?: string }

export async function runJob(deps: RunJobDeps, job: PoolJobData, slot: number, signal?: AbortSignal): Promise<JobOutcome> {
  const vmId = vmIdFor(job);
  const log = deps.logger.child({ workflowJobId: job.workflowJobId, pool: job.pool, vmId });
  const started = Date.now();
  const jit = new JitHandover();
  const held: Held = {};
  const mint = startMint(deps, job, jit, held, signal);
  // A VM of this job attempt is still here: a worker of this agent that BullMQ thought stalled
  // may still run it. The control decides first (busy: its runner has a job; leave it alone),
  // as before mint and boot ran side by side.
  if ((await deps.parts.caps.listVmCgroups()).includes(vmId)) {
    const first = await mint.done;
    if (first.kind !== 'minted') return notMinted(first, log);
  }
  try {
    return await bootAndWait(deps, { job, slot, vmId, log, started, jit, mint, held }, signal);
  } finally {
    jit.withhold('vm-gone');
    clearTimeout(held.killTimer);
    deps.onVm?.(vmId, false);
    await held.attached?.detach();
    await held.meta?.close().catch(() => undefined);
    await destroyVm(deps.parts, vmId).catch((err: Error) => log.error({ err: err.message }, 'vm cleanup failed'));
  }
}

interface JobRun {
  job: PoolJobData; slot: number; vmId: string; log: Logger; started: number; jit: JitHandover; mint: MintCall; held: Held;
}

async function bootAndWait(deps: RunJobDeps, r: JobRun, signal?: AbortSignal): Promise<JobOutcome> {
  const { parts, agent } = deps;
  const { vmId, log, held } = r;
  // A VM of this job attempt left by a worker that died is never run beside a new one.
  await destroyVm(parts, vmId);
  const cgroup = await parts.caps.createVmCgroup(vmId, { memoryMaxBytes: vmMemoryMaxBytes(agent.vm.memoryMiB, agent.caps.overheadMiB) });
  const link = await parts.net.createTap({ vmId, index: r.slot, ...(agent.vm.runAs ? { user: agent.vm.runAs } : {}) });
  const pool = deps.pools.find((p) => p.name === r.job.pool);
  if (!pool) throw new Error(`job ${r.job.workflowJobId}: pool ${r.job.pool} is not in this host's config`);
  // Isolation first: the tap speaks only once the table knows it, and the guest's resolver is
  // its own forwarder on the gateway.
  if (parts.guestNet) held.attached = await parts.guestNet.attach(vmId, link, pool);
  const dns = parts.guestNet ? [link.hostIp] : link.dns;
  const port = agent.network.metadataPort;
  // Nothing to boot for: the mint came back refused while the VM's network was being made.
  if (r.mint.result && r.mint.result.kind !== 'minted') return notMinted(r.mint.result, log);
  // The guest asks here for its JIT config, and its runner's job-started hook for the gate.
  held.meta = await openMetadataEndpoint({
    hostIp: link.hostIp, guestIp: link.guestIp, port, logger: log, jit: r.jit,
    gate: (hints) => askGate(deps, r.mint, hints),
  });
  watchGate(deps, r, held.meta);
  const createAt = Date.now();
  const vm = await parts.driver.create(
    {
      id: vmId,
      ...deps.image,
      memoryMiB: agent.vm.memoryMiB,
      vcpus: agent.vm.vcpus,
      guestFiles: { net: netFile(link, dns, `http://${link.hostIp}:${port}`, deps.agent.gateTimeoutSeconds) },
      network: { tap: link.tap, mac: link.mac },
      cgroupProcsFiles: cgroup.procsFiles,
      timeoutMs: agent.vm.timeoutMinutes * 60_000,
      consoleLimitBytes: agent.vm.consoleLimitBytes,
    },
    signal,
  );
  deps.onVm?.(vmId, true);
  const minted = await r.mint.done;
  if (minted.kind !== 'minted') return notMinted(minted, log);
  log.info({ runnerName: minted.runnerName, slot: r.slot }, 'vm started');
  await deps.onVmUp?.(vmId, minted.runnerName);
  if (held.secret) r.jit.offer(held.secret);
  void r.jit.taken.then(() => {
    if (r.jit.askedAt !== null) deps.onBooted?.(Math.max(0, r.jit.askedAt - createAt) / 1000);
  });
  void r.jit.taken.then(() => log.info({
    runnerName: minted.runnerName, startedAt: r.started, mintMs: minted.at - r.started, createMs: createAt - r.started,
    askedMs: (r.jit.askedAt ?? NaN) - r.started, handedMs: (r.jit.handedAt ?? NaN) - r.started,
  }, 'jit config handed to the guest'));
  const exit: VmExit = await parts.driver.wait(vmId, signal);
  const vmMs = Date.now() - r.started;
  log.info({ exit, vmMs }, 'vm ended');
  const egress = await held.attached?.detach();
  held.attached = undefined;
  const ran: VmRan = { vmId, runnerName: minted.runnerName, vmMs, ...(egress ? { egress } : {}) };
  return outcomeOf(exit, ran, r, () => readConsoleTail(vm.consoleLog, held.secret ? [held.secret] : []));
}

/** What the VM's end means: the gate's answer (or its absence) first, then how it ended. */
async function outcomeOf(exit: VmExit, ran: VmRan, r: JobRun, tail: () => Promise<string>): Promise<JobOutcome> {
  const gate = r.held.meta?.answer ?? null;
  if (gate?.decision === 'deny') return { kind: 'refused-at-start', reason: gate.reason, workflowJobId: gate.workflowJobId, ...ran };
  if (exit.kind !== 'exited') return { kind: exit.kind, ...ran, consoleTail: await tail() };
  if (gate === null) {
    const reason: NotRunReason = r.jit.handedAt === null ? 'jit-not-fetched' : 'runner-never-started-a-job';
    r.log.warn({ reason, exitCode: exit.code }, 'vm ended without its runner running a job');
    return { kind: 'not-run', reason, ...ran, consoleTail: await tail() };
  }
  return { kind: 'ran', exitCode: exit.code, ...ran, ...(exit.code !== 0 ? { consoleTail: await tail() } : {}) };
}

/**
 * The mint, started at once and settled into a value. A minted config goes straight to the
 * handover (the guest takes it when it asks); only the runner's name stays in the result. The
 * config is also kept in `held.secret` until the VM is gone, only to cut it out of the console tail.
 */
function startMint(deps: RunJobDeps, job: PoolJobData, jit: JitHandover, held: Held, signal?: AbortSignal): MintCall {
  let result: Mint | null = null;
  const done = deps.control.requestRunner(job.pool, job.workflowJobId, signal).then(
    (a): Mint => {
      if (a.kind !== 'minted') {
        jit.withhold(a.kind === 'refused' ? a.reason : 'runner-busy');
        return a;
      }
      // Offered once the VM is up and reported (bootAndWait); until then the guest's ask waits.
      held.secret = a.encodedJitConfig;
      return { kind: 'minted', runnerName: a.runnerName, at: Date.now() };
    },
    (error: unknown): Mint => {
      jit.withhold('mint-failed');
      return { kind: 'failed', error };
    },
  ).then((m) => (result = m));
  return { get result() { return result; }, done };
}

/** A refused or busy mint is a skipped job, as before; a failed one throws its error. */
function notMinted(m: Exclude<Mint, { kind: 'minted' }>, log: Logger): JobOutcome {
  if (m.kind === 'failed') throw m.error;
  if (m.kind === 'refused') {
    log.info({ reason: m.reason }, 'job skipped: runner refused');
    return { kind: 'skipped', reason: m.reason };
  }
  log.warn({ runnerName: m.runnerName }, 'job skipped: its runner is already busy elsewhere');
  return { kind: 'skipped', reason: 'runner-busy' };
}

/** The gate names the runner minted for this VM; a guest cannot ask before it has its config. */
async function askGate(deps: RunJobDeps, mint: MintCall, hints: GateHints): Promise<GateReply> {
  const m = mint.result;
  if (m?.kind !== 'minted') return { decision: 'deny', reason: 'no-runner', message: 'this VM has no runner', workflowJobId: null };
  return deps.control.jobStarted(m.runnerName, hints, deps.agent.gateTimeoutSeconds * 1000);
}

function watchGate(deps: RunJobDeps, r: JobRun, meta: MetadataEndpoint): void {
  void meta.asked.then((a) => {
    const runnerName = r.mint.result?.kind === 'minted' ? r.mint.result.runnerName : null;
    if (a.decision === 'allow') return r.log.info({ runnerName, startedJob: a.workflowJobId }, 'gate: job allowed at start');
    r.log.warn({ runnerName, reason: a.reason, startedJob: a.workflowJobId }, 'gate: job refused at start');
    // The guest fails the job itself; should it not power off, it does not get to run anything.
    r.held.killTimer = setTimeout(() => void deps.parts.driver.destroy(r.vmId).catch(() => undefined), REFUSED_VM_GRACE_MS);
  });
}

/** VM, network link and cgroup of one VM id; each step idempotent. */
export async function destroyVm(parts: HostParts, vmId: string): Promise<void> {
  await parts.driver.destroy(vmId);
  await parts.net.destroyTap(tapName(vmId));
  await parts.caps.removeVmCgroup(vmId);
}

/**
 * `KEY=value` lines the guest's /init reads (no secret in here); META is the metadata endpoint,
 * GATE how long the agent waits for the control at the job-start gate (the hook waits longer).
 */
function netFile(l: Tap, dns: readonly string[], meta: string, gateSeconds: number): string {
  return `IP=${l.guestIp}/${l.prefixLen}\nGW=${l.gateway}\nDNS=${dns.join(',')}\nMTU=${l.mtu}\nMETA=${meta}\nGATE=${gateSeconds}\n`;
}
