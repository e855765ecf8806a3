import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkSections, parseConfig, requireControl } from '../../src/config/load.js';
import { redisTarget } from '../../src/config/secrets.js';
import { checkRedisTlsFiles } from '../../src/config/tls-files.js';
import { ConfigError } from '../../src/domain/errors.js';
import { makeCa } from '../helpers/tls.js';

/** `redis.tls`: how a rediss:// Redis (on another box) is trusted, as the schema and `hangar config check` see it. */
const base = 'github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\npools: [{name: b, labels: [self-hosted]}]\ndashboard: {tokenFile: t}\n';
const problemsOf = (redis: string) => checkSections(parseConfig(`${base}redis: ${redis}\n`, 't.yaml')).problems.map(({ path, message }) => ({ path, message }));
const pin = 'ab'.repeat(32);

describe('redis.tls in the schema', () => {
  test.each([
    ['a tls section with plain redis://', '{url: "redis://10.0.0.2:6379", tls: {caFile: ca.pem}}', [['redis.tls', /redis\.url redis:\/\/10\.0\.0\.2:6379 is plain redis:\/\/, where a certificate cannot be checked: use rediss:\/\/ or remove redis\.tls/]]],
    ['even an empty one', '{url: "redis://10.0.0.2:6379", tls: {}}', [['redis.tls', /plain redis:\/\//]]],
    ['a key it does not know', '{url: "rediss://r:6380", tls: {caFlie: ca.pem}}', [['redis.tls.caFlie', /caFile/]]],
    ['a pin that is not a sha256', '{url: "rediss://r:6380", tls: {certSha256: "abc"}}', [['redis.tls.certSha256', /64 hex digits/]]],
    ['a server name with a space', '{url: "rediss://r:6380", tls: {serverName: "a b"}}', [['redis.tls.serverName', /expected a DNS name/]]],
  ])('%s', (_n, redis, want) => {
    const problems = problemsOf(redis);
    expect(problems.map((p) => p.path).sort()).toEqual(want.map(([p]) => p).sort());
    for (const [path, re] of want) expect(problems.find((p) => p.path === path)!.message).toMatch(re as RegExp);
  });

  test('the plain url in that message never shows its password', () => {
    const [p] = problemsOf('{url: "redis://user:hunter2-secret@10.0.0.2:6379", tls: {}}');
    expect(p!.message).toContain('redis://user:***@10.0.0.2:6379');
    expect(p!.message).not.toContain('hunter2-secret');
  });

  test('allowed: rediss:// with a CA, a pin (openssl\'s colons folded), a name, all of them, or none (system CAs)', () => {
    expect(problemsOf('{url: "rediss://r:6380", tls: {caFile: ca.pem}}')).toEqual([]);
    expect(problemsOf('{url: "rediss://r:6380"}')).toEqual([]);
    expect(problemsOf(`{url: "rediss://10.0.0.2:6380", tls: {caFile: ca.pem, certSha256: "${pin}", serverName: redis.lan}}`)).toEqual([]);
    const colons = pin.toUpperCase().match(/../g)!.join(':');
    expect(requireControl(parseConfig(`${base}redis: {url: "rediss://r:6380", tls: {certSha256: "${colons}"}}\n`, 't')).redis.tls).toEqual({ certSha256: pin });
  });
});

describe('redis.tls.caFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-redis-tls-'));
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
  writeFileSync(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');

  test.each([
    ['missing', 'missing.pem', /cannot read .*missing\.pem: ENOENT/],
    ['not PEM', 'junk.pem', /junk\.pem holds no PEM certificate/],
    ['PEM that is no certificate', 'broken.pem', /broken\.pem is not a readable PEM certificate/],
  ])('%s: config check names the key', (_n, file, re) => {
    expect(checkRedisTlsFiles({ redis: { url: 'rediss://r:6380', tls: { caFile: join(dir, file) } } })).toEqual([{ path: 'redis.tls.caFile', message: expect.stringMatching(re) }]);
  });

  test('a readable CA: no problem; no tls section: nothing to check', () => {
    const ca = makeCa();
    expect(checkRedisTlsFiles({ redis: { url: 'rediss://r:6380', tls: { caFile: ca.certFile } } })).toEqual([]);
    expect(checkRedisTlsFiles({ redis: { url: 'redis://r:6379' } })).toEqual([]);
  });

  test('redisTarget: an unreadable CA is a ConfigError naming redis.tls.caFile, for every process', () => {
    let err: unknown;
    try {
      redisTarget({ url: 'rediss://r:6380', tls: { caFile: join(dir, 'missing.pem') } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([{ path: 'redis.tls.caFile', message: expect.stringMatching(/cannot read .*missing\.pem: ENOENT/) }]);
  });

  test('redisTarget: rediss:// gets the TLS check in its options (and the trust as data for a thread); redis:// none', () => {
    const ca = makeCa();
    const t = redisTarget({ url: 'rediss://r:6380', tls: { caFile: ca.certFile, serverName: 'redis.lan' } });
    expect(t.trust).toEqual({ ca: ca.pem.trim(), serverName: 'redis.lan' });
    expect(t.options.tls).toEqual({ ca: ca.pem.trim(), servername: 'redis.lan' });
    expect(typeof t.options.Connector).toBe('function');
    expect(() => structuredClone({ auth: t.auth, trust: t.trust })).not.toThrow();
    // rediss:// without a section: the system's CAs, still checked by our connector.
    expect(redisTarget({ url: 'rediss://r:6380' }).trust).toEqual({});
    const plain = redisTarget({ url: 'redis://r:6379' });
    expect(plain.trust).toBeNull();
    expect(plain.options).toEqual({});
  });
});
