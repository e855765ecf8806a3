import { generateKeyPairSync, createSign } from 'node:crypto';
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectGitHubShape } from './helpers/openapi.js';
import { startSim, type SimHarness } from './helpers/sim.js';

/** App JWTs checked as GitHub checks them; installation tokens; the secondary-rate-limit knob. */
let h: SimHarness;
beforeAll(async () => {
  h = await startSim();
});
afterAll(async () => h.close());

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
function jwtWith(claims: Record<string, unknown>, key: string, alg = 'RS256'): string {
  const head = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${createSign('RSA-SHA256').update(head).sign(key).toString('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const mint = (jwt: string) => h.call('POST', '/app/installations/7/access_tokens', { auth: `Bearer ${jwt}` });

describe('App JWT', () => {
  test('made by @octokit/auth-app with the App key: accepted; Octokit works end to end', async () => {
    const octokit = new Octokit({
      baseUrl: h.url,
      authStrategy: createAppAuth,
      auth: { appId: h.sim.appId, privateKey: h.sim.appPrivateKeyPem, installationId: h.sim.installationId },
    });
    const { data, status } = await octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'acme', repo: 'app', name: 'oct-1', runner_group_id: 1, labels: ['self-hosted'] });
    expect(status).toBe(201);
    expect(data.runner.name).toBe('oct-1');
    const list = await octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForRepo, { owner: 'acme', repo: 'app', per_page: 1 });
    expect(list.map((r) => r.name)).toEqual(['oct-1']);
  });

  test('signed with another key: refused with GitHub’s 401', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const { token } = await createAppAuth({ appId: 42, privateKey: other })({ type: 'app' });
    const res = await mint(token);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ message: 'A JSON web token could not be decoded' });
    expectGitHubShape('POST', '/app/installations/{installation_id}/access_tokens', 401, res.body);
  });

  test.each([
    ['expired', { iat: now() - 700, exp: now() - 100, iss: 42 }],
    ['longer than ten minutes', { iat: now(), exp: now() + 3600, iss: 42 }],
    ['issued in the future', { iat: now() + 600, exp: now() + 900, iss: 42 }],
    ['another app', { iat: now() - 30, exp: now() + 500, iss: 43 }],
    ['no iat', { exp: now() + 500, iss: 42 }],
  ])('%s: refused', async (_name, claims) => {
    const res = await mint(jwtWith(claims, h.sim.appPrivateKeyPem));
    expect(res.status).toBe(401);
  });

  test('alg none and garbage: refused', async () => {
    const head = `${b64({ alg: 'none' })}.${b64({ iat: now(), exp: now() + 60, iss: 42 })}.`;
    expect((await mint(head)).status).toBe(401);
    expect((await mint('not.a.jwt')).status).toBe(401);
  });

  test('hand-made JWT with the right claims: accepted (iss as a string too)', async () => {
    expect((await mint(jwtWith({ iat: now() - 30, exp: now() + 570, iss: '42' }, h.sim.appPrivateKeyPem))).status).toBe(201);
  });

  test('an installation token is no App JWT', async () => {
    expect((await h.call('GET', '/app/hook/deliveries')).status).toBe(401);
  });

  test('expired installation tokens are refused', async () => {
    h.sim.setKnobs({ tokenTtlSeconds: 1 });
    const { token } = await createAppAuth({ appId: 42, privateKey: h.sim.appPrivateKeyPem, installationId: 7, request: new Octokit({ baseUrl: h.url }).request })({ type: 'installation', refresh: true });
    h.sim.setKnobs({ tokenTtlSeconds: 3600 });
    expect((await h.call('GET', '/repos/acme/app', { auth: `token ${token}` })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const res = await h.call('GET', '/repos/acme/app', { auth: `token ${token}` });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe('Bad credentials');
  });
});

describe('secondary rate limit knob', () => {
  test('share 1: every REST call is 403 with retry-after and GitHub’s message; the control API is not', async () => {
    await h.call('PUT', '/_sim/knobs', { body: { rateLimitShare: 1, retryAfterSeconds: 7 }, auth: null });
    try {
      const res = await h.call('GET', '/repos/acme/app/actions/runners');
      expect(res.status).toBe(403);
      expect(res.headers.get('retry-after')).toBe('7');
      expect(res.body.message).toMatch(/^You have exceeded a secondary rate limit/);
      expect(res.body.documentation_url).toContain('secondary-rate-limits');
      expectGitHubShape('GET', '/repos/{owner}/{repo}', 403, res.body);
      expect((await h.call('GET', '/_sim/runners', { auth: null })).status).toBe(200);
      await h.call('PUT', '/_sim/knobs', { body: { rateLimitStatus: 429 }, auth: null });
      expect((await h.call('GET', '/repos/acme/app')).status).toBe(429);
    } finally {
      await h.call('PUT', '/_sim/knobs', { body: { rateLimitShare: 0, rateLimitStatus: 403 }, auth: null });
    }
  });

  test('share 0.5 with a seed: about half, the same each time', async () => {
    const sample = async () => {
      h.sim.setKnobs({ rateLimitShare: 0.5, seed: 99 });
      const codes: number[] = [];
      for (let i = 0; i < 40; i++) codes.push((await h.call('GET', '/repos/acme/app')).status);
      h.sim.setKnobs({ rateLimitShare: 0 });
      return codes;
    };
    const a = await sample();
    const limited = a.filter((c) => c === 403).length;
    expect(limited).toBeGreaterThan(8);
    expect(limited).toBeLessThan(32);
    expect(await sample()).toEqual(a);
  });

  test('the primary limit: the hour’s last request says remaining 0, the next is GitHub’s 403 until the reset', async () => {
    const used = Number((await h.call('GET', '/repos/acme/app')).headers.get('x-ratelimit-used'));
    h.sim.setKnobs({ rateLimitPerHour: used + 2 });
    try {
      expect((await h.call('GET', '/repos/acme/app')).headers.get('x-ratelimit-remaining')).toBe('1');
      const last = await h.call('GET', '/repos/acme/app');
      expect(last.status).toBe(200);
      expect(last.headers.get('x-ratelimit-remaining')).toBe('0');
      const over = await h.call('GET', '/repos/acme/app');
      expect(over.status).toBe(403);
      expect(over.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(Number(over.headers.get('x-ratelimit-reset'))).toBeGreaterThan(now());
      expect((over.body as { message: string }).message).toMatch(/^API rate limit exceeded/);
    } finally {
      h.sim.setKnobs({ rateLimitPerHour: 5000 });
    }
    expect((await h.call('GET', '/repos/acme/app')).status).toBe(200);
  });

  test('GitHub’s rate-limit headers on every REST answer', async () => {
    const res = await h.call('GET', '/repos/acme/app');
    for (const k of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-used', 'x-github-request-id']) expect(res.headers.get(k)).toBeTruthy();
    expect(res.headers.get('x-ratelimit-resource')).toBe('core');
  });
});
