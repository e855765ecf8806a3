import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { CLI } from '../../src/main/local-fleet.js';
import { seedLeftovers, startSeedFleet, type SeedFleet } from '../../src/main/seed-fleet.js';
import { kvmProbe } from '../helpers/kvm.js';
import { testPrefix } from '../helpers/redis.js';

/**
 * The seed's two boxes sealed apart (docs/placement.md), all real but GitHub: "sidekick" at home
 * behind carrier-grade NAT runs the build pools, "cloudbox" on the internet runs Redis, the
 * control, the deploy pool and reaches prod (src/main/seed-fleet.ts). Each host was enrolled with
 * `hangar host add`: its own token and a Redis ACL user for its pools' queues only.
 */
interface SimJob { id: number; status: string; conclusion: string | null; output: string; runnerName: string | null; stepExits: number[] }

const PROD_TRY = (prod: string) => `if timeout 5 wget -q -O - http://${prod}/ 2>/dev/null; then echo "PROD-REACHED"; else echo "PROD-BLOCKED"; fi`;

describe('two boxes sealed apart', () => {
  let f: SeedFleet;
  let prefix: string;
  const job = (id: number) => f.api<SimJob>('GET', `/_sim/jobs/${id}`);
  const run = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
    f.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, workflowName: 'ci', jobs, ...extra }).then((r) => r.jobs.map((j) => j.id));
  const done = async (ids: number[], timeout = 600_000) => {
    await expect.poll(async () => (await Promise.all(ids.map(job))).every((j) => j.status === 'completed'), { timeout, interval: 1000 }).toBe(true);
    return Promise.all(ids.map(job));
  };

  beforeAll(async () => {
    prefix = testPrefix();
    f = await startSeedFleet({ prefix, slots: 2, timeoutMinutes: 4, accel: kvmProbe().ok ? 'kvm' : 'tcg' });
    await f.startAgent('cloudbox');
    await f.startAgent('sidekick');
    for (const name of ['app', 'site']) await f.api('POST', '/_sim/repos', { owner: 'acme', name, visibility: 'private' });
  }, 240_000);
  afterAll(async () => {
    await f?.close();
  }, 120_000);

  test('a batch of builds and a deploy: builds ran only on sidekick, the deploy only on cloudbox; only cloudbox\'s guest reached prod; nothing came in to sidekick', async () => {
    const builds = await run('acme/app', Array.from({ length: 4 }, (_, i) => ({
      name: `build ${i}`, labels: ['self-hosted', i % 2 ? 'large' : 'build'], steps: ['echo BUILT-$((40 + 2))', PROD_TRY(f.addresses.prod)],
    })));
    const [deploy] = await run('acme/site', [{ name: 'deploy', labels: ['self-hosted', 'deploy'], steps: ['echo DEPLOYED-$((40 + 2))', PROD_TRY(f.addresses.prod)] }], { headBranch: 'main', event: 'push' });
    const finished = await done([...builds, deploy!]);
    for (const j of finished) expect(j.conclusion, j.output).toBe('success');
    const r = f.redis();
    for (const id of builds) {
      const j = await job(id);
      expect(j.runnerName, `build ${id}`).toMatch(/^hangar-sidekick-/);
      expect((await readJobRecord(r, keys(prefix), id))?.host).toBe('sidekick');
      expect(j.output.match(/BUILT-42/g)).toHaveLength(1);
      expect(j.output).toContain('PROD-BLOCKED');
    }
    const d = await job(deploy!);
    expect(d.runnerName).toMatch(/^hangar-cloudbox-/);
    expect((await readJobRecord(r, keys(prefix), deploy!))?.host).toBe('cloudbox');
    expect(d.output).toContain('PROD-REACHED');
    const prod = await f.prodConnections();
    expect(prod.fromElsewhere).toBe(0);
    expect(prod.fromCloudbox).toBeGreaterThanOrEqual(1);
    expect(await f.inboundToSidekick(), `tried: ${(await f.inboundTried()).join(', ')}`).toBe(0);
    expect(await f.inboundTried()).toEqual([]);
  }, 900_000);

  test('sidekick\'s namespace listens on nothing but loopback and its guests\' gateways, and nothing from the internet reaches it', async () => {
    const { stdout } = await f.exec(f.boxes.sidekick.netns, 'ss', ['-Hltnu']);
    const local = stdout.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[4]!);
    for (const addr of local) expect(addr, stdout).toMatch(/^(127\.0\.0\.1|\[::1\]|10\.|172\.|192\.168\.(?!77\.))/);
    const probe = await f.exec(f.netns.internet, 'curl', ['-s', '-m', '2', `http://${f.addresses.wan}:9169/metrics`], { reject: false });
    expect(probe.exitCode).not.toBe(0);
    expect(await f.inboundToSidekick()).toBe(0);
    expect(await f.inboundTried()).toEqual([]);
  });

  test('the link between the boxes cut for a minute mid-batch: sidekick reconnects, no job lost or run twice', async () => {
    const ids = await run('acme/app', Array.from({ length: 6 }, (_, i) => ({
      name: `cut ${i}`, labels: ['self-hosted', 'build'], steps: ['echo RAN-$((40 + 2))', 'sleep 5'],
    })));
    // Mid-batch: the first jobs are in their VMs.
    await expect.poll(async () => (await Promise.all(ids.map(job))).filter((j) => j.status !== 'queued').length, { timeout: 300_000, interval: 500 }).toBeGreaterThanOrEqual(1);
    await f.cutLink();
    await new Promise((res) => setTimeout(res, 60_000));
    await f.restoreLink();
    const finished = await done(ids);
    for (const j of finished) {
      expect(j.conclusion, `job ${j.id}:\n${j.output}`).toBe('success');
      expect(j.output.match(/RAN-42/g), `job ${j.id} ran ${j.output.match(/RAN-42/g)?.length ?? 0} times`).toHaveLength(1);
      expect(j.runnerName).toMatch(/^hangar-sidekick-/);
    }
    // Every VM the batch booted is accounted for: one per job, and none left.
    const r = f.redis();
    for (const id of ids) expect((await readJobRecord(r, keys(prefix), id))?.host).toBe('sidekick');
    await expect.poll(() => seedLeftovers(f), { timeout: 60_000, interval: 1000 }).toEqual([]);
    expect(await f.inboundToSidekick(), `tried: ${(await f.inboundTried()).join(', ')}`).toBe(0);
  }, 900_000);

  test('sidekick revoked with hangar host remove: its agent is refused at its next heartbeat, loses its queues, and takes no job', async () => {
    const removed = await f.exec(f.boxes.cloudbox.netns, process.execPath, [CLI, 'host', 'remove', 'sidekick', '--config', f.controlConfig]);
    const at = Date.now();
    expect(removed.stdout).toMatch(/deleted the Redis ACL user hangar-host-sidekick/);
    const revokedLine = () => f.logs().split('\n').find((l) => l.includes('this host\'s credentials were revoked'));
    await expect.poll(revokedLine, { timeout: 30_000, interval: 250 }).toBeTruthy();
    // Within one heartbeat (agent.heartbeatMs: 5 s), plus the request's own time.
    const loggedAt = Date.parse((JSON.parse(revokedLine()!) as { time: string }).time);
    expect(loggedAt - at).toBeLessThan(5_000 + 2_000);
    const [id] = await run('acme/app', [{ name: 'after revoke', labels: ['self-hosted', 'build'], steps: ['echo NEVER-$((40 + 2))'] }]);
    await new Promise((res) => setTimeout(res, 15_000));
    expect((await job(id!)).status).toBe('queued');
    expect((await readJobRecord(f.redis(), keys(prefix), id!))?.mintedRunner ?? null).toBeNull();
    expect(await f.inboundToSidekick(), `tried: ${(await f.inboundTried()).join(', ')}`).toBe(0);
  }, 120_000);
});

