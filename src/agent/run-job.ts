import type { Logger } from 'pino';
import { vmMemoryMaxBytes } from '../domain/caps-fit.js';
import type { AgentConfig } from '../config/schema.js';
import type { PoolJobData } from '../queue/contracts.js';
import type { VmExit } from '../vm/driver.js';
import type { ControlClient } from './control-client.js';
import { tapName } from '../net/addressing.js';
import type { Tap } from '../net/host-network.js';
import type { GuestImage, HostParts } from './host-parts.js';
import { openMetadataEndpoint, type MetadataEndpoint } from './metadata.js';
import type { AttachedVm, EgressRecord } from './guest-network.js';
import type { PoolConfig } from '../config/schema.js';

/**
 * One job's life on this host: ask the control for a runner, boot a VM holding it, wait for the
 * VM to exit or hit its time cap, and destroy everything it had — whatever happened.
 */
export type JobOutcome =
  | { kind: 'ran'; exitCode: number | null; vmId: string; runnerName: string; vmMs: number; egress?: EgressRecord }
  | { kind: 'timeout'; vmId: string; runnerName: string; vmMs: number; egress?: EgressRecord }
  | { kind: 'lost'; vmId: string; runnerName: string; vmMs: number; egress?: EgressRecord }
  /**
   * The gate refused the job GitHub gave this runner (`workflowJobId`: which one, when GitHub
   * showed it; it need not be the job the runner was minted for).
   */
  | { kind: 'refused-at-start'; reason: string; workflowJobId: number | null; vmId: string; runnerName: string; vmMs: number; egress?: EgressRecord }
  | { kind: 'skipped'; reason: string };

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
  /** Called once the VM is up (with its runner: the agent reports it) and once it is gone. */
  onVm?: (vmId: string, running: boolean, runnerName?: string) => void;
}

/** The VM's name derives from the job attempt, so a retried job finds (and replaces) its VM. */
export const vmIdFor = (job: Pick<PoolJobData, 'workflowJobId' | 'runAttempt'>): string => `wj-${job.workflowJobId}-${job.runAttempt}`;

export async function runJob(deps: RunJobDeps, job: PoolJobData, slot: number, signal?: AbortSignal): Promise<JobOutcome> {
  const vmId = vmIdFor(job);
  const log = deps.logger.child({ workflowJobId: job.workflowJobId, pool: job.pool, vmId });
  const jit = await deps.control.requestRunner(job.pool, job.workflowJobId, signal);
  if (jit.kind === 'refused') {
    log.info({ reason: jit.reason }, 'job skipped: runner refused');
    return { kind: 'skipped', reason: jit.reason };
  }
  if (jit.kind === 'busy') {
    log.warn({ runnerName: jit.runnerName }, 'job skipped: its runner is already busy elsewhere');
    return { kind: 'skipped', reason: 'runner-busy' };
  }
  const { parts, agent } = deps;
  const started = Date.now();
  let meta: MetadataEndpoint | undefined;
  let attached: AttachedVm | undefined;
  let egress: EgressRecord | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  try {
    // A VM of this job attempt left by a worker that died is never run beside a new one.
    await destroyVm(parts, vmId);
    const cgroup = await parts.caps.createVmCgroup(vmId, { memoryMaxBytes: vmMemoryMaxBytes(agent.vm.memoryMiB, agent.caps.overheadMiB) });
    const link = await parts.net.createTap({ vmId, index: slot, ...(agent.vm.runAs ? { user: agent.vm.runAs } : {}) });
    const pool = deps.pools.find((p) => p.name === job.pool);
    if (!pool) throw new Error(`job ${job.workflowJobId}: pool ${job.pool} is not in this host's config`);
    // Isolation first: the tap speaks only once the table knows it, and the guest's resolver is
    // its own forwarder on the gateway.
    if (parts.guestNet) attached = await parts.guestNet.attach(vmId, link, pool);
    const dns = parts.guestNet ? [link.hostIp] : link.dns;
    const port = agent.network.metadataPort;
    // The gate: the runner's job-started hook asks here; the answer comes from the control.
    meta = await openMetadataEndpoint({
      hostIp: link.hostIp, guestIp: link.guestIp, port, logger: log,
      gate: (hints) => deps.control.jobStarted(jit.runnerName, hints),
    });
    void meta.asked.then((a) => {
      if (a.decision === 'allow') return log.info({ runnerName: jit.runnerName, startedJob: a.workflowJobId }, 'gate: job allowed at start');
      log.warn({ runnerName: jit.runnerName, reason: a.reason, startedJob: a.workflowJobId }, 'gate: job refused at start');
      // The guest fails the job itself; should it not power off, it does not get to run anything.
      killTimer = setTimeout(() => void parts.driver.destroy(vmId).catch(() => undefined), REFUSED_VM_GRACE_MS);
    });
    await parts.driver.create(
      {
        id: vmId,
        ...deps.image,
        memoryMiB: agent.vm.memoryMiB,
        vcpus: agent.vm.vcpus,
        guestFiles: { jit: jit.encodedJitConfig, net: netFile(link, dns, `http://${link.hostIp}:${port}`) },
        network: { tap: link.tap, mac: link.mac },
        cgroupProcsFiles: cgroup.procsFiles,
        timeoutMs: agent.vm.timeoutMinutes * 60_000,
        consoleLimitBytes: agent.vm.consoleLimitBytes,
      },
      signal,
    );
    deps.onVm?.(vmId, true, jit.runnerName);
    log.info({ runnerName: jit.runnerName, slot }, 'vm started');
    const exit: VmExit = await parts.driver.wait(vmId, signal);
    const vmMs = Date.now() - started;
    log.info({ exit, vmMs }, 'vm ended');
    egress = await attached?.detach();
    attached = undefined;
    const ran = { vmId, runnerName: jit.runnerName, vmMs, ...(egress ? { egress } : {}) };
    const gate = meta.answer;
    if (gate?.decision === 'deny') return { kind: 'refused-at-start', reason: gate.reason, workflowJobId: gate.workflowJobId, ...ran };
    if (exit.kind === 'exited') return { kind: 'ran', exitCode: exit.code, ...ran };
    return { kind: exit.kind, ...ran };
  } finally {
    clearTimeout(killTimer);
    deps.onVm?.(vmId, false);
    await attached?.detach();
    await meta?.close().catch(() => undefined);
    await destroyVm(parts, vmId).catch((err: Error) => log.error({ err: err.message }, 'vm cleanup failed'));
  }
}

/** VM, network link and cgroup of one VM id; each step idempotent. */
export async function destroyVm(parts: HostParts, vmId: string): Promise<void> {
  await parts.driver.destroy(vmId);
  await parts.net.destroyTap(tapName(vmId));
  await parts.caps.removeVmCgroup(vmId);
}

/** `KEY=value` lines the guest's /init reads (no secret in here); META is the metadata endpoint. */
function netFile(l: Tap, dns: readonly string[], meta: string): string {
  return `IP=${l.guestIp}/${l.prefixLen}\nGW=${l.gateway}\nDNS=${dns.join(',')}\nMTU=${l.mtu}\nMETA=${meta}\n`;
}
