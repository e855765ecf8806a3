import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentConfig, PoolConfig } from '../config/schema.js';
import { poolJobData, type PoolJobData } from '../queue/contracts.js';
import { runnerName } from '../domain/mint-policy.js';
import type { JobReport } from '../jit/report.js';
import { queueName } from '../queue/keys.js';
import { ControlError, HostRevokedError, type ControlClient } from './control-client.js';
import type { GuestImage, HostParts } from './host-parts.js';
import { destroyVm, runJob, vmIdFor, type JobOutcome } from './run-job.js';
import { Slots, takesJobs } from './slots.js';
import { SliceUsage } from '../caps/slice-usage.js';
import type { AgentMetrics } from '../metrics/agent-metrics.js';

/**
 * The host agent: a BullMQ worker per pool this host serves, all sharing the host's slots.
 * Workers stop fetching while every slot is busy, so a job waits in the queue (where another
 * host can take it) rather than on this host. Before taking any job it removes whatever a
 * crashed run of itself left behind.
 */
export interface AgentDeps {
  agent: AgentConfig;
  prefix: string;
  /** BullMQ needs `maxRetriesPerRequest: null` on worker connections. Its pools' queues are all the agent touches in Redis. */
  connection: Redis;
  parts: HostParts;
  control: ControlClient;
  image: GuestImage;
  /** The config's pools (this host's are looked up by name: their egress). */
  pools: readonly PoolConfig[];
  logger: Logger;
  heartbeatMs?: number;
  /** The agent's /metrics (VMs, slots, boots, slice usage); its boots also go out with the heartbeat. */
  metrics?: AgentMetrics;
}

const MAX_REMINTS = 32;
const VM_UP_WAIT_MS = 3_000;

const handedAnotherJob = (o: JobOutcome, data: PoolJobData): boolean =>
  o.kind === 'refused-at-start' && o.workflowJobId !== null && o.workflowJobId !== data.workflowJobId;

export class Agent {
  private readonly workers: Worker[] = [];
  private readonly slots: Slots;
  private readonly vms = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | undefined;
  private draining = false;
  /** The operator drained this host (the control's heartbeat answer): no new jobs until undrained. */
  private held = false;
  /** The control refused this host's token as revoked: no new jobs, no heartbeats, for good (a new token needs a restart). */
  private revoked = false;
  private readonly slice: SliceUsage;
  /** Aborted when a drain passes its bound: every running job's VM is stopped (runJob's signal). */
  private readonly cutOff = new AbortController();

  constructor(private readonly d: AgentDeps) {
    this.slots = new Slots(d.agent.slots, (busy) => void this.throttle(busy));
    this.slice = new SliceUsage(d.parts.caps);
    d.metrics?.bind(() => ({ slots: { total: this.slots.total, busy: this.slots.busy }, vms: this.vms.size }));
  }

  /** Leftovers of an earlier run: VMs, links and cgroups this host's agent made. */
  async cleanLeftovers(): Promise<string[]> {
    const { driver, caps, net } = this.d.parts;
    const ids = new Set<string>([...(await driver.list()).map((v) => v.id), ...(await caps.listVmCgroups())]);
    for (const id of ids) await destroyVm(this.d.parts, id);
    // Tap names are hashes of VM ids: whatever is left has no VM any more.
    const taps = await net.listTaps();
    for (const tap of taps) await net.destroyTap(tap);
    if (ids.size + taps.length > 0) this.d.logger.warn({ vms: [...ids], taps }, 'removed leftovers of an earlier run');
    // Their jobs' VMs are gone: the control hears it (it removes their runners, frees their attempts).
    for (const id of ids) await this.reportLost(id);
    return [...ids];
  }

  async start(): Promise<void> {
    await this.d.parts.caps.ensureSlice();
    await this.cleanLeftovers();
    for (const pool of this.d.agent.pools) {
      const w = new Worker(queueName(pool), (job: Job, token?: string) => this.process(job, token), {
        connection: this.d.connection,
        prefix: this.d.prefix,
        concurrency: this.d.agent.slots,
        // A dead agent's job goes back to the queue after this long, and fails on a second stall.
        lockDuration: 15_000,
        stalledInterval: 10_000,
        maxStalledCount: 1,
      });
      // Revoked, Redis refuses this host's user on every reconnect: said once already (revoke()).
      w.on('error', (err) => (this.revoked ? this.d.logger.debug({ pool, err: err.message }, 'worker error (revoked)') : this.d.logger.warn({ pool, err: err.message }, 'worker error')));
      this.workers.push(w);
    }
    await this.beat().catch((err: Error) => this.onBeatFailed(err, true));
    if (!this.revoked) {
      this.heartbeat = setInterval(() => void this.beat().catch((err: Error) => this.onBeatFailed(err, false)), this.d.heartbeatMs ?? 5_000);
    }
    this.d.logger.info({ role: this.d.agent.role, pools: this.d.agent.pools, slots: this.d.agent.slots }, 'agent started');
  }

  /**
   * Stops taking jobs and lets running ones finish, for at most agent.drainTimeoutSeconds; past
   * that, stops their VMs (each such job goes back to its queue, or fails loudly on its last
   * attempt: classify) and returns once they are cleaned up.
   */
  async drain(): Promise<void> {
    this.draining = true;
    const closing = Promise.all(this.workers.map((w) => w.close()));
    // Revoked, Redis refuses this host's user: a worker's close waits for a connection that will
    // never be ready again. What must end first is ours to see: the jobs (and VMs) running here.
    const settled = this.revoked ? Promise.race([closing, this.slots.whenIdle()]) : closing;
    const boundSeconds = this.d.agent.drainTimeoutSeconds ?? 600;
    if (!(await settlesWithin(settled, boundSeconds * 1000))) {
      this.d.logger.warn({ drainTimeoutSeconds: boundSeconds, vms: [...this.vms.keys()] }, 'drain bound passed: stopping the VMs of the jobs still running');
      this.cutOff.abort();
      await settled;
    }
    clearInterval(this.heartbeat);
    if (!this.revoked) await this.d.control.goodbye().catch(() => undefined);
  }

  private onBeatFailed(err: Error, first: boolean): void {
    if (err instanceof HostRevokedError) return this.revoke(err);
    // The first beat is the start's check that the control knows this host: its failure stops the start.
    if (first) throw err;
    this.d.logger.warn({ err: err.message }, 'heartbeat: the control did not take it');
  }

  /**
   * Said once, then quiet: the workers close (jobs running now finish, and their reports are
   * refused; their queue entries go back for another host when their locks lapse) and the
   * heartbeat stops. The process stays up, idle, so that systemd does not restart it into the
   * same refusal every few seconds; the operator enrols the host again and restarts it.
   */
  private revoke(err: HostRevokedError): void {
    if (this.revoked) return;
    this.revoked = true;
    clearInterval(this.heartbeat);
    this.d.logger.error({ reason: err.message }, 'this host\'s credentials were revoked: taking no new jobs and sending no heartbeats; enrol it again (hangar host add) and restart the agent');
    for (const w of this.workers) void w.close().catch(() => undefined);
  }

  private async process(job: Job, token?: string): Promise<JobOutcome> {
    const parsed = poolJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job data does not match the contract: ${parsed.error.issues[0]?.path.join('.')}`);
    const data: PoolJobData = parsed.data;
    const slot = await this.slots.acquire();
    try {
      return settle(await this.runRounds(data, slot), this.d.agent.vm.timeoutMinutes);
    } catch (err) {
      if (this.cutOff.signal.aborted) {
        // Its VM was stopped by the drain bound (runJob's finally took it down): the control hears it lost.
        this.d.logger.warn({ workflowJobId: data.workflowJobId, err: (err as Error).message }, 'job cut off by the drain bound: its VM was stopped');
        await this.reportLost(vmIdFor(data), 'agent-drain-timeout');
      }
      if (err instanceof HostRevokedError) this.revoke(err);
      if ((err instanceof HostDrainedError || err instanceof HostRevokedError) && token) {
        // Taken just before the drain (or the revocation) reached this agent: back to the queue, no attempt spent, for another host.
        this.d.logger.info({ workflowJobId: data.workflowJobId, revoked: this.revoked }, 'host drained or revoked: job back to its queue');
        await job.moveToDelayed(Date.now() + 1_000, token);
        throw new DelayedError();
      }
      throw await this.classify(job, data, err as Error);
    } finally {
      this.slots.release(slot);
    }
  }

  /**
   * The runner minted for this job was handed another one, which the gate refused: this job
   * is still owed a runner. A refused job fails (and its run is cancelled when the job itself
   * is refused), so every round leaves one queued job fewer for the next runner to be handed:
   * it ends, and the bound is only there for what nobody foresaw.
   */
  private async runRounds(data: PoolJobData, slot: number): Promise<JobOutcome> {
    const deps = {
      parts: this.d.parts, control: this.d.control, image: this.d.image, agent: this.d.agent, pools: this.d.pools, logger: this.d.logger,
      onVm: (id: string, on: boolean) => this.track(id, on, data),
      onVmUp: (id: string, runnerName: string) => this.reportUp(data, id, runnerName),
      onBooted: (seconds: number) => this.d.metrics?.booted(seconds),
    };
    const signal = this.cutOff.signal;
    let outcome = await runJob(deps, data, slot, signal);
    for (let again = 0; again < MAX_REMINTS && handedAnotherJob(outcome, data); again++) {
      this.d.logger.info({ workflowJobId: data.workflowJobId, refusedJob: (outcome as { workflowJobId: number }).workflowJobId }, 'runner was handed a refused job; asking for another');
      await this.reportEnd(data, outcome);
      outcome = await runJob(deps, data, slot, signal);
    }
    await this.reportEnd(data, outcome);
    return outcome;
  }

  /**
   * Retryable (the control unreachable or failing, a VM that ran no job, anything unforeseen on
   * this host) goes back to the queue for another try after a pause, up to the job's attempts;
   * the last one, and anything fatal, fails the queue entry for good with its reason, and the
   * control hears that Hangar gave up on the job.
   */
  private async classify(job: Job, data: PoolJobData, err: Error): Promise<Error> {
    const fatal = err instanceof UnrecoverableError || (err instanceof ControlError && !err.retryable);
    const attempts = job.opts.attempts ?? 1;
    const last = job.attemptsMade + 1 >= attempts;
    const log = this.d.logger.child({ workflowJobId: data.workflowJobId, attempt: job.attemptsMade + 1, attempts });
    if (!fatal && !last) {
      log.warn({ err: err.message }, 'job will be tried again');
      return err;
    }
    const reason = fatal ? err.message : `gave up after ${attempts} attempts: ${err.message}`;
    log.error({ reason }, 'job failed');
    if (!(err instanceof NoRunnerError)) {
      await this.d.control.report(data.workflowJobId, { kind: 'failed', reason: reason.slice(0, 500), attempts: job.attemptsMade + 1 })
        .catch((e: Error) => log.warn({ err: e.message }, 'the control did not take the failure report'));
    }
    return err instanceof UnrecoverableError ? err : new UnrecoverableError(reason);
  }

  private async reportLost(vmId: string, reason: 'agent-restarted' | 'agent-drain-timeout' = 'agent-restarted'): Promise<void> {
    const m = /^wj-(\d+)-(\d+)$/.exec(vmId);
    if (!m) return;
    const [workflowJobId, attempt] = [Number(m[1]), Number(m[2])];
    const report: JobReport = { kind: 'vm-ended', end: 'lost', vmId, runnerName: runnerName(this.d.agent.host, workflowJobId, attempt), vmMs: 0, reason };
    await this.d.control.report(workflowJobId, report).catch((err: Error) => this.d.logger.warn({ vmId, err: err.message }, 'the control did not take the report of a lost VM'));
  }

  private track(vmId: string, running: boolean, data: PoolJobData): void {
    if (running) this.vms.set(vmId, data.workflowJobId);
    else this.vms.delete(vmId);
  }

  /** The guest waits for its config on this: at most VM_UP_WAIT_MS, the report goes on behind. */
  private async reportUp(data: PoolJobData, vmId: string, runnerName: string): Promise<void> {
    const sent = this.d.control.report(data.workflowJobId, { kind: 'vm-up', vmId, runnerName })
      .catch((err: Error) => this.d.logger.warn({ workflowJobId: data.workflowJobId, err: err.message }, 'the control did not take the vm-up report'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([sent, new Promise((res) => (timer = setTimeout(res, VM_UP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** How the VM ended, to the control (its phase moves there). Skipped: no VM ran. */
  private async reportEnd(data: PoolJobData, o: JobOutcome): Promise<void> {
    if (o.kind === 'skipped') return;
    const report: JobReport = {
      kind: 'vm-ended',
      end: o.kind,
      vmId: o.vmId,
      runnerName: o.runnerName,
      vmMs: o.vmMs,
      ...(o.kind === 'ran' ? { exitCode: o.exitCode } : {}),
      ...(o.kind === 'refused-at-start' ? { reason: o.reason, startedJob: o.workflowJobId } : {}),
      ...(o.kind === 'not-run' ? { reason: o.reason } : {}),
      // A failed VM's console tail (bounded, secrets cut out by run-job).
      ...('consoleTail' in o && o.consoleTail ? { consoleTail: o.consoleTail } : {}),
      ...(o.egress ? { egress: o.egress } : {}),
    };
    await this.d.control.report(data.workflowJobId, report).catch((err: Error) =>
      this.d.logger.error({ workflowJobId: data.workflowJobId, end: o.kind, err: err.message }, 'the control did not take the report of a VM\'s end'),
    );
  }

  private async throttle(busy: number): Promise<void> {
    if (this.draining || this.revoked) return;
    const take = takesJobs(busy, this.slots.total, this.held);
    for (const w of this.workers) {
      if (!take && !w.isPaused()) w.pause(true);
      else if (take && w.isPaused()) w.resume();
    }
  }

  private async beat(): Promise<void> {
    const usage = await this.slice.sample().catch((err: Error) => {
      this.d.logger.warn({ err: err.message }, 'heartbeat: the slice usage could not be read');
      return null;
    });
    this.d.metrics?.sampled(usage);
    const { driver } = this.d.parts;
    const answer = await this.d.control.heartbeat({
      slots: this.slots.total,
      busy: this.slots.busy,
      vms: [...this.vms].map(([vmId, workflowJobId]) => ({ vmId, workflowJobId })),
      usage,
      driver: driver.name,
      accel: driver.accelerator?.() ?? null,
      ...(this.d.metrics ? { boots: this.d.metrics.boots } : {}),
      draining: this.draining || this.held,
    });
    if (answer.drain !== this.held) {
      this.held = answer.drain;
      this.d.logger.info({}, this.held ? 'drained by the operator: taking no new jobs' : 'undrained by the operator: taking jobs again');
      await this.throttle(this.slots.busy);
    }
  }
}

/** Whether `p` settles within `ms` (it goes on either way). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** No runner for this job: the control refused one (its phase says why) or another host holds it. */
class NoRunnerError extends UnrecoverableError {}

/** The control refused a runner because the operator drained this host: the job goes back to its queue. */
export class HostDrainedError extends Error {}

/**
 * A queue entry completes only when its VM ran a job; every other end fails it, loudly, with its
 * reason: nothing reads "completed" that did not run.
 */
export function settle(outcome: JobOutcome, timeoutMinutes: number): JobOutcome {
  switch (outcome.kind) {
    case 'ran':
      return outcome;
    case 'skipped':
      if (outcome.reason === 'host-drained') throw new HostDrainedError('the operator drained this host');
      throw new NoRunnerError(`no runner for this job: ${outcome.reason}`);
    case 'timeout':
      throw new UnrecoverableError(`passed its time cap of ${timeoutMinutes} min: VM killed`);
    case 'refused-at-start':
      throw new UnrecoverableError(`its runner's job ${outcome.workflowJobId ?? '(unknown)'} was refused at start: ${outcome.reason}`);
    case 'lost':
      throw new Error(`its VM ${outcome.vmId} was lost`);
    // Its VM ended without its runner running a job: transient (tried again), never "completed".
    case 'not-run':
      throw new Error(`its VM ended without running it: ${outcome.reason}`);
  }
}
