import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VM_BOOT_BUCKETS } from '../../src/domain/arc-metrics.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { runOnHost } from '../helpers/host-runner.js';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * A real Prometheus (Debian's package) scrapes a real control, fed by the sim's signed webhooks,
 * a job run through mint → gate → GitHub's completion (a sim runner on this host, no VM), and the
 * agents' API (a heartbeat, a VM's end with its egress log). The key series must be there with
 * the values fed: ARC's gauges, counters and histograms under ARC's names (and the dashboard's
 * relabelled queries), refusals by stage, egress drops, the host's slots, usage and boots.
 * test/e2e/prometheus.test.ts does the same against a real agent and its own /metrics.
 */
const TOKEN = 'metrics-build-host-token-0123456789';
const hosts = [{ name: 'minipc', role: 'build' as const, pools: ['build'], token: TOKEN }];

let sim: Sim;
let c: TestControl;
let prom: Prometheus;
let redis: Redis;
const prefix = testPrefix();

const api = (method: string, path: string, body?: unknown) =>
  fetch(`${c.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

beforeAll(async () => {
  redis = new Redis(redisUrl());
  sim = await createSim({ appId: 9, installationId: 3 });
  const apiUrl = await sim.listen(0, '127.0.0.1');
  c = await startTestControl({ redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, hosts });
  sim.setWebhook({ url: `${c.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  for (const [owner, name, visibility] of [['acme', 'app', 'private'], ['acme', 'www', 'public'], ['other', 'lib', 'private'], ['mallory', 'app', 'private']] as const) {
    sim.createRepo({ owner, name, visibility, ...(owner === 'mallory' ? { forkOf: 'acme/app' } : {}) });
  }
  prom = await startPrometheus([{ job: 'hangar-control', address: new URL(c.url).host }]);
}, 60_000);

afterAll(async () => {
  await prom?.close();
  await c?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
  redis?.disconnect();
});

const ids = (run: { jobs: { id: number }[] }) => run.jobs.map((j) => j.id);

/** Waits (in the set-up, where expect.poll cannot) until `ok` holds; fails after 20 s saying what it waited for. */
async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`set-up: still waiting for ${what}`);
}

const record = (id: number) => readJobRecord(redis, keys(prefix), id);

async function recorded(...jobIds: number[]): Promise<void> {
  await sim.idle();
  await until(`records of ${jobIds.join(', ')}`, async () => (await Promise.all(jobIds.map(record))).every((r) => r !== null));
}

/** Polls Prometheus until the query has this value: it scrapes every second. */
const eventually = (expr: string, want: number) => expect.poll(() => prom.value(expr), { timeout: 20_000, interval: 250 }).toBe(want);

describe('a real Prometheus scraping the control', () => {
  let ran: number;
  let queued: number[];
  let mintRefusal: string;

  beforeAll(async () => {
    // One job runs on a Hangar runner to the end: started, its startup and execution observed, completed.
    [ran] = ids(sim.createRun({ repo: 'acme/app', event: 'push', jobs: [{ name: 'build-a', labels: ['self-hosted', 'build'], steps: ['echo A'] }] })) as [number];
    await recorded(ran);
    const run = await runOnHost(c.url, TOKEN, 'build', ran);
    expect(run.gate).toMatchObject({ decision: 'allow', workflowJobId: ran });
    await until('the job completed on GitHub, and its webhook recorded', async () => (await record(ran))?.state === 'completed');
    // Its VM's end, with an egress log: two destinations refused (5 packets), one more only counted, 3 DNS refusals.
    const egress = {
      denied: [{ daddr: '192.168.1.1', proto: 'tcp', dport: 22, packets: 4, firstAt: 1, lastAt: 2 }, { daddr: '169.254.169.254', proto: 'tcp', dport: 80, packets: 1, firstAt: 1, lastAt: 1 }],
      deniedOverflow: 1,
      dns: { names: [{ name: 'exfil.example', count: 3, allowed: 0, denied: 3, failed: 0, firstAt: 1, lastAt: 2, types: ['A'], answers: [] }], queries: 3, overflow: 0 },
    };
    const ended = await api('POST', `/api/v1/jobs/${ran}/report`, { kind: 'vm-ended', end: 'ran', vmId: `wj-${ran}-1`, runnerName: run.body.runnerName, vmMs: 4200, exitCode: 0, egress });
    expect(ended.status).toBe(200);

    // Three jobs wait for a host; two are refused at intake (a public repository, one not allowed).
    queued = [
      ...ids(sim.createRun({ repo: 'acme/app', jobs: [{ name: 'test', labels: ['self-hosted', 'build'], steps: ['true'] }, { name: 'lint', labels: ['self-hosted', 'build'], steps: ['true'] }] })),
      ...ids(sim.createRun({ repo: 'acme/app', event: 'schedule', jobs: [{ name: 'nightly', labels: ['self-hosted', 'build'], steps: ['true'] }] })),
    ];
    const refusedAtIntake = [
      ...ids(sim.createRun({ repo: 'acme/www', jobs: [{ name: 'x', labels: ['self-hosted', 'build'], steps: ['true'] }] })),
      ...ids(sim.createRun({ repo: 'other/lib', jobs: [{ name: 'y', labels: ['self-hosted', 'build'], steps: ['true'] }] })),
    ];
    // A fork's pull request: accepted at intake, refused by the vetter once its run is looked up.
    const [fork] = ids(sim.createRun({ repo: 'acme/app', event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app', jobs: [{ name: 'pwn', labels: ['self-hosted', 'build'], steps: ['true'] }] }));
    await recorded(...queued, ...refusedAtIntake, fork!);
    // Refused by the vetter; its run's cancel may reach the record first (phase cancelled), the refusal is kept either way.
    await until('the fork\'s job refused by the vetter', async () => (await record(fork!))?.vetRefusal === 'fork-pr');

    // A runner asked for a pool the host does not serve: refused at mint, the job left queued.
    const mint = await api('POST', '/api/v1/jit', { pool: 'deploy', workflowJobId: queued[0] });
    expect(mint.status).toBe(403);
    mintRefusal = ((await mint.json()) as { reason: string }).reason;
    // The gate asked for a runner the control never minted: refused at start.
    const gate = await api('POST', '/api/v1/job-started', { runnerName: 'hangar-minipc-999999-1', hints: {} });
    expect(((await gate.json()) as { decision: string }).decision).toBe('deny');

    // The host's heartbeat: 2 slots, one VM, its slice's usage, three boots (1.2 s, 2.5 s, 9 s).
    const buckets = VM_BOOT_BUCKETS.map((le) => [1.2, 2.5, 9].filter((s) => s <= le).length);
    const beat = await api('PUT', '/api/v1/hosts/self/heartbeat', {
      slots: 2, busy: 1, vms: [{ vmId: `wj-${queued[2]}-1`, workflowJobId: queued[2] }],
      usage: { cpuPercent: 42.5, memoryBytes: 300 << 20, memoryMaxBytes: 2 * 1024 ** 3, cpuQuotaCores: 1.5 },
      driver: 'qemu-microvm', accel: 'tcg', boots: { count: 3, sumSeconds: 12.7, buckets }, draining: false,
    });
    expect(beat.status).toBe(200);
  }, 90_000);

  test('Prometheus scrapes the control', async () => {
    await eventually('up{job="hangar-control"}', 1);
  });

  test('ARC\'s gauges: the waiting jobs are assigned to the pool, desired as ARC computes it, max from the slots', async () => {
    await eventually('gha_assigned_jobs{name="build"}', 3);
    await eventually(`gha_assigned_jobs{name="build",namespace="${prefix}",enterprise="",organization="",repository=""}`, 3);
    await eventually('gha_running_jobs{name="build"}', 0);
    await eventually('gha_idle_runners{name="build"}', 0);
    await eventually('gha_max_runners{name="build"}', 2);
    await eventually('gha_desired_runners{name="build"}', 2);
    await eventually('gha_assigned_jobs{name="deploy"}', 0);
    // ARC's dashboard, as published: its queries find the pool through the documented relabelling.
    await eventually('sum(gha_assigned_jobs{actions_github_com_scale_set_name=~"build"})', 3);
  });

  test('ARC\'s counters and histograms: one job started and completed, with ARC\'s labels', async () => {
    const started = 'gha_started_jobs_total{name="build",organization="acme",repository="app",job_name="build-a",event_name="push",enterprise=""}';
    await eventually(started, 1);
    await eventually('sum(gha_started_jobs_total)', 1);
    await eventually('sum(gha_completed_jobs_total{job_result="succeeded",job_name="build-a"})', 1);
    await eventually('sum(gha_job_startup_duration_seconds_count)', 1);
    await eventually('sum(gha_job_execution_duration_seconds_count{job_result="succeeded"})', 1);
    await eventually('sum(hangar_pickup_seconds_count{pool="build"})', 1);
    // Sane: the job waited and ran for less than the test has lasted, and for some time.
    const startup = await prom.value('sum(gha_job_startup_duration_seconds_sum)');
    expect(startup).toBeGreaterThan(0);
    expect(startup).toBeLessThan(120);
    // ARC's buckets, up to an hour.
    await eventually('count(gha_job_startup_duration_seconds_bucket{job_name="build-a"})', 46);
    // The dashboard's heat map groups the pool's buckets by le, through the relabelled pool label.
    await eventually('count(sum by (le) (gha_job_startup_duration_seconds_bucket{actions_github_com_scale_set_name=~"build"}))', 46);
  });

  test('refusals by stage: the two at intake, the fork at vet, one at mint, one at start', async () => {
    await eventually('sum(hangar_refusals_total{stage="intake"})', 2);
    await eventually('hangar_refusals_total{stage="intake",reason="public-repo"}', 1);
    await eventually('hangar_refusals_total{stage="intake",reason="repo-not-allowed"}', 1);
    await eventually('hangar_refusals_total{stage="vet",reason="fork-pr"}', 1);
    await eventually(`hangar_refusals_total{stage="mint",reason="${mintRefusal}"}`, 1);
    await eventually('sum(hangar_refusals_total{stage="start"})', 1);
  });

  test('egress drops from the VM\'s egress log at its end', async () => {
    await eventually('hangar_egress_drops_total{pool="build",kind="destination"}', 3);
    await eventually('hangar_egress_drops_total{pool="build",kind="packet"}', 5);
    await eventually('hangar_egress_drops_total{pool="build",kind="dns"}', 3);
  });

  test('the host from its heartbeat: up, slots, VMs, its slice against its caps, its boots', async () => {
    await eventually('hangar_host_up{host="minipc",role="build"}', 1);
    await eventually('hangar_host_slots{host="minipc",state="total"}', 2);
    await eventually('hangar_host_slots{host="minipc",state="busy"}', 1);
    await eventually('hangar_vms_running{host="minipc"}', 1);
    await eventually('hangar_host_slice_cpu_percent{host="minipc"}', 42.5);
    await eventually('hangar_host_slice_cpu_quota_cores{host="minipc"}', 1.5);
    await eventually('hangar_host_slice_memory_max_bytes{host="minipc"}', 2 * 1024 ** 3);
    await eventually('hangar_vm_boot_seconds_count{host="minipc"}', 3);
    await eventually('hangar_vm_boot_seconds_bucket{host="minipc",le="2"}', 1);
    // Prometheus reads it as a histogram: a median between 2 and 3 s.
    const median = await prom.value('histogram_quantile(0.5, sum by (le) (hangar_vm_boot_seconds_bucket{host="minipc"}))');
    expect(median).toBeGreaterThan(1.5);
    expect(median).toBeLessThanOrEqual(3);
  });

  test('the stored heartbeat keeps the host\'s driver, accelerator and usage', async () => {
    const beat = JSON.parse((await redis.get(keys(prefix).host('minipc')))!) as Record<string, unknown>;
    expect(beat).toMatchObject({ driver: 'qemu-microvm', accel: 'tcg', usage: { cpuPercent: 42.5, cpuQuotaCores: 1.5 } });
  });
});
