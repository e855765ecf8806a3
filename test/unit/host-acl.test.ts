import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkAgentFiles, redisTarget } from '../../src/config/secrets.js';
import { ConfigError } from '../../src/domain/errors.js';
import { HOST_COMMAND_RULES, hostAcl, setUserRules } from '../../src/queue/host-acl.js';
import { keys, queueName } from '../../src/queue/keys.js';

/** Redis's glob, enough of it for these patterns: `*` and backslash escapes. */
function globMatch(pattern: string, key: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') re += `\\${pattern[++i]}`;
    else if (c === '*') re += '.*';
    else re += c.replace(/[.+^${}()|[\]?]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(key);
}
const reaches = (patterns: string[], key: string) => patterns.some((p) => globMatch(p, key));

describe('a host\'s ACL: its pools\' queues and nothing else', () => {
  test.each([
    ['one pool', { prefix: 'hangar', host: 'sidekick', pools: ['build'] }, ['hangar:pool-build:*']],
    ['two pools, sorted, no repeats', { prefix: 'h', host: 'a', pools: ['lint', 'build', 'lint'] }, ['h:pool-build:*', 'h:pool-lint:*']],
    ['a deploy host', { prefix: 'prod', host: 'cloudbox', pools: ['deploy'] }, ['prod:pool-deploy:*']],
  ])('%s', (_name, input, want) => {
    const acl = hostAcl(input);
    expect(acl.keyPatterns).toEqual(want);
    expect(acl.channelPatterns).toEqual(want);
    expect(acl.user).toBe(`hangar-host-${input.host}`);
  });

  const k = keys('hangar');
  const build = hostAcl({ prefix: 'hangar', host: 'sidekick', pools: ['build'] }).keyPatterns;
  test.each([
    // BullMQ's keys of its queue: <prefix>:<queueName>:<type> and each job's hash, lock and logs.
    ['the wait list', `hangar:${queueName('build')}:wait`, true],
    ['the queue meta', `hangar:${queueName('build')}:meta`, true],
    ['the events stream of its queue', `hangar:${queueName('build')}:events`, true],
    ['a job hash', `hangar:${queueName('build')}:wj-42`, true],
    ['a job lock', `hangar:${queueName('build')}:wj-42:lock`, true],
    ['the queue key itself', `hangar:${queueName('build')}:`, true],
    ['the deploy queue', `hangar:${queueName('deploy')}:wait`, false],
    ['a pool whose name starts like its own', `hangar:${queueName('build-arm')}:wait`, false],
    ['the same pool of another installation', `other:${queueName('build')}:wait`, false],
    ['a job record', k.job(42), false],
    ['the events stream (decisions)', k.events, false],
    ['the outbox', k.outbox, false],
    ['its own heartbeat (the control writes it)', k.host('sidekick'), false],
    ['another host\'s heartbeat', k.host('cloudbox'), false],
    ['the leader lock', k.leader, false],
    ['the rate budget', k.rateBudget, false],
    ['a mint claim', k.mintClaim(42, 1), false],
    ['a dashboard session', k.dashboardSession('ab'), false],
  ])('%s: %s → %s', (_name, key, want) => expect(reaches(build, key)).toBe(want));

  test('glob characters in a name are literal, so a pattern never widens', () => {
    expect(hostAcl({ prefix: 'a*', host: 'h', pools: ['b?'] }).keyPatterns).toEqual(['a\\*:pool-b\\?:*']);
  });

  test('SETUSER starts from nothing (reset, no keys, no channels) and ends enabled, with the password\'s sha256 once and never the password', () => {
    const acl = hostAcl({ prefix: 'hangar', host: 'sidekick', pools: ['build'] });
    const rules = setUserRules(acl, 'pw-123');
    expect(rules.slice(0, 3)).toEqual(['reset', 'resetkeys', 'resetchannels']);
    expect(rules).toContain('~hangar:pool-build:*');
    expect(rules).toContain('&hangar:pool-build:*');
    expect(rules.filter((r) => r.includes('pw-123'))).toEqual([]);
    expect(rules.filter((r) => r.startsWith('#') || r.startsWith('>'))).toEqual([`#${createHash('sha256').update('pw-123').digest('hex')}`]);
    expect(rules.at(-1)).toBe('on');
    expect(rules).not.toContain('allkeys');
    expect(rules).not.toContain('allchannels');
  });

  test('commands: no admin or dangerous ones but INFO; nothing that lists keys or changes scripts for everyone', () => {
    expect(HOST_COMMAND_RULES.slice(0, 3)).toEqual(['+@all', '-@admin', '-@dangerous']);
    for (const deny of ['-scan', '-randomkey', '-function', '-script|flush', '-script|kill']) expect(HOST_COMMAND_RULES).toContain(deny);
    expect(HOST_COMMAND_RULES.filter((r) => r.startsWith('+'))).toEqual(['+@all', '+info']);
  });
});

describe('redisTarget: the agent connects as its url\'s user with the password from its file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-redis-target-'));
  const pw = join(dir, 'pw');
  writeFileSync(pw, 'p@ss/word\n', { mode: 0o600 });
  test.each([
    ['no password file: the url as written', { url: 'redis://a:b@h:1' }, { url: 'redis://a:b@h:1', auth: {} }],
    ['a user in the url', { url: 'redis://hangar-host-x@h:6379', passwordFile: pw }, { url: 'redis://h:6379', auth: { username: 'hangar-host-x', password: 'p@ss/word' } }],
    ['TLS and a db number kept', { url: 'rediss://u@h:6380/2', passwordFile: pw }, { url: 'rediss://h:6380/2', auth: { username: 'u', password: 'p@ss/word' } }],
    ['no user: the default user\'s password', { url: 'redis://h:6379', passwordFile: pw }, { url: 'redis://h:6379', auth: { password: 'p@ss/word' } }],
  ])('%s', (_name, input, want) => {
    const t = redisTarget(input);
    expect({ url: t.url, auth: t.auth }).toEqual(want);
    // The auth is what every connection's options carry (with rediss://, beside the TLS check).
    expect(t.options).toMatchObject(want.auth);
  });

  test('an unreadable or empty file is a ConfigError naming redis.passwordFile, in config check too', () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    for (const file of [join(dir, 'nope'), empty]) {
      expect(() => redisTarget({ url: 'redis://u@h:1', passwordFile: file })).toThrow(ConfigError);
      expect(checkAgentFiles({ redis: { passwordFile: file } })).toEqual([{ path: 'redis.passwordFile', message: expect.stringContaining(file) }]);
    }
    expect(checkAgentFiles({ redis: { passwordFile: pw } })).toEqual([]);
  });
});
