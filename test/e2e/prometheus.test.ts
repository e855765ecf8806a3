import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.js';
import { testPrefix } from '../helpers/redis.js';

/**
 * A real Prometheus (Debian's package) scraping `hangar control` and `hangar agent` of a whole
 * fleet (src/main/local-fleet.ts: real Redis, sim, control, agent, QEMU microVMs), from inside
 * the fleet's build host where both listen. Jobs run through VMs; the key series must be there
 * with sane values: ARC's counters and histograms, the agent's own VMs, slots, boots and slice,
 * and the host's heartbeat figures on the control (usage, accelerator, boots relayed).
 * test/integration/prometheus.test.ts covers the control alone, without VMs.
 */
let fleet: Fleet;
let prom: Prometheus;

const AGENT_METRICS = '127.0.0.1:9169';

interface SimJob { id: number; status: string; conclusion: string | null }
const job = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const run = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
  fleet.api<{ runId: number; jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, jobs, ...extra }).then((r) => r.jobs.map((j) => j.id));

const eventually = (expr: string, want: number, timeout = 60_000) => expect.poll(() => prom.value(expr), { timeout, interval: 500 }).toBe(want);

beforeAll(async () => {
  fleet = await startFleet({ prefix: testPrefix(), slots: 2, timeoutMinutes: 2 });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'www', visibility: 'public' });
  await fleet.startAgent();
  const curl = async (url: string) => {
    const r = await fleet.exec(fleet.netns.host, 'curl', ['-s', '-o', '-', '-w', '\n%{http_code}', url], { reject: false });
    const lines = r.stdout.split('\n');
    const code = Number(lines.pop());
    return { ok: code >= 200 && code < 300, text: lines.join('\n') };
  };
  prom = await startPrometheus(
    [{ job: 'hangar-control', address: new URL(fleet.controlUrl).host }, { job: 'hangar-agent', address: AGENT_METRICS }],
    { netns: `/run/netns/${fleet.netns.host}`, get: curl },
  );
}, 300_000);

afterAll(async () => {
  await prom?.close();
  await fleet?.close();
}, 120_000);

describe('a real Prometheus scraping the control and the agent of a fleet', () => {
  test('both are up', async () => {
    await eventually('up{job="hangar-control"}', 1);
    await eventually('up{job="hangar-agent"}', 1);
  });

  test('two jobs through VMs: ARC\'s started and completed series, startup and execution observed; a refusal at intake', async () => {
    const ids = await run('acme/app', [0, 1].map((n) => ({ name: `build ${n}`, labels: ['self-hosted', 'build'], steps: [`echo RAN-${n}`] })));
    await run('acme/www', [{ name: 'public', labels: ['self-hosted', 'build'], steps: ['true'] }]);
    await expect.poll(async () => (await Promise.all(ids.map(job))).every((j) => j.status === 'completed'), { timeout: 240_000, interval: 1000 }).toBe(true);
    await eventually('sum(gha_started_jobs_total{name="build",organization="acme",repository="app",event_name="push"})', 2);
    await eventually('sum(gha_completed_jobs_total{name="build",job_result="succeeded"})', 2);
    await eventually('sum(gha_job_startup_duration_seconds_count{name="build"})', 2);
    await eventually('sum(gha_job_execution_duration_seconds_count{name="build"})', 2);
    await eventually('hangar_refusals_total{stage="intake",reason="public-repo"}', 1);
    // Nothing waits once they ran.
    await eventually('gha_assigned_jobs{name="build"}', 0);
    const startup = await prom.value('sum(gha_job_startup_duration_seconds_sum)');
    expect(startup).toBeGreaterThan(0);
    expect(startup).toBeLessThan(600);
  }, 300_000);

  test('the agent\'s own series: slots, VMs (none now), boots observed, its slice against its caps', async () => {
    await eventually('hangar_agent_slots{state="total"}', 2);
    await eventually('hangar_agent_vms_running', 0);
    await eventually('hangar_agent_vm_boot_seconds_count >= bool 2', 1);
    const boot = await prom.value('hangar_agent_vm_boot_seconds_sum / hangar_agent_vm_boot_seconds_count');
    expect(boot).toBeGreaterThan(0);
    expect(boot).toBeLessThan(120);
    // The fleet's caps: CPUQuota 180 %, MemoryMax 2048 MiB.
    await eventually('hangar_agent_slice_cpu_quota_cores', 1.8);
    await eventually('hangar_agent_slice_memory_max_bytes', 2048 * 1024 * 1024);
    const cpu = await prom.value('hangar_agent_slice_cpu_percent');
    expect(cpu).not.toBeNull();
    expect(cpu).toBeGreaterThanOrEqual(0);
  });

  test('the control serves the host from its heartbeat: slots, usage, boots as the agent counted them', async () => {
    await eventually('hangar_host_up{host="minipc"}', 1);
    await eventually('hangar_host_slots{host="minipc",state="total"}', 2);
    await eventually('hangar_host_slice_cpu_quota_cores{host="minipc"}', 1.8);
    await expect.poll(async () => {
      const [relayed, own] = await Promise.all([prom.value('hangar_vm_boot_seconds_count{host="minipc"}'), prom.value('hangar_agent_vm_boot_seconds_count')]);
      return relayed !== null && relayed === own;
    }, { timeout: 30_000, interval: 500 }).toBe(true);
    const beat = JSON.parse((await fleet.redis().get(`${fleet.prefix}:host:minipc`))!) as { driver: string; accel: string };
    expect(beat.driver).toBe('qemu-microvm');
    expect(['kvm', 'tcg']).toContain(beat.accel);
  });
});
