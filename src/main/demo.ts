import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { readJobRecord, type JobRecord } from '../intake/job-store.js';
import { keys } from '../queue/keys.js';
import { freePort, startLocalRedis } from './local-redis.js';

/**
 * `hangar demo`: a whole installation on this machine — Redis, `hangar sim` (a local GitHub)
 * and `hangar control`, each a real process — fed a nightly batch and a few jobs the policy
 * must refuse. Prints what was decided and queued. The agent and microVMs join in a later release.
 */
const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const BATCH = 24;

interface SimRun {
  runId: number;
  jobs: { id: number; name: string }[];
}

export async function runDemo(opts: { keep?: boolean } = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-demo-'));
  const procs: ResultPromise[] = [];
  const redis = await startLocalRedis({ dir: join(dir, 'redis') }).catch((err: Error) => {
    throw new Error(`cannot start redis-server (apt-get install redis-server): ${err.message}`);
  });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  try {
    say(`redis      ${redis.url} (AOF on, noeviction)`);
    const sim = await start(procs, ['sim', '--port', '0', '--app-key-file', join(dir, 'app.pem'), '--webhook-secret-file', join(dir, 'webhook-secret')], /"url":"([^"]+)".*"sim listening"|"sim listening","url":"([^"]+)"/);
    say(`github     ${sim} (hangar sim)`);
    const port = await freePort();
    writeFileSync(join(dir, 'hangar.yaml'), demoConfig(dir, sim, redis.url, port));
    const control = await start(procs, ['control', '--config', join(dir, 'hangar.yaml')], /"url":"([^"]+)".*"msg":"control listening"/);
    say(`control    ${control}`);
    const api = simApi(sim);
    await api('PUT', '/_sim/webhook', { url: `${control}/webhooks/github`, secret: (await import('node:fs')).readFileSync(join(dir, 'webhook-secret'), 'utf8').trim() });

    for (const [name, visibility, forkOf] of [['app', 'private'], ['site', 'private'], ['oss', 'public'], ['app', 'private', 'acme/app']] as const) {
      await api('POST', '/_sim/repos', { owner: forkOf ? 'mallory' : 'acme', name, visibility, ...(forkOf ? { forkOf } : {}) });
    }
    const runs: SimRun[] = [];
    const nightly = Array.from({ length: BATCH }, (_, i) => ({
      name: `build-and-boot (${['x86_64', 'aarch64', 'riscv64'][i % 3]}, ${['minimal', 'server', 'desktop', 'rescue'][i % 4]}, #${i})`,
      labels: ['self-hosted', 'linux', 'x64', 'build'],
      steps: ['uname -r', `echo image ${i} built`],
    }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/app', event: 'schedule', workflowName: 'nightly', jobs: nightly }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/site', workflowName: 'deploy', jobs: [{ name: 'deploy site', labels: ['self-hosted', 'deploy'], steps: ['echo deploy'] }] }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/site', headBranch: 'wip', workflowName: 'deploy', jobs: [{ name: 'deploy from a branch', labels: ['self-hosted', 'deploy'], steps: ['echo no'] }] }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/oss', workflowName: 'ci', jobs: [{ name: 'public build', labels: ['self-hosted', 'build'], steps: ['echo no'] }] }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/app', workflowName: 'ci', jobs: [{ name: 'needs a gpu', labels: ['self-hosted', 'gpu'], steps: ['echo no'] }] }));
    runs.push(await api('POST', '/_sim/runs', { repo: 'acme/app', workflowName: 'lint', jobs: [{ name: 'hosted lint', labels: ['ubuntu-latest'], steps: ['echo hosted'] }] }));
    const ids = runs.flatMap((r) => r.jobs.map((j) => j.id));

    const r = new Redis(redis.url);
    const k = keys('demo');
    const records = await waitFor(async () => {
      const recs = await Promise.all(ids.map((id) => readJobRecord(r, k, id)));
      // The hosted job is ignored: it never gets a record.
      return recs.filter(Boolean).length >= ids.length - 1 && (await r.xlen(k.outbox)) === 0 ? recs : null;
    }, 30_000);
    say('');
    say('decisions');
    for (const rec of records.filter((x): x is JobRecord => x !== null)) {
      const verdict = rec.decision === 'accept' ? `accept → pool ${rec.pool}` : `reject: ${rec.reason}`;
      if (rec.decision !== 'accept' || !rec.jobName.startsWith('build-and-boot') || rec.jobName.endsWith('#0)')) {
        say(`  ${rec.repo.padEnd(10)} ${rec.jobName.slice(0, 42).padEnd(42)} ${verdict}`);
      }
    }
    say(`  (and ${BATCH - 1} more nightly build-and-boot jobs accepted into pool build; 1 GitHub-hosted job ignored)`);
    const metrics = await (await fetch(`${control}/metrics`)).text();
    say('');
    say('queue depth (waiting for an agent)');
    for (const line of metrics.split('\n').filter((l) => l.startsWith('hangar_queue_depth') && /state="waiting"/.test(l))) say(`  ${line}`);
    r.disconnect();
    say('');
    say('No agent runs yet: the host agent and its microVMs arrive with the next release.');
    if (opts.keep) {
      say(`Running until Ctrl-C. Try: curl ${control}/metrics`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.allSettled(procs);
    await redis.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

function demoConfig(dir: string, sim: string, redisUrl: string, port: number): string {
  return `github: {apiUrl: "${sim}", appId: 1, privateKeyFile: ${dir}/app.pem, webhookSecretFile: ${dir}/webhook-secret}
redis: {url: "${redisUrl}", prefix: demo}
control: {host: 127.0.0.1, port: ${port}}
policy: {repositories: ["acme/*"]}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
log: {level: info}
`;
}

/** Starts `hangar ARGS` and resolves with the first capture of `ready` in its output. */
async function start(procs: ResultPromise[], args: string[], ready: RegExp): Promise<string> {
  const p = execa('node', [CLI, ...args], { reject: false, all: true, buffer: false });
  procs.push(p);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`hangar ${args[0]} did not start:\n${out}`)), 20_000);
    p.all!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve((m[1] ?? m[2])!);
      }
    });
    void p.then((r) => reject(new Error(`hangar ${args[0]} exited (${r.exitCode}):\n${out}`)));
  });
}

function simApi(base: string) {
  return async <T = any>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`sim ${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
}

async function waitFor<T>(probe: () => Promise<T | null>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error('demo: timed out waiting for the control to record every job');
    await new Promise((r) => setTimeout(r, 100));
  }
}
