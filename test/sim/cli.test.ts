import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createAppAuth } from '@octokit/auth-app';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReceiver, type Receiver } from './helpers/receiver.js';

/** The real `hangar sim` from dist/, as the demo and other suites start it. */
const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

beforeAll(async () => {
  // Built once by test/run.sh before any lane, not here.
  for (const f of ['dist/main/cli.js', 'dist/main/sim.js', 'dist/sim/server.js']) {
    if (!existsSync(join(root, f))) throw new Error(`dist/ has no ${f}: run npm run build (npm test does)`);
  }
  dir = await mkdtemp(join(tmpdir(), 'hangar-sim-cli-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function readyLine(child: ResultPromise): Promise<{ msg: string; url: string }> {
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) return JSON.parse(line) as { msg: string; url: string };
  throw new Error('hangar sim exited without a ready line');
}

test('hangar sim: one JSON ready line, makes missing secret files, signs with them, stops on SIGTERM', async () => {
  const keyFile = join(dir, 'app.pem');
  const secretFile = join(dir, 'webhook-secret');
  let receiver: Receiver | undefined;
  const child = execa('node', ['dist/main/cli.js', 'sim', '--port', '0', '--app-id', '5', '--installation-id', '9', '--app-key-file', keyFile, '--webhook-secret-file', secretFile], {
    cwd: root, reject: false, buffer: { stdout: false, stderr: true },
  });
  try {
    const ready = await readyLine(child);
    expect(ready).toEqual({ msg: 'sim listening', url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    const secret = (await readFile(secretFile, 'utf8')).trim();
    const key = await readFile(keyFile, 'utf8');
    expect(key).toContain('BEGIN RSA PRIVATE KEY');
    receiver = await startReceiver(secret);

    const put = (path: string, body: unknown, method = 'POST') =>
      fetch(`${ready.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await put('/_sim/webhook', { url: receiver.url, secret }, 'PUT')).status).toBe(200);
    expect((await put('/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' })).status).toBe(201);
    expect((await put('/_sim/runs', { repo: 'acme/app', jobs: [{ name: 'b', labels: ['build'], steps: ['true'] }] })).status).toBe(201);
    const [hook] = await receiver.waitFor(1);
    expect(hook!.signatureOk).toBe(true);
    expect(hook!.payload.installation).toMatchObject({ id: 9 });

    const { token } = await createAppAuth({ appId: 5, privateKey: key })({ type: 'app' });
    const res = await fetch(`${ready.url}/app/installations/9/access_tokens`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(201);
  } finally {
    child.kill('SIGTERM');
    const result = await child;
    await receiver?.close();
    expect(result.exitCode).toBe(0);
    expect(String(result.stderr)).toContain('sim stopped');
    expect(String(result.stderr)).not.toContain(await readFile(secretFile, 'utf8').then((s) => s.trim()));
  }
}, 30_000);
