import type { Redis } from 'ioredis';
import type { Overview } from '../dashboard/api-types.js';
import { readEvents } from '../jobs/events.js';
import { readJobRecord, type JobRecord } from '../jobs/record.js';
import { keys } from '../queue/keys.js';
import { seedLeftovers, startSeedFleet, type SeedFleet } from './seed-fleet.js';
import { requestOverSocket } from './unix-http.js';

/**
 * `hangar demo`: the seed's whole installation on this machine (seed-fleet.ts) — Redis, `hangar
 * sim` (a local GitHub), `hangar control` and two `hangar agent`s with QEMU microVMs, each a real
 * process — running a nightly batch of build-and-boot jobs on the home box, a deploy on the cloud
 * box, and the jobs the policy must refuse. All of it in network namespaces of its own: the
 * home box behind carrier-grade NAT, the cloud box and GitHub on documentation addresses of an
 * "internet"; nothing in the machine's own namespace.
 */
const BATCH = 24;
const PREFIX = 'demo';

interface SimJob { id: number; status: string; conclusion: string | null; output: string }

export async function runDemo(opts: { keep?: boolean; jobs?: number } = {}): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo makes taps and cgroups for its microVMs: run it as root');
  const say = (line = '') => process.stdout.write(`${line}\n`);
  let fleet: SeedFleet | undefined;
  try {
    say('building the guest image (first time: downloads the Debian kernel and busybox)…');
    fleet = await startSeedFleet({ prefix: PREFIX, slots: 2, memoryMiB: 256, timeoutMinutes: 10 });
    const f = fleet;
    await f.startAgent('cloudbox');
    await f.startAgent('sidekick');
    const r = f.redis();
    const a = f.addresses;
    say('the seed\'s two boxes, each in network namespaces of its own (docs/placement.md):');
    say(`  sidekick  ${a.sidekick}, at home behind carrier-grade NAT (no inbound port): the build agent, pools build + large, 2 slots`);
    say(`  cloudbox  ${a.cloudbox}, on the internet beside prod (${a.prod}): Redis, the control, the deploy agent (pool deploy, 1 slot)`);
    say(`  github    ${f.simUrl} (hangar sim, on the internet), posting webhooks to cloudbox:8080`);
    say(`  sidekick dials out only: the agents' API at ${f.controlUrl} (TLS, pinned to the fleet's CA),`);
    say(`            Redis as its own ACL user (its pools' queues only), both enrolled with hangar host add`);
    say(`  microVMs under TCG, kernel ${f.image.manifest.kernel.release}`);
    say();
    const api = f.api.bind(f);
    for (const [owner, name, visibility, forkOf] of [['acme', 'app', 'private'], ['acme', 'site', 'private'], ['acme', 'oss', 'public'], ['mallory', 'app', 'private', 'acme/app']] as const) {
      await api('POST', '/_sim/repos', { owner, name, visibility, ...(forkOf ? { forkOf } : {}) });
    }
    const n = opts.jobs ?? BATCH;
    const nightly = Array.from({ length: n }, (_, i) => ({
      name: `build-and-boot ${['x86_64', 'aarch64', 'riscv64'][i % 3]}-${['minimal', 'server', 'rescue', 'desktop'][i % 4]}`,
      labels: ['self-hosted', 'linux', i % 4 === 3 ? 'large' : 'build'],
      steps: ['uname -r', `dd if=/dev/urandom of=/tmp/img bs=64k count=${16 + (i % 5) * 8} 2>/dev/null`, 'sha256sum /tmp/img | cut -c1-16', 'echo booted'],
    }));
    const started = Date.now();
    const batch = await api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo: 'acme/app', event: 'schedule', workflowName: 'nightly', jobs: nightly });
    // The release: a deploy from the allowed repository and branch, which must reach prod.
    const [deploy] = (await api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', {
      repo: 'acme/site', event: 'push', headBranch: 'main', workflowName: 'release', jobs: [{ name: 'deploy site', labels: ['self-hosted', 'deploy'], steps: [
        `if timeout 5 wget -q -O - http://${a.prod}/ >/dev/null 2>&1; then echo "deployed to prod ${a.prod}"; else echo "PROD UNREACHABLE"; exit 1; fi`,
      ] }],
    })).jobs.map((j) => j.id);
    const refuse = async (name: string, run: Record<string, unknown>, labels: string[]) =>
      [await api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { workflowName: 'ci', ...run, jobs: [{ name, labels, steps: ['true'] }] }), name] as const;
    const refused = [
      await refuse('build (public repo)', { repo: 'acme/oss' }, ['self-hosted', 'build']),
      await refuse('train (needs a gpu)', { repo: 'acme/app' }, ['self-hosted', 'gpu']),
      await refuse('deploy from a branch', { repo: 'acme/site', headBranch: 'wip' }, ['self-hosted', 'deploy']),
      await refuse('build (fork pull request)', { repo: 'acme/app', event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app' }, ['self-hosted', 'build']),
    ];

    // A build that tries the house and production: the LAN's web server, the metadata address, prod.
    const [curious] = (await api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', {
      repo: 'acme/app', workflowName: 'ci', jobs: [{ name: 'curious (tries the LAN, the metadata address and prod)', labels: ['self-hosted', 'build'], steps: [
        `for t in ${a.lanWeb} ${a.metadata} ${a.prod}; do if timeout 5 wget -q -O - http://$t/ 2>/dev/null; then echo "REACHED $t"; else echo "BLOCKED $t"; fi; done`,
      ] }],
    })).jobs.map((j) => j.id);

    say(`nightly batch: ${n} build-and-boot jobs, one microVM each; and one deploy`);
    const ids = [...batch.jobs.map((j) => j.id), deploy!];
    const names = new Map(ids.map((id, i) => [id, nightly[i]?.name ?? 'deploy site']));
    const done = new Set<number>();
    const ranOn = new Map<number, string>();
    let billedMinutes = 0;
    while (done.size < ids.length) {
      for (const id of ids) {
        if (done.has(id)) continue;
        const j = await api<SimJob>('GET', `/_sim/jobs/${id}`);
        // Done when the runner has reported and the agent has seen its VM end.
        const rec = await readJobRecord(r, keys(PREFIX), id);
        if (j.status !== 'completed' || !rec?.vm) continue;
        done.add(id);
        ranOn.set(id, rec.host ?? '?');
        const secs = (rec.vm.ms ?? 0) / 1000;
        billedMinutes += Math.max(1, Math.ceil(secs / 60));
        const digest = /\b[0-9a-f]{16}\b/.exec(j.output)?.[0] ?? (/deployed to prod \S+/.exec(j.output)?.[0] ?? '');
        say(`  ${j.conclusion === 'success' ? 'ok ' : 'ERR'} ${names.get(id)!.padEnd(36)} on ${(rec.host ?? '?').padEnd(8)} vm wj-${id}-1  ${secs.toFixed(1).padStart(5)} s  ${digest}`);
      }
      if (Date.now() - started > 20 * 60_000) throw new Error('the batch did not finish within 20 minutes');
      await new Promise((res) => setTimeout(res, 250));
    }
    say(`batch done in ${((Date.now() - started) / 1000).toFixed(0)} s; GitHub-hosted runners would have billed ${billedMinutes} minutes`);
    // Every job passed the gate at job start: its runner asked whether the job GitHub gave it may run there.
    const moves = (await readEvents(r, keys(PREFIX), { count: 100_000 })).filter((e) => e.type === 'move');
    const allowed = moves.filter((e) => e.fields.to === 'started').length;
    say(`gate at job start: ${allowed} allowed, ${moves.filter((e) => e.fields.to === 'refused-at-start').length} refused (each runner asked before its first step)`);
    if (allowed < ids.length) throw new Error(`only ${allowed} of ${ids.length} jobs were allowed by the gate at job start`);
    say();
    say(await whereRan(f, ranOn, deploy!));
    say();
    say('refused, and why');
    await new Promise((res) => setTimeout(res, 1500));
    for (const [run, name] of refused) {
      const id = run.jobs[0]!.id;
      say(`  ${name.padEnd(28)} ${describe(await readJobRecord(r, keys(PREFIX), id))}`);
    }
    say();
    say(await curiousJob(f, r, curious!, [a.lanWeb, a.metadata, a.prod]));
    say();
    say(await dashboardView(f, refused.map(([run]) => run.jobs[0]!.id)));
    say();
    say(await leftovers(f));
    if (opts.keep) {
      say(`Running until Ctrl-C. Try: curl --unix-socket ${f.sockets.dashboard} -H "authorization: Bearer $(cat ${f.dir}/operator-token)" http://dashboard/api/v1/overview`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    await fleet?.close();
  }
}

/** Which host ran what, and the seal: builds on sidekick, the deploy on cloudbox, prod reached from cloudbox only, nothing in to sidekick. */
async function whereRan(f: SeedFleet, ranOn: Map<number, string>, deploy: number): Promise<string> {
  const count = (host: string) => [...ranOn.entries()].filter(([id, h]) => h === host && id !== deploy).length;
  const lines = ['which host ran what'];
  lines.push(`  sidekick  ${count('sidekick')} builds${count('cloudbox') > 0 ? ` (and ${count('cloudbox')} builds on cloudbox: WRONG)` : ''}`);
  lines.push(`  cloudbox  the deploy (${ranOn.get(deploy) === 'cloudbox' ? 'ran here' : `ran on ${ranOn.get(deploy)}: WRONG`})`);
  const prod = await f.prodConnections();
  const inbound = await f.inboundToSidekick();
  lines.push(`  prod      ${prod.fromCloudbox} connections, all from cloudbox's guests; ${prod.fromElsewhere} from anywhere else`);
  lines.push(`  sidekick  accepted ${inbound} inbound connections (it only dials out)`);
  if (count('cloudbox') > 0 || ranOn.get(deploy) !== 'cloudbox' || prod.fromElsewhere > 0 || prod.fromCloudbox === 0 || inbound > 0) {
    throw new Error(`the boxes were not sealed apart:\n${lines.join('\n')}`);
  }
  return lines.join('\n');
}

/** The job that tried the house: what it saw, and what its egress log (from the host's own table) says. */
async function curiousJob(f: Pick<SeedFleet, 'api'>, r: Redis, id: number, targets: string[]): Promise<string> {
  const until = Date.now() + 120_000;
  let raw: string | null = null;
  let egress: unknown = null;
  while (Date.now() < until && !(egress = (await readJobRecord(r, keys(PREFIX), id))?.egress)) await new Promise((res) => setTimeout(res, 250));
  const j = await f.api<SimJob>('GET', `/_sim/jobs/${id}`);
  const denied = egress ? (egress as { denied: { daddr: string; dport: number; packets: number }[] }).denied : [];
  const lines = ['outbound only: a job that tried the house'];
  for (const t of targets) {
    const saw = j.output.includes(`BLOCKED ${t}`) ? 'blocked' : j.output.includes(`REACHED ${t}`) ? 'REACHED' : 'no answer';
    const logged = denied.find((d) => d.daddr === t);
    lines.push(`  ${t.padEnd(16)} ${saw}; ${logged ? `in its egress log (${logged.packets} packets to port ${logged.dport})` : 'NOT in its egress log'}`);
    if (saw !== 'blocked' || !logged) throw new Error(`the curious job's attempt on ${t} was not blocked and logged:\n${j.output}`);
  }
  lines.push(`  (the job's record keeps the whole log; on a real host: hangar egress ${id} --config hangar.yaml)`);
  return lines.join('\n');
}

/** The batch and the savings as the dashboard's API gives them (what the operator's page shows). */
async function dashboardView(f: Pick<SeedFleet, 'sockets' | 'operatorToken'>, refusedIds: number[]): Promise<string> {
  const res = await requestOverSocket(f.sockets.dashboard, 'GET', '/api/v1/overview', undefined, { authorization: `Bearer ${f.operatorToken}` });
  if (res.status !== 200) throw new Error(`the dashboard's overview answered ${res.status}`);
  const o = JSON.parse(res.body) as Overview;
  const lines = ['the dashboard (/api/v1/overview, what its page shows)'];
  const b = o.batch;
  if (b) {
    // Time-weighted busy slots over the batch: each sample holds until the next.
    const u = b.utilisation;
    let busy = 0, span = 0;
    for (let i = 0; i + 1 < u.length; i++) {
      const dt = u[i + 1]!.at - u[i]!.at;
      busy += (u[i]!.total > 0 ? u[i]!.busy / u[i]!.total : 0) * dt;
      span += dt;
    }
    const makespan = b.makespanMs === null ? 'running' : `${(b.makespanMs / 1000).toFixed(0)} s`;
    lines.push(`  nightly batch   ${b.done} of ${b.total} done, ${b.failed} failed, makespan ${makespan}, slots ${span > 0 ? `${((100 * busy) / span).toFixed(0)} %` : '—'} busy over it`);
  }
  const missing = refusedIds.filter((id) => !o.refusals.some((x) => x.workflowJobId === id));
  if (missing.length > 0) throw new Error(`the dashboard's refusals lack jobs the policy refused: ${missing.join(', ')}`);
  lines.push(`  refusals        ${o.refusals.length}: ${[...new Set(o.refusals.map((x) => `${x.why} (${x.where})`))].join(', ')}`);
  const s = o.savings;
  lines.push(`  savings ${s.month}  ${s.jobs} jobs, ${s.minutes} billed minutes at $${s.pricePerMinute}/min = $${s.gross.toFixed(2)}; the ${s.plan} plan's ${s.includedMinutes} included minutes cover $${s.included.toFixed(2)}, so GitHub would bill $${s.saved.toFixed(2)}`);
  lines.push(`  (on a real host: hangar status --config hangar.yaml, or the page at dashboard.listen)`);
  return lines.join('\n');
}

/** What the agents left on their boxes after the batch: nothing, or what. */
async function leftovers(f: SeedFleet): Promise<string> {
  const found = await seedLeftovers(f);
  return found.length === 0
    ? 'Nothing is left behind on either box: every VM, overlay, tap, cgroup and JIT file was removed after its job.'
    : `Left behind: ${found.join(', ')}`;
}

function describe(rec: JobRecord | null): string {
  if (!rec) return 'not recorded';
  const cancelled = rec.runCancelled ? ' (run cancelled)' : '';
  if (rec.decision === 'reject') return `rejected at intake: ${rec.reason}${cancelled}`;
  if (rec.vetRefusal) return `refused after intake: ${rec.vetRefusal}${cancelled}`;
  if (rec.mintRefusal) return `refused at mint time: ${rec.mintRefusal}${cancelled}`;
  if (rec.startRefusal) return `refused at job start: ${rec.startRefusal}${cancelled}`;
  if (rec.runCancelledFor) return `refused before a runner was minted beside it: ${rec.runCancelledFor}${cancelled}`;
  return `${rec.phase ?? rec.decision} (${rec.phaseWhy ?? ''}; GitHub: ${rec.state})`;
}
