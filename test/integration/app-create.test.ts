import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createAppAuth } from '@octokit/auth-app';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, expect, test } from 'vitest';

/**
 * `hangar app create` against a real `hangar sim`, both from dist/. The browser is played with
 * plain HTTP: fetch the local page, post its form to the sim, confirm on the sim's page, follow
 * the redirect to the local callback.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let sim: ResultPromise;
let simUrl: string;
let oldKey: string;

async function firstLine(child: ResultPromise): Promise<string> {
  for await (const line of createInterface({ input: child.stdout! })) return line;
  throw new Error('exited without a line');
}

beforeAll(async () => {
  for (const f of ['dist/main/cli.js', 'dist/main/app-create.js', 'dist/sim/routes-manifest.js']) {
    if (!existsSync(join(root, f))) throw new Error(`dist/ has no ${f}: run npm run build (npm test does)`);
  }
  dir = await mkdtemp(join(tmpdir(), 'hangar-app-create-'));
  sim = execa('node', ['dist/main/cli.js', 'sim', '--port', '0', '--app-id', '5', '--installation-id', '9', '--app-key-file', join(dir, 'sim-app.pem')], {
    cwd: root, reject: false, buffer: { stdout: false, stderr: true },
  });
  simUrl = (JSON.parse(await firstLine(sim)) as { url: string }).url;
  oldKey = await readFile(join(dir, 'sim-app.pem'), 'utf8');
  const repo = await fetch(`${simUrl}/_sim/repos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ owner: 'acme', name: 'app', visibility: 'private' }) });
  expect(repo.status).toBe(201);
});
afterAll(async () => {
  sim?.kill('SIGTERM');
  await sim;
  await rm(dir, { recursive: true, force: true });
});

/** Starts `hangar app create`, collecting its stdout; resolves the local page's URL once printed. */
function startCreate(args: string[]): { child: ResultPromise; out: string[]; pageUrl: Promise<string> } {
  const child = execa('node', ['dist/main/cli.js', 'app', 'create', '--github-url', simUrl, '--api-url', simUrl, ...args], {
    cwd: root, reject: false, buffer: { stdout: false, stderr: true },
  });
  const out: string[] = [];
  const pageUrl = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      out.push(line);
      const m = /^\s+(http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
      if (m) resolve(m[1]!);
    }).on('close', () => reject(new Error(`app create printed no page URL: ${out.join('\n')}`)));
  });
  return { child, out, pageUrl };
}

const formPost = (url: string, fields: Record<string, string>) =>
  fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
const unescape = (s: string) => s.replace(/&#(\d+);/g, (_m, c: string) => String.fromCharCode(Number(c)));

/** What a browser does between the local page and GitHub: the callback URL GitHub redirects to. */
async function throughGitHub(
  pageUrl: string,
  want = { path: '/settings/apps/new', permissions: { actions: 'write', administration: 'write', metadata: 'read' } as Record<string, string> },
): Promise<URL> {
  const page = await (await fetch(pageUrl)).text();
  const action = unescape(/<form method="post" action="([^"]+)"/.exec(page)?.[1] ?? '');
  const manifest = unescape(/name="manifest" value="([^"]+)"/.exec(page)?.[1] ?? '');
  expect(action).toMatch(new RegExp(`^${simUrl}${want.path}\\?state=[0-9a-f]{32}$`));
  expect(JSON.parse(manifest)).toMatchObject({
    default_events: ['workflow_job'], hook_attributes: { url: 'https://ci.example.com/webhooks/github', active: true },
    public: false,
  });
  expect(JSON.parse(manifest).default_permissions).toEqual(want.permissions);
  const shown = await formPost(action, { manifest });
  expect(shown.status).toBe(200);
  const pageId = /name="page" value="([0-9a-f]+)"/.exec(await shown.text())?.[1];
  const confirmed = await formPost(`${simUrl}/settings/apps/new/confirm`, { page: pageId!, name: 'Hangar CI' });
  expect(confirmed.status).toBe(302);
  return new URL(confirmed.headers.get('location')!);
}

test('creates the App on the sim: 0600 files, the id is the sim\'s App, the key authenticates; the key and secret are printed nowhere', async () => {
  const out = join(dir, 'creds');
  const run = startCreate(['--out', out, '--webhook-url', 'https://ci.example.com/webhooks/github']);
  const callback = await throughGitHub(await run.pageUrl);
  expect(callback.pathname).toBe('/callback');

  // A callback with another state is refused, and the command keeps waiting for the right one.
  const forged = new URL(callback);
  forged.searchParams.set('state', 'f'.repeat(32));
  expect((await fetch(forged)).status).toBe(400);
  const answer = await fetch(callback);
  expect(answer.status, await answer.text()).toBe(200);
  const result = await run.child;
  expect(result.exitCode, String(result.stderr)).toBe(0);

  for (const f of ['app-id', 'github-app-key.pem', 'webhook-secret']) {
    expect(((await stat(join(out, f))).mode & 0o777).toString(8), f).toBe('600');
  }
  const appId = Number((await readFile(join(out, 'app-id'), 'utf8')).trim());
  const key = await readFile(join(out, 'github-app-key.pem'), 'utf8');
  const secret = (await readFile(join(out, 'webhook-secret'), 'utf8')).trim();
  expect(key).toContain('BEGIN RSA PRIVATE KEY');
  expect(secret).toMatch(/^[0-9a-f]{40}$/);

  const jwt = (await createAppAuth({ appId, privateKey: key })({ type: 'app' })).token;
  const app = await fetch(`${simUrl}/app`, { headers: { authorization: `Bearer ${jwt}` } });
  expect(app.status).toBe(200);
  expect(await app.json()).toMatchObject({ id: appId, name: 'Hangar CI', events: ['workflow_job'] });
  const oldJwt = (await createAppAuth({ appId: 5, privateKey: oldKey })({ type: 'app' })).token;
  expect((await fetch(`${simUrl}/app`, { headers: { authorization: `Bearer ${oldJwt}` } })).status).toBe(401);
  const token = await fetch(`${simUrl}/app/installations/9/access_tokens`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } });
  expect(token.status).toBe(201);

  const printed = run.out.join('\n');
  expect(printed).toContain(`  appId: ${appId}`);
  expect(printed).toContain(`  privateKeyFile: ${join(out, 'github-app-key.pem')}`);
  expect(printed).toContain(`  webhookSecretFile: ${join(out, 'webhook-secret')}`);
  expect(printed).toContain(`  apiUrl: ${simUrl}`);
  expect(printed).toMatch(/installations\/new/);
  expect(printed).toMatch(/^Permissions: .*actions: write.*; events: workflow_job\.$/m);
  expect(printed).not.toContain('did not grant');
  const everything = `${printed}\n${String(result.stderr)}`;
  expect(everything).not.toContain(secret);
  expect(everything).not.toContain(key.split('\n')[1]!);

  // The callback's code is spent: GitHub (and the sim) answer 404 to a second conversion.
  const again = await fetch(`${simUrl}/app-manifests/${callback.searchParams.get('code')}/conversions`, { method: 'POST' });
  expect(again.status).toBe(404);
}, 60_000);

test('refuses an --out that already holds an App\'s files, before anything is posted', async () => {
  const out = join(dir, 'taken');
  await rm(out, { recursive: true, force: true });
  await execa('mkdir', ['-p', out]);
  await writeFile(join(out, 'github-app-key.pem'), 'old key\n', { mode: 0o600 });
  const result = await execa('node', ['dist/main/cli.js', 'app', 'create', '--github-url', simUrl, '--api-url', simUrl, '--out', out, '--webhook-url', 'https://ci.example.com/webhooks/github'], { cwd: root, reject: false });
  expect(result.exitCode).toBe(1);
  expect(result.stderr).toMatch(/github-app-key\.pem already exist.*never overwrites/);
  expect(result.stdout).toBe('');
  expect(await readFile(join(out, 'github-app-key.pem'), 'utf8')).toBe('old key\n');
});

test('--org: the manifest goes to the organization\'s page, the App is the organization\'s, with the org runner permission only (--runner-scope org)', async () => {
  const out = join(dir, 'org-creds');
  const run = startCreate(['--out', out, '--org', 'acme', '--runner-scope', 'org', '--webhook-url', 'https://ci.example.com/webhooks/github']);
  const callback = await throughGitHub(await run.pageUrl, {
    path: '/organizations/acme/settings/apps/new', permissions: { actions: 'write', organization_self_hosted_runners: 'write', metadata: 'read' },
  });
  expect((await fetch(callback)).status).toBe(200);
  expect((await run.child).exitCode).toBe(0);
  const appId = Number((await readFile(join(out, 'app-id'), 'utf8')).trim());
  const jwt = (await createAppAuth({ appId, privateKey: await readFile(join(out, 'github-app-key.pem'), 'utf8') })({ type: 'app' })).token;
  const app = (await (await fetch(`${simUrl}/app`, { headers: { authorization: `Bearer ${jwt}` } })).json()) as Record<string, any>;
  expect(app).toMatchObject({ id: appId, owner: { login: 'acme', type: 'Organization' }, permissions: { organization_self_hosted_runners: 'write' } });
  expect(app.permissions.administration).toBeUndefined();
}, 60_000);
