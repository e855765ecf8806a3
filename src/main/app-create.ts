import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { appManifest, permissionsFor, type RunnerScope } from '../domain/app-manifest.js';
import { HangarError } from '../domain/errors.js';
import { convertAppManifest, type CreatedApp } from '../github/index.js';

/**
 * `hangar app create`: GitHub's App-manifest flow from the operator's machine. A page on
 * 127.0.0.1 posts the manifest (the permissions Hangar needs, domain/app-manifest.ts) to GitHub;
 * GitHub shows the operator its confirmation page, then sends the browser back to this process's
 * callback with a one-hour code; the code becomes the App (`POST /app-manifests/{code}/conversions`)
 * and its id, key and webhook secret are written as 0600 files. The key and the secrets are
 * printed nowhere.
 */

export interface AppCreateOptions {
  out: string;
  webhookUrl: string;
  /** Where the web pages are: https://github.com, a GHES host, or `hangar sim`'s URL. */
  githubUrl?: string;
  /** The REST API: api.github.com for github.com, `<githubUrl>/api/v3` for GHES, the sim's URL for the sim. */
  apiUrl?: string;
  org?: string;
  name?: string;
  runnerScope?: RunnerScope;
  /** The local page's port (0: any free one). */
  port?: number;
  /** Stop waiting for the operator after this long (default an hour, the life of GitHub's code). */
  timeoutMs?: number;
  /** Where the URL and the result are printed (stdout). */
  print?: (line: string) => void;
}

export const APP_FILES = { appId: 'app-id', key: 'github-app-key.pem', webhookSecret: 'webhook-secret' } as const;

export function defaultApiUrl(githubUrl: string): string {
  const u = new URL(githubUrl);
  if (u.hostname === 'github.com') return 'https://api.github.com';
  return `${u.origin}/api/v3`;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const html = (res: ServerResponse, status: number, title: string, body: string) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`);
};

function sameState(a: string | null, b: string): boolean {
  if (a === null || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

async function writeSecrets(out: string, app: CreatedApp): Promise<Record<keyof typeof APP_FILES, string>> {
  const paths = {
    appId: resolve(out, APP_FILES.appId), key: resolve(out, APP_FILES.key), webhookSecret: resolve(out, APP_FILES.webhookSecret),
  };
  // 'wx': never over a file that appeared since the check at the start.
  await writeFile(paths.appId, `${app.id}\n`, { mode: 0o600, flag: 'wx' });
  await writeFile(paths.key, app.pem.endsWith('\n') ? app.pem : `${app.pem}\n`, { mode: 0o600, flag: 'wx' });
  await writeFile(paths.webhookSecret, `${app.webhookSecret}\n`, { mode: 0o600, flag: 'wx' });
  return paths;
}

export async function appCreate(opts: AppCreateOptions): Promise<CreatedApp> {
  const print = opts.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  for (const [flag, value] of [['--webhook-url', opts.webhookUrl], ['--github-url', opts.githubUrl], ['--api-url', opts.apiUrl]] as const) {
    if (value !== undefined && !/^https?:\/\/[^/]/.test(value)) throw new HangarError('app-create-url', `${flag}: expected an http(s) URL, not "${value}"`);
  }
  const githubUrl = (opts.githubUrl ?? 'https://github.com').replace(/\/+$/, '');
  const apiUrl = opts.apiUrl ?? defaultApiUrl(githubUrl);
  const scope = opts.runnerScope ?? (opts.org ? 'both' : 'repo');
  const existing = Object.values(APP_FILES).map((f) => resolve(opts.out, f)).filter((f) => existsSync(f));
  if (existing.length > 0) {
    throw new HangarError('app-files-exist', `${existing.join(', ')} already exist: hangar app create never overwrites an App's credentials; choose another --out, or remove them first`);
  }
  await mkdir(opts.out, { recursive: true, mode: 0o700 });

  const state = randomBytes(16).toString('hex');
  const newAppPath = opts.org ? `/organizations/${encodeURIComponent(opts.org)}/settings/apps/new` : '/settings/apps/new';
  let settle: { ok: (a: CreatedApp) => void; fail: (e: unknown) => void } | undefined;
  const done = new Promise<CreatedApp>((ok, fail) => (settle = { ok, fail }));
  let exchanging = false;
  let redirectUrl = '';

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/') {
      const manifest = appManifest({ name: opts.name ?? 'Hangar', webhookUrl: opts.webhookUrl, redirectUrl, runnerScope: scope });
      const action = `${githubUrl}${newAppPath}?state=${state}`;
      return html(res, 200, 'Create the Hangar GitHub App', `<form method="post" action="${esc(action)}">
<input type="hidden" name="manifest" value="${esc(JSON.stringify(manifest))}">
<p>This posts Hangar's App manifest to ${esc(githubUrl)}; GitHub asks you to confirm.</p>
<button type="submit">Create the App on GitHub</button></form>
<script>document.forms[0].submit()</script>`);
    }
    if (req.method === 'GET' && url.pathname === '/callback') {
      if (!sameState(url.searchParams.get('state'), state)) {
        return html(res, 400, 'Wrong state', '<p>This answer is not for the manifest this page posted; nothing was created here.</p>');
      }
      const code = url.searchParams.get('code');
      if (!code || exchanging) return html(res, 400, 'No code', '<p>GitHub sent no code, or this one is already being used.</p>');
      exchanging = true;
      convertAppManifest(apiUrl, code)
        .then(async (app) => {
          await writeSecrets(opts.out, app);
          html(res, 200, 'The App is created', `<p>${esc(app.name)} (id ${app.id}). Its credentials are in ${esc(resolve(opts.out))}; you can close this page.</p>`);
          settle?.ok(app);
        })
        .catch((err: unknown) => {
          html(res, 502, 'The App could not be created here', '<p>See the terminal that runs hangar app create.</p>');
          settle?.fail(err);
        });
      return;
    }
    html(res, 404, 'Not Found', '');
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(opts.port ?? 0, '127.0.0.1', () => ok()));
  const port = (server.address() as AddressInfo).port;
  redirectUrl = `http://127.0.0.1:${port}/callback`;
  print(`Open this page in a browser on this machine; it posts Hangar's App manifest to ${githubUrl}${opts.org ? ` (organization ${opts.org})` : ''}:`);
  print(`  http://127.0.0.1:${port}/`);
  print(`(From another machine: ssh -L ${port}:127.0.0.1:${port} THIS-HOST, then open the same URL.)`);

  const timeout = setTimeout(() => settle?.fail(new HangarError('app-create-timeout', 'no answer from GitHub in time: run hangar app create again')), opts.timeoutMs ?? 3_600_000);
  try {
    const app = await done;
    report(print, app, { out: opts.out, githubUrl, apiUrl, scope });
    return app;
  } finally {
    clearTimeout(timeout);
    await new Promise<void>((ok) => server.close(() => ok()).closeAllConnections());
  }
}

function report(print: (l: string) => void, app: CreatedApp, o: { out: string; githubUrl: string; apiUrl: string; scope: RunnerScope }): void {
  const file = (f: string) => resolve(o.out, f);
  print(`Created the GitHub App "${app.name}" (id ${app.id}, slug ${app.slug}) owned by ${app.ownerLogin}.`);
  // What GitHub made, which may differ from what was asked (GitHub adds metadata: read to every App).
  const asked = Object.fromEntries(permissionsFor(o.scope).map((p) => [p.permission, p.access]));
  const got = Object.entries(app.permissions).map(([k, v]) => `${k}: ${v}`).join(', ');
  print(`Permissions: ${got}; events: ${app.events.join(', ')}.`);
  const short = Object.entries(asked).filter(([k, v]) => app.permissions[k] !== v).map(([k, v]) => `${k}: ${v}`);
  if (short.length > 0) print(`Warning: GitHub did not grant ${short.join(', ')}: correct it in the App's settings (Permissions & events).`);
  print(`Wrote (mode 0600): ${file(APP_FILES.appId)}, ${file(APP_FILES.key)}, ${file(APP_FILES.webhookSecret)}.`);
  print('The client secret is not kept (Hangar does not use OAuth); the App\'s settings page makes a new one if ever needed.');
  print('Put these lines in hangar.yaml:');
  print('github:');
  if (o.apiUrl !== 'https://api.github.com') print(`  apiUrl: ${o.apiUrl}`);
  print(`  appId: ${app.id}`);
  print(`  privateKeyFile: ${file(APP_FILES.key)}`);
  print(`  webhookSecretFile: ${file(APP_FILES.webhookSecret)}`);
  print(`Next: install the App on the repositories (or the organization) Hangar runs jobs for: ${o.githubUrl}/apps/${app.slug}/installations/new`);
}
