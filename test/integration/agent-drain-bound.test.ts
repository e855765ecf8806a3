import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import type { ControlClient } from '../../src/agent/control-client.js';
import type { HostParts } from '../../src/agent/host-parts.js';
import type { AgentConfig, PoolConfig } from '../../src/config/schema.js';
import type { JobReport } from '../../src/jit/report.js';
import { queueName } from '../../src/queue/keys.js';
import { DriverError } from '../../src/vm/errors.js';
import type { VmExit, VmSpec } from '../../src/vm/driver.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The bound on a stopping agent's drain (agent.drainTimeoutSeconds): a real Agent, its BullMQ
 * workers and the run's Redis, the queue entries and their states real. Stubbed, and only
 * these: the VM driver (a "VM" is a promise that ends when the agent destroys it or when the
 * test powers it off; no QEMU), caps and the host network (no root), and the control client
 * (it mints a runner and records the reports; what the control does with a lost VM's report is
 * the job-phase table's, test/unit/job-phase.test.ts). What is under test is the agent: that it waits for a running
 * job within the bound, and past it stops the VM, reports it lost, and the queue entry goes
 * back for another try (or fails loudly on its last attempt).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FakeVm { running: boolean; destroyed: boolean; exitedByItself: boolean; end: (exit: VmExit) => void; ended: Promise<VmExit> }

function fakeHost() {
  const vms = new Map<string, FakeVm>();
  const consoleDir = mkdtempSync(join(tmpdir(), 'hangar-drain-'));
  const driver = {
    name: 'fake',
    async create(spec: VmSpec) {
      let end!: (exit: VmExit) => void;
      const ended = new Promise<VmExit>((r) => (end = r));
      vms.set(spec.id, { running: true, destroyed: false, exitedByItself: false, end, ended });
      return { id: spec.id, pid: null, consoleLog: join(consoleDir, `${spec.id}.log`), startedAt: Date.now() };
    },
    async wait(id: string, signal?: AbortSignal): Promise<VmExit> {
      const vm = vms.get(id);
      if (!vm) return { kind: 'lost' };
      // As the QEMU driver does: an abort rejects the wait; the VM is taken down by runJob's finally.
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(new DriverError('aborted', 'wait', 'aborted'));
        signal?.addEventListener('abort', () => reject(new DriverError('aborted', 'wait', 'aborted')), { once: true });
        void vm.ended.then(resolve);
      });
    },
    async destroy(id: string) {
      const vm = vms.get(id);
      if (!vm || !vm.running) return;
      vm.running = false;
      vm.destroyed = true;
      vm.end({ kind: 'exited', code: null, signal: 'SIGKILL' });
    },
    async list() {
      return [];
    },
  };
  const parts = {
    driver,
    caps: {
      ensureSlice: async () => undefined, listVmCgroups: async () => [], removeVmCgroup: async () => undefined,
      createVmCgroup: async () => ({ procsFiles: [] }), usage: async () => { throw new Error('no slice here'); }, cpuQuotaCores: async () => null,
    },
    net: {
      listTaps: async () => [], destroyTap: async () => undefined,
      createTap: async ({ index }: { index: number }) => ({
        tap: `tap${index}`, mac: '02:00:00:00:00:01', hostIp: '127.0.0.1', guestIp: '127.0.0.2', gateway: '127.0.0.1', prefixLen: 30, mtu: 1500, dns: ['127.0.0.53'],
      }),
    },
  } as unknown as HostParts;
  const powerOff = (id: string) => {
    const vm = vms.get(id)!;
    vm.running = false;
    vm.exitedByItself = true;
    vm.end({ kind: 'exited', code: 0, signal: null });
  };
  return { parts, vms, powerOff, cleanup: () => rmSync(consoleDir, { recursive: true, force: true }) };
}

function fakeControl() {
  const reports: { workflowJobId: number; report: JobReport }[] = [];
  const control: ControlClient = {
    requestRunner: async (_pool, workflowJobId) => ({ kind: 'minted', runnerName: `r-${workflowJobId}`, runnerId: workflowJobId, encodedJitConfig: 'not-a-real-jit-config-000000' }),
    jobStarted: async () => ({ decision: 'allow', workflowJobId: null }),
    report: async (workflowJobId, report) => {
      reports.push({ workflowJobId, report });
      return { phase: 'whatever' };
    },
    heartbeat: async () => ({ drain: false }) as Awaited<ReturnType<ControlClient['heartbeat']>>,
    goodbye: async () => undefined,
  };
  return { control, reports };
}

const prefix = testPrefix();
let admin: Redis;
let queue: Queue;
const opened: { agent: Agent; connection: Redis; cleanup: () => void }[] = [];

beforeAll(() => {
  admin = new Redis(redisUrl());
  queue = new Queue(queueName('build'), { connection: admin.duplicate(), prefix });
});
afterAll(async () => {
  for (const o of opened) {
    await o.agent.drain().catch(() => undefined);
    o.connection.disconnect();
    o.cleanup();
  }
  await queue?.close();
  await dropPrefix(redisUrl(), prefix);
  admin?.disconnect();
});

async function startAgent(drainTimeoutSeconds: number, slots: number) {
  const host = fakeHost();
  const ctl = fakeControl();
  const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const lines: Record<string, unknown>[] = [];
  const agent = new Agent({
    agent: {
      host: `drain-${randomUUID().slice(0, 6)}`, role: 'build', pools: ['build'], slots, drainTimeoutSeconds, gateTimeoutSeconds: 5,
      vm: { timeoutMinutes: 10, memoryMiB: 256, vcpus: 1, consoleLimitBytes: 65536 },
      caps: { overheadMiB: 64 },
      network: { metadataPort: 0 },
    } as unknown as AgentConfig,
    prefix,
    connection,
    parts: host.parts,
    control: ctl.control,
    image: { kernel: '/nonexistent' },
    pools: [{ name: 'build' }] as unknown as PoolConfig[],
    logger: pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) }),
    heartbeatMs: 60_000,
  });
  await agent.start();
  opened.push({ agent, connection, cleanup: host.cleanup });
  return { agent, ...host, ...ctl, lines };
}

let nextJob = 7000 + Math.floor(Math.random() * 1000) * 10;
async function addJob(attempts: number): Promise<{ id: string; workflowJobId: number; vmId: string }> {
  const workflowJobId = nextJob++;
  const id = `wj-${workflowJobId}`;
  await queue.add('workflow-job', {
    workflowJobId, runId: 1, runAttempt: 1, repo: 'acme/app', owner: 'acme', labels: ['self-hosted', 'build'], pool: 'build', headBranch: 'main', installationId: 1, queuedAt: Date.now(),
  }, { jobId: id, attempts, backoff: { type: 'fixed', delay: 60_000 } });
  return { id, workflowJobId, vmId: `wj-${workflowJobId}-1` };
}

test('past the bound: the running VMs are stopped, reported lost; a job with attempts left goes back to its queue, one on its last fails loudly', async () => {
  const a = await startAgent(1, 2);
  const retried = await addJob(2);
  const last = await addJob(1);
  await expect.poll(() => [a.vms.get(retried.vmId)?.running, a.vms.get(last.vmId)?.running], { timeout: 10_000 }).toEqual([true, true]);
  const t0 = Date.now();
  await a.agent.drain();
  const took = Date.now() - t0;
  // The bound (1 s) and not much more: the stop itself is quick.
  expect(took).toBeGreaterThanOrEqual(1_000);
  expect(took).toBeLessThan(6_000);
  for (const j of [retried, last]) expect(a.vms.get(j.vmId)).toMatchObject({ running: false, destroyed: true, exitedByItself: false });
  expect(a.lines.some((l) => l.msg === 'drain bound passed: stopping the VMs of the jobs still running')).toBe(true);
  const lost = a.reports.filter((r) => r.report.kind === 'vm-ended' && r.report.end === 'lost');
  expect(lost.map((r) => [r.workflowJobId, (r.report as { reason?: string }).reason]).sort()).toEqual([
    [retried.workflowJobId, 'agent-drain-timeout'], [last.workflowJobId, 'agent-drain-timeout'],
  ].sort());
  // Back to the queue for another host (BullMQ's retry after its backoff), one attempt spent.
  expect(await queue.getJobState(retried.id)).toBe('delayed');
  expect((await queue.getJob(retried.id))?.attemptsMade).toBe(1);
  // Its last attempt: failed for good, with its reason, and the control told Hangar gave up on it.
  expect(await queue.getJobState(last.id)).toBe('failed');
  expect((await queue.getJob(last.id))?.failedReason).toMatch(/aborted/);
  expect(a.reports.some((r) => r.workflowJobId === last.workflowJobId && r.report.kind === 'failed')).toBe(true);
  expect(a.reports.some((r) => r.workflowJobId === retried.workflowJobId && r.report.kind === 'failed')).toBe(false);
});

test('within the bound: the drain waits for the running VM to end by itself and stops nothing', async () => {
  const a = await startAgent(30, 1);
  const job = await addJob(2);
  await expect.poll(() => a.vms.get(job.vmId)?.running, { timeout: 10_000 }).toBe(true);
  let drained = false;
  const t0 = Date.now();
  const draining = a.agent.drain().then(() => void (drained = true));
  await sleep(1_500);
  expect(drained).toBe(false);
  expect(a.vms.get(job.vmId)).toMatchObject({ running: true, destroyed: false });
  a.powerOff(job.vmId);
  await draining;
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(a.vms.get(job.vmId)).toMatchObject({ exitedByItself: true, destroyed: false });
  expect(a.lines.some((l) => l.msg === 'drain bound passed: stopping the VMs of the jobs still running')).toBe(false);
  expect(a.reports.some((r) => r.report.kind === 'vm-ended' && r.report.end === 'lost')).toBe(false);
});
