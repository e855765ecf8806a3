import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ControlClient, JitAnswer } from '../../src/agent/control-client.js';
import type { GateHints } from '../../src/agent/metadata.js';
import { runJob, type RunJobDeps } from '../../src/agent/run-job.js';
import type { Caps } from '../../src/caps/create-caps.js';
import type { AgentConfig, PoolConfig } from '../../src/config/schema.js';
import { tapName } from '../../src/net/addressing.js';
import type { HostNetwork } from '../../src/net/host-network.js';
import type { PoolJobData } from '../../src/queue/contracts.js';
import { writeCpio } from '../../src/vm/image/cpio.js';
import { createQemuMicrovmDriver } from '../../src/vm/qemu-microvm/driver.js';
import { ensureTestImage, type TestImage } from './ensure-image.js';
import { processesWith, sleep } from './helpers.js';

/**
 * One job's life (src/agent/run-job.ts) with the real qemu-microvm driver and the test image:
 * the VM boots while the mint is still pending (the fake control answers only once the guest's
 * console shows it booted), the guest fetches its JIT config from the real metadata endpoint,
 * its runner (src/sim/runner.sh) polls a stand-in for the sim's runner protocol, the job's
 * job-started hook asks the gate. Caps and host network are stand-ins (no cgroup; a tap of the
 * test's own, in this namespace, as test/vm/guest-runner.test.ts makes), so no host rule is touched.
 */
const HOST_IP = '10.213.76.1';
const GUEST_IP = '10.213.76.2';
const token = `runner-token-${randomUUID()}`;
let image: TestImage;
let root: string;
let stateDir: string;
let sim: Server | null = null;
let simPort = 0;
/** What the stand-in sim does with the runner's polls: hand it the job, or refuse it (401). */
let simMode: 'job' | 'refuse' = 'job';
const results: string[] = [];
let logs = '';

const jitFor = (port: number) =>
  Buffer.from(`HANGAR_SIM_URL=http://${HOST_IP}:${port}\nRUNNER_ID=1\nRUNNER_NAME=hangar-t-1-1\nRUNNER_TOKEN=${token}\n`).toString('base64');

/** The job runs the image's hook (the gate), tries to fetch the config again, then reports. */
const JOB = [
  'HANGAR_SIM_JOB_ID=7',
  'GITHUB_REPOSITORY=acme/app GITHUB_RUN_ID=31 GITHUB_RUN_ATTEMPT=1 sh -e "$ACTIONS_RUNNER_HOOK_JOB_STARTED" || exit 1',
  'again=$(timeout 10 wget -q -O - "$HANGAR_METADATA_URL/v1/jit" 2>&1); echo "REFETCH-RC $? $(echo "$again" | head -c 60)"',
  'echo JOB-RAN-IN-GUEST',
  'exit 0',
].join('\n');

function startSim(): Promise<void> {
  sim = createServer((req, res) => {
    if (simMode === 'refuse' || req.headers.authorization !== `RunnerToken ${token}`) return void res.writeHead(401).end();
    if (req.method === 'GET' && req.url === '/_runner/job') return void res.writeHead(200).end(`${JOB}\n`);
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => { results.push(`${req.url} ${body}`); res.writeHead(200).end(); });
  });
  return new Promise((r) => sim!.listen(0, HOST_IP, () => { simPort = (sim!.address() as AddressInfo).port; r(); }));
}

/** A tap of this test's own with the /30's gateway address, and the stand-in sim on it. */
const net = {
  async createTap({ vmId }: { vmId: string }) {
    const tap = tapName(vmId);
    await execa('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await execa('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', tap]);
    await execa('ip', ['link', 'set', tap, 'up']);
    await startSim();
    return { tap, mac: '52:54:00:aa:bb:76', hostIp: HOST_IP, guestIp: GUEST_IP, prefixLen: 30, gateway: HOST_IP, dns: [HOST_IP], mtu: 1500 };
  },
  async destroyTap(name: string) {
    await new Promise<void>((r) => (sim ? sim.close(() => r()) : r()));
    sim = null;
    await execa('ip', ['link', 'del', name], { reject: false });
  },
  async listTaps() {
    return [];
  },
} as unknown as HostNetwork;
const caps = {
  async createVmCgroup() { return { procsFiles: [] }; },
  async removeVmCgroup() {},
  async listVmCgroups() { return []; },
} as unknown as Caps;

const agent = {
  vm: { memoryMiB: 256, vcpus: 1, timeoutMinutes: 2, consoleLimitBytes: 1_048_576 },
  caps: { overheadMiB: 256 },
  network: { metadataPort: 8169 },
} as unknown as AgentConfig;

interface Control extends ControlClient { gateAsks: GateHints[] }
/** The control, answering the mint only once the guest has booted (its console shows /init). */
function control(answer: (port: number) => JitAnswer): Control {
  const gateAsks: GateHints[] = [];
  return {
    gateAsks,
    async requestRunner() {
      const log = join(stateDir, vmId, 'console.log');
      for (let i = 0; i < 1200 && !(await readFile(log, 'utf8').catch(() => '')).includes('HANGAR-GUEST-INIT'); i++) await sleep(100);
      return answer(simPort);
    },
    async jobStarted(_runner, hints) {
      gateAsks.push(hints);
      return { decision: 'allow', workflowJobId: 7 };
    },
    // runJob itself reports nothing: the agent does (test/integration/job-record.test.ts, e2e).
    async report() {
      return { phase: '' };
    },
    async heartbeat() {
      return { drain: false };
    },
    async goodbye() {},
  };
}

let jobId = 0;
let vmId = '';
let driver: ReturnType<typeof createQemuMicrovmDriver>;
function deps(c: ControlClient, img: { kernel: string; initrd: string } = image): RunJobDeps {
  const logger = pino({ level: 'info' }, new Writable({ write(chunk, _e, cb) { logs += String(chunk); cb(); } }));
  return { parts: { driver, caps, net }, control: c, image: img, agent, pools: [{ name: 'build' } as PoolConfig], logger };
}
const job = (): PoolJobData => ({ workflowJobId: jobId, runAttempt: 1, pool: 'build' } as PoolJobData);

async function expectNoLeftovers(): Promise<void> {
  expect(await processesWith(stateDir)).toEqual([]);
  expect(existsSync(join(stateDir, vmId))).toBe(false);
  expect(existsSync(`/sys/class/net/${tapName(vmId)}`)).toBe(false);
  expect(sim).toBeNull();
}

beforeAll(async () => {
  image = await ensureTestImage();
  root = await mkdtemp(join(tmpdir(), 'hangar-run-job-'));
  stateDir = join(root, 'state');
  driver = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
}, 600_000);

beforeEach(() => {
  jobId += 1;
  vmId = `wj-${jobId}-1`;
  results.length = 0;
  logs = '';
  simMode = 'job';
});

afterAll(async () => {
  for (const h of (await driver?.list()) ?? []) await driver.destroy(h.id);
  for (let i = 1; i <= jobId; i++) await execa('ip', ['link', 'del', tapName(`wj-${i}-1`)], { reject: false });
  if (root) await rm(root, { recursive: true, force: true });
});

describe('runJob: mint and boot side by side, the JIT config through the metadata endpoint', () => {
  test('the guest boots before the mint settles, fetches its config once, runs the job: ran', async () => {
    let jit = '';
    const c = control((port) => ((jit = jitFor(port)), { kind: 'minted', runnerName: 'hangar-t-1-1', runnerId: 1, encodedJitConfig: jit }));
    const outcome = await runJob(deps(c), job(), 0);
    expect(outcome).toMatchObject({ kind: 'ran', exitCode: 0, vmId, runnerName: 'hangar-t-1-1' });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatch(/^\/_runner\/jobs\/7\/result\?exit=0 /);
    expect(results[0]).toContain('JOB-RAN-IN-GUEST');
    // One answer, then gone: the job itself asking for the config gets 410 and nothing of it.
    expect(results[0]).toMatch(/REFETCH-RC 1 .*410/);
    expect(results[0]).not.toContain(jit);
    expect(c.gateAsks).toEqual([{ repository: 'acme/app', runId: 31, runAttempt: 1 }]);
    // The agent saw the guest ask and handed the config over; it never logged the config.
    const handed = logs.split('\n').filter((l) => l.includes('"jit config handed to the guest"')).map((l) => JSON.parse(l));
    expect(handed).toHaveLength(1);
    expect(handed[0].askedMs).toBeLessThanOrEqual(handed[0].handedMs);
    expect(handed[0].mintMs).toBeGreaterThan(handed[0].createMs); // the mint settled after the VM was made
    expect(logs).not.toContain(jit);
    expect(logs).not.toContain(token);
    await expectNoLeftovers();
  }, 180_000);

  test('a refused mint with the VM already booting: skipped, the VM and its tap destroyed', async () => {
    const c = control(() => ({ kind: 'refused', reason: 'job-not-queued' }));
    expect(await runJob(deps(c), job(), 0)).toEqual({ kind: 'skipped', reason: 'job-not-queued' });
    expect(results).toEqual([]);
    await expectNoLeftovers();
  }, 180_000);

  test('a runner that cannot reach GitHub: not-run (runner-never-started-a-job), with a redacted console tail', async () => {
    simMode = 'refuse';
    let jit = '';
    const c = control((port) => ((jit = jitFor(port)), { kind: 'minted', runnerName: 'hangar-t-1-1', runnerId: 1, encodedJitConfig: jit }));
    const outcome = await runJob(deps(c), job(), 0);
    expect(outcome).toMatchObject({ kind: 'not-run', reason: 'runner-never-started-a-job', vmId, runnerName: 'hangar-t-1-1' });
    const tail = (outcome as { consoleTail: string }).consoleTail;
    expect(tail).toContain('runner.sh: hangar-t-1-1 refused or sim unreachable');
    expect(tail).toContain('HANGAR-RUNNER-EXIT 70');
    expect(tail).not.toContain(jit);
    expect(tail).not.toContain(token);
    expect(c.gateAsks).toEqual([]);
    await expectNoLeftovers();
  }, 180_000);

  test('a guest that never asks for its config: not-run (jit-not-fetched), with its console tail', async () => {
    // The test image with /init replaced (a second cpio archive overrides the first's file).
    const init = '#!/bin/sh\necho HANGAR-GUEST-INIT\necho "this guest gives up before asking for its JIT config"\npoweroff -f\n';
    const initrd = join(root, 'gives-up.cpio');
    await writeFile(initrd, Buffer.concat([await readFile(image.initrd), writeCpio([{ kind: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 }])]));
    const c = control((port) => ({ kind: 'minted', runnerName: 'hangar-t-1-1', runnerId: 1, encodedJitConfig: jitFor(port) }));
    const outcome = await runJob(deps(c, { kernel: image.kernel, initrd }), job(), 0);
    expect(outcome).toMatchObject({ kind: 'not-run', reason: 'jit-not-fetched', vmId });
    expect((outcome as { consoleTail: string }).consoleTail).toContain('this guest gives up before asking for its JIT config');
    expect(logs).toContain('"vm ended without its runner running a job"');
    expect(logs).not.toContain('"jit config handed to the guest"');
    expect(await readdir(stateDir)).toEqual([]);
    await expectNoLeftovers();
  }, 180_000);
});
