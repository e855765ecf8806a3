// The fleet bench/dashboard looks at: 100 hosts and 10,000 job records, written through the
// control's own code (dist/): the intake's record script (JobStore.record) for GitHub's side and
// the one transition script (jobMoves) for Hangar's side, with the fields the mint, the gate and
// the agents' reports write. Heartbeats go through the control's agents' API (heartbeats()).
import { randomUUID } from 'node:crypto';

const MIN = 60_000;
const REPOS = ['app', 'api', 'web', 'cli', 'infra', 'docs', 'mobile', 'billing', 'search', 'auth', 'worker', 'sdk', 'etl', 'ml', 'proxy', 'ui', 'core', 'tools', 'bench', 'site'];
const JOBS = ['build', 'test', 'lint', 'unit', 'integration', 'e2e', 'package', 'deploy', 'docs', 'bench'];
const LABELS = { build: ['self-hosted', 'linux', 'x64', 'build'], large: ['self-hosted', 'linux', 'x64', 'large'], deploy: ['self-hosted', 'linux', 'x64', 'deploy'] };

/** The config's hosts: 80 build hosts (build; every fourth also large), 20 deploy hosts (deploy and build). */
export function fleetHosts(n = 100) {
  return Array.from({ length: n }, (_, i) => {
    const deploy = i >= n * 0.8;
    const name = `${deploy ? 'deploy' : 'build'}-${String(i + 1).padStart(3, '0')}`;
    const pools = deploy ? ['deploy', 'build'] : i % 4 === 0 ? ['build', 'large'] : ['build'];
    return { name, role: deploy ? 'deploy' : 'build', pools, token: `bench-host-token-${randomUUID()}` };
  });
}

/** A seeded generator: every run seeds the same mix (the order of the writes varies). */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The mix, per 10,000: the share of each kind of job.
const MIX = [
  ['done', 0.62], ['failed', 0.07], ['gave-up', 0.01], ['refused-intake', 0.04], ['refused-mint', 0.02],
  ['refused-start', 0.03], ['cancelled', 0.03], ['running', 0.03], ['waiting', 0.15],
];

/**
 * Seeds `total` jobs (ids from `firstId`) with `store` (JobStore) and `moves` (jobMoves) on the
 * bench's own connection, `concurrency` jobs at a time. Returns the ids by kind and the VMs
 * running per host (for the heartbeats).
 */
export async function seedJobs({ store, moves, hosts, total = 10_000, firstId = 5_000_001, now = Date.now(), concurrency = 64 }) {
  const rand = rng(12);
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const byPool = { build: hosts.filter((h) => h.pools.includes('build')), large: hosts.filter((h) => h.pools.includes('large')), deploy: hosts.filter((h) => h.pools.includes('deploy')) };
  const upHosts = new Set(hosts.filter((_, i) => i % 20 !== 7).map((h) => h.name)); // five are down
  const vms = new Map(hosts.map((h) => [h.name, []]));
  const plans = [];
  // Two nightly batches (02:00 UTC today and yesterday): 20 runs of 10 jobs each, all schedule.
  const nights = [0, 1].map((d) => { const t = new Date(now); t.setUTCHours(2, 0, 0, 0); if (t.getTime() > now - 3 * 60 * MIN) t.setUTCDate(t.getUTCDate() - 1); return t.getTime() - d * 24 * 60 * MIN; });
  let runId = 90_000_000;
  for (const night of nights) {
    for (let r = 0; r < 20; r++) {
      runId++;
      for (let j = 0; j < 10; j++) plans.push({ kind: rand() < 0.06 ? 'failed' : 'done', at: night + r * 20_000 + j * 500 + Math.floor(rand() * 2 * MIN), runId, event: 'schedule', workflow: 'nightly', job: `${JOBS[j]}-${r}`, repo: `acme/${REPOS[r]}`, pool: 'build' });
    }
  }
  const cumulative = [];
  let acc = 0;
  for (const [kind, share] of MIX) cumulative.push([kind, (acc += share)]);
  while (plans.length < total) {
    const x = rand();
    const kind = cumulative.find(([, c]) => x < c)?.[0] ?? 'done';
    const repoName = pick(REPOS);
    const deploy = repoName === 'site' && rand() < 0.5;
    const pool = deploy ? 'deploy' : rand() < 0.15 ? 'large' : 'build';
    // Live ones are recent; the rest spread over the last 36 hours.
    const age = kind === 'waiting' ? rand() * 40 * MIN : kind === 'running' ? rand() * 25 * MIN : 30 * MIN + rand() * 36 * 60 * MIN;
    if (plans.length % 4 === 0 || kind === 'running' || kind === 'waiting') runId++;
    plans.push({ kind, at: now - age, runId, event: pick(['push', 'push', 'pull_request', 'workflow_dispatch']), workflow: pick(['CI', 'CI', 'release', 'checks']), job: pick(JOBS), repo: `acme/${repoName}`, pool: deploy ? 'deploy' : pool, headBranch: deploy ? 'main' : pick(['main', 'main', 'feature/x', 'fix/y', 'renovate/z']) });
  }
  plans.sort((a, b) => a.at - b.at);
  const out = { waiting: [], running: [], byKind: {}, details: [], poolOf: new Map() };
  let next = 0;
  let vmSlot = 0;
  const runningHost = (pool) => {
    // Up hosts of the pool with a free slot (4 each), round robin.
    const candidates = byPool[pool].filter((h) => upHosts.has(h.name) && vms.get(h.name).length < 4);
    return candidates.length > 0 ? candidates[vmSlot++ % candidates.length] : null;
  };
  const reserve = (host, id) => vms.get(host.name).push({ vmId: `wj-${id}-1`, workflowJobId: id });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < plans.length) {
      const i = next++;
      const p = plans[i];
      const id = firstId + i;
      let kind = p.kind;
      const host = kind === 'running' ? runningHost(p.pool) : pick(byPool[p.pool]);
      if (!host) kind = 'waiting';
      else if (kind === 'running') reserve(host, id);
      await seedOne({ store, moves, id, p: { ...p, kind }, host, rand });
      (out.byKind[kind] ??= []).push(id);
      if (kind === 'waiting') out.waiting.push(id);
      out.poolOf.set(id, p.pool);
      if (kind === 'running') out.running.push(id);
      if (i % 50 === 0) out.details.push(id);
    }
  }));
  return { ...out, vms, upHosts };
}

const ev = (p, id, action, extra = {}) => ({
  action, workflowJobId: id, runId: p.runId, runAttempt: 1, repo: p.repo, owner: 'acme', repoId: 1000 + REPOS.indexOf(p.repo.split('/')[1]),
  visibility: 'private', jobName: p.job, workflowName: p.workflow, labels: LABELS[p.pool], headBranch: p.headBranch ?? 'main',
  headSha: 'abcdef0123456789abcdef0123456789abcdef01', installationId: 7, runnerId: null, runnerName: null, conclusion: null, ...extra,
});

/** One job through the steps the control's own code takes for its kind. */
async function seedOne({ store, moves, id, p, host, rand }) {
  let t = Math.round(p.at);
  const step = (ms) => (t += Math.round(ms));
  const hostBy = `host:${host?.name}`;
  const runner = `hangar-${host?.name}-${id}-1`;
  const vmId = `wj-${id}-1`;
  const record = (action, extra) => store.record(randomUUID(), ev(p, id, action, extra), { kind: 'accept', pool: p.pool }, t);
  const move = async (m) => {
    const r = await moves.move(id, m, t);
    if (!r.ok) throw new Error(`seed: job ${id} ${m.to}: ${r.reason}`);
  };
  if (p.kind === 'refused-intake') {
    const reason = rand() < 0.6 ? 'repo-not-allowed' : rand() < 0.5 ? 'public-repo' : 'no-pool';
    await store.record(randomUUID(), { ...ev(p, id, 'queued'), repo: reason === 'repo-not-allowed' ? 'mallory/thing' : p.repo }, { kind: 'reject', reason }, t);
    return;
  }
  await record('queued');
  if (p.kind === 'waiting') return;
  if (p.kind === 'cancelled') {
    step(30_000 + rand() * 5 * MIN);
    await record('completed', { conclusion: 'cancelled' });
    return;
  }
  step(1000 + rand() * 20_000);
  if (p.kind === 'refused-mint') {
    await move({ to: 'refused', by: hostBy, why: 'fork-pr', fields: { mintRefusal: 'fork-pr', mintRefusedHost: host.name } });
    return;
  }
  await move({ to: 'minted', by: hostBy, why: 'asked', fields: { mintedRunner: runner, host: host.name, mintedAt: t, runEvent: p.event } });
  step(1500 + rand() * 2000);
  await move({ to: 'vm-up', by: hostBy, why: vmId, fields: { vmId, tries: 1 }, onlyIf: { field: 'mintedRunner', equals: runner } });
  step(2000 + rand() * 3000);
  if (p.kind === 'gave-up') {
    await move({ to: 'failed', by: hostBy, why: 'vm-boot-failed', fields: { failedAfterAttempts: 3 } });
    return;
  }
  await record('in_progress', { runnerId: id, runnerName: runner });
  if (p.kind === 'refused-start') {
    const reason = rand() < 0.5 ? 'labels-not-served' : 'deploy-not-allowed';
    await move({ to: 'refused-at-start', by: hostBy, why: reason, fields: { startedJob: id, spentRunner: runner, startRefusal: reason }, remove: ['mintedRunner'], onlyIf: { field: 'mintedRunner', equals: runner } });
    step(3000);
    await record('completed', { runnerId: id, runnerName: runner, conclusion: 'failure' });
    await moves.note(id, { by: hostBy, what: 'vm-ended', why: 'refused-at-start', fields: { vmOutcome: 'refused-at-start', vmMs: 9000 } }, t);
    return;
  }
  await move({ to: 'started', by: hostBy, why: 'allowed-at-start', fields: { startedJob: id }, onlyIf: { field: 'mintedRunner', equals: runner } });
  if (p.kind === 'running') return;
  const failed = p.kind === 'failed';
  step(MIN + rand() * 14 * MIN);
  await record('completed', { runnerId: id, runnerName: runner, conclusion: failed ? 'failure' : 'success' });
  step(800 + rand() * 1500);
  const vmMs = t - p.at;
  const fields = { vmOutcome: 'ran', vmMs: Math.round(vmMs), vmExitCode: failed ? 1 : 0, egress: JSON.stringify({ denied: failed ? [{ host: 'evil.example', port: 443, count: 2 }] : [], dns: { names: ['registry.npmjs.org', 'github.com'] } }) };
  if (failed) fields.consoleTail = `npm ERR! Test failed.  See above for more details.\n${'x'.repeat(400)}\n[  12.345678] reboot: Power down\n`;
  await move({ to: 'ran', by: hostBy, why: 'ran', fields, onlyIf: { field: 'mintedRunner', equals: runner } });
}

/** One heartbeat per host, as an agent sends it (PUT /api/v1/hosts/self/heartbeat on the control's listener). */
export async function heartbeats(controlUrl, hosts, seeded) {
  const answers = await Promise.all(hosts.filter((h) => seeded.upHosts.has(h.name)).map(async (h, i) => {
    const vms = seeded.vms.get(h.name);
    const body = {
      slots: 4, busy: vms.length, vms, draining: false, driver: 'qemu-microvm', accel: 'kvm',
      usage: { cpuPercent: 10 + ((i * 7) % 80), memoryBytes: (2 + (i % 6)) * 2 ** 30, memoryMaxBytes: 24 * 2 ** 30, cpuQuotaCores: 6 },
    };
    const res = await fetch(`${controlUrl}/api/v1/hosts/self/heartbeat`, { method: 'PUT', headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await res.arrayBuffer();
    return res.status;
  }));
  const bad = answers.filter((s) => s !== 200);
  if (bad.length > 0) throw new Error(`heartbeats: ${bad.length} answered ${bad[0]}`);
  return answers.length;
}
