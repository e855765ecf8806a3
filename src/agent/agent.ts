import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentConfig, PoolConfig } from '../config/schema.js';
import { poolJobData, type PoolJobData } from '../queue/contracts.js';
import { keys as makeKeys, queueName, type Keys } from '../queue/keys.js';
import type { ControlClient } from './control-client.js';
import type { GuestImage, HostParts } from './host-parts.js';
import { destroyVm, runJob, type JobOutcome } from './run-job.js';
import { Slots } from './slots.js';

/**
 * The host agent: a BullMQ worker per pool this host serves, all sharing the host's slots.
 * Workers stop fetching while every slot is busy, so a job waits in the queue (where another
 * host can take it) rather than on this host. Before taking any job it removes whatever a
 * crashed run of itself left behind.
 */
export interface AgentDeps {
  agent: AgentConfig;
  prefix: string;
  /** BullMQ needs `maxRetriesPerRequest: null` on worker connections. */
  connection: Redis;
  redis: Redis;
  parts: HostParts;
  control: ControlClient;
  image: GuestImage;
  /** The config's pools (this host's are looked up by name: their egress). */
  pools: readonly PoolConfig[];
  logger: Logger;
  heartbeatMs?: number;
}

const MAX_REMINTS = 32;

const handedAnotherJob = (o: JobOutcome, data: PoolJobData): boolean =>
  o.kind === 'refused-at-start' && o.workflowJobId !== null && o.workflowJobId !== data.workflowJobId;

export class Agent {
  private readonly workers: Worker[] = [];
  private readonly slots: Slots;
  private readonly vms = new Map<string, number>();
  private readonly k: Keys;
  private heartbeat: NodeJS.Timeout | undefined;
  private draining = false;

  constructor(private readonly d: AgentDeps) {
    this.k = makeKeys(d.prefix);
    this.slots = new Slots(d.agent.slots, (busy) => void this.throttle(busy));
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
    return [...ids];
  }

  async start(): Promise<void> {
    await this.d.parts.caps.ensureSlice();
    await this.cleanLeftovers();
    for (const pool of this.d.agent.pools) {
      const w = new Worker(queueName(pool), (job: Job) => this.process(job), {
        connection: this.d.connection,
        prefix: this.d.prefix,
        concurrency: this.d.agent.slots,
        // A dead agent's job goes back to the queue after this long, and fails on a second stall.
        lockDuration: 15_000,
        stalledInterval: 10_000,
        maxStalledCount: 1,
      });
      w.on('error', (err) => this.d.logger.warn({ pool, err: err.message }, 'worker error'));
      this.workers.push(w);
    }
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat().catch(() => undefined), this.d.heartbeatMs ?? 5_000);
    this.d.logger.info({ role: this.d.agent.role, pools: this.d.agent.pools, slots: this.d.agent.slots }, 'agent started');
  }

  /** Stops taking jobs, lets running ones finish, then returns. */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.all(this.workers.map((w) => w.close()));
    clearInterval(this.heartbeat);
    await this.d.redis.del(this.hostKey()).catch(() => undefined);
  }

  private async process(job: Job): Promise<JobOutcome> {
    const parsed = poolJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job data does not match the contract: ${parsed.error.issues[0]?.path.join('.')}`);
    const data: PoolJobData = parsed.data;
    const slot = await this.slots.acquire();
    try {
      const deps = { parts: this.d.parts, control: this.d.control, image: this.d.image, agent: this.d.agent, pools: this.d.pools, logger: this.d.logger, onVm: (id: string, on: boolean) => this.track(id, on, data) };
      let outcome = await runJob(deps, data, slot);
      // The runner minted for this job was handed another one, which the gate refused: this job
      // is still owed a runner. A refused job fails (and its run is cancelled when the job itself
      // is refused), so every round leaves one queued job fewer for the next runner to be handed:
      // it ends, and the bound is only there for what nobody foresaw.
      for (let again = 0; again < MAX_REMINTS && handedAnotherJob(outcome, data); again++) {
        this.d.logger.info({ workflowJobId: data.workflowJobId, refusedJob: (outcome as { workflowJobId: number }).workflowJobId }, 'runner was handed a refused job; asking for another');
        await this.record(data, outcome);
        outcome = await runJob(deps, data, slot);
      }
      await this.record(data, outcome);
      if (outcome.kind === 'timeout') throw new UnrecoverableError(`job ${data.workflowJobId} passed its time cap of ${this.d.agent.vm.timeoutMinutes} min: VM killed`);
      if (outcome.kind === 'lost') throw new UnrecoverableError(`job ${data.workflowJobId}: VM lost`);
      // Its VM ran no job step: never "completed" in the queue.
      if (outcome.kind === 'refused-at-start') {
        throw new UnrecoverableError(`job ${data.workflowJobId}: its runner's job ${outcome.workflowJobId ?? '(unknown)'} was refused at start: ${outcome.reason}`);
      }
      // Its VM ended without its runner running a job: not run, never "completed".
      if (outcome.kind === 'not-run') throw new Error(`job ${data.workflowJobId}: its VM ended without running it: ${outcome.reason}`);
      return outcome;
    } finally {
      this.slots.release(slot);
    }
  }

  private track(vmId: string, running: boolean, data: PoolJobData): void {
    if (running) this.vms.set(vmId, data.workflowJobId);
    else this.vms.delete(vmId);
  }

  private async record(data: PoolJobData, o: JobOutcome): Promise<void> {
    const fields: Record<string, string | number> = { agentHost: this.d.agent.host, agentOutcome: o.kind, agentAt: Date.now() };
    if (o.kind === 'skipped' || o.kind === 'refused-at-start') fields.agentReason = o.reason;
    if (o.kind === 'refused-at-start') fields.agentRefusedJob = o.workflowJobId ?? '';
    if (o.kind !== 'skipped') fields.vmMs = o.vmMs;
    // The job's egress log (from the host's own table and forwarder, never the guest's word).
    if (o.kind !== 'skipped' && o.egress) fields.egress = JSON.stringify(o.egress);
    if (o.kind === 'ran') fields.vmExitCode = o.exitCode ?? -1;
    if (o.kind === 'not-run') fields.agentReason = o.reason;
    // A failed VM's console tail (bounded, secrets cut out by run-job).
    if ('consoleTail' in o && o.consoleTail) fields.consoleTail = o.consoleTail;
    await this.d.redis.hset(this.k.job(data.workflowJobId), fields);
  }

  private async throttle(busy: number): Promise<void> {
    if (this.draining) return;
    for (const w of this.workers) {
      if (busy >= this.slots.total && !w.isPaused()) w.pause(true);
      else if (busy < this.slots.total && w.isPaused()) w.resume();
    }
  }

  private hostKey(): string {
    return `${this.d.prefix}:host:${this.d.agent.host}`;
  }

  private async beat(): Promise<void> {
    const usage = await this.d.parts.caps.usage().catch((err: Error) => {
      this.d.logger.warn({ err: err.message }, 'heartbeat: the slice usage could not be read');
      return null;
    });
    const state = {
      host: this.d.agent.host,
      role: this.d.agent.role,
      pools: this.d.agent.pools,
      slots: this.slots.total,
      busy: this.slots.busy,
      vms: [...this.vms].map(([vmId, workflowJobId]) => ({ vmId, workflowJobId })),
      caps: usage,
      draining: this.draining,
      at: Date.now(),
    };
    await this.d.redis.set(this.hostKey(), JSON.stringify(state), 'EX', 30);
  }
}
