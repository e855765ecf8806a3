import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, validateConfig, type Config } from '../config/load.js';
import { hostName, checkPoolsAndHosts } from '../config/schema.js';
import { redisTarget } from '../config/secrets.js';
import { HangarError } from '../domain/errors.js';
import { tokenSha256 } from '../jit/host-auth.js';
import { revokeToken } from '../jit/host-revocation.js';
import { hostAcl, hostAclUser, setUserRules } from '../queue/host-acl.js';
import { keys } from '../queue/keys.js';
import { connectRedis } from '../queue/redis-connect.js';
import { redactRedisUrl } from '../queue/redis-readiness.js';

/**
 * `hangar host add` and `hangar host remove`: a host's two credentials, its token (for the
 * control's API) and its Redis ACL user (for its pools' queues only), made and revoked from the
 * control's config. A removed host's token is revoked in Redis (jit/host-revocation.ts), refused
 * from its next request. Secrets go to 0600 files and over the Redis connection, never to argv or logs.
 */

export interface HostAddOptions {
  role: 'build' | 'deploy';
  pools: string[];
  config: string;
  out: string;
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function hostAdd(name: string, opts: HostAddOptions, io: Io = stdio): Promise<void> {
  const config = validateConfig(loadConfig(opts.config));
  checkNewHost(config, name, opts);
  const acl = hostAcl({ prefix: config.redis.prefix, host: name, pools: opts.pools });
  await withAdmin(config, async (redis) => {
    if (await userExists(redis, acl.user)) {
      throw new HangarError('host-exists', `Redis already has the ACL user ${acl.user}: run "hangar host remove ${name}" first (a host may be using it)`);
    }
    const token = randomBytes(32).toString('base64url');
    const password = randomBytes(32).toString('base64url');
    const dir = resolve(opts.out);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tokenFile = join(dir, `${name}.token`);
    const passwordFile = join(dir, `${name}.redis-password`);
    writeSecret(tokenFile, token);
    try {
      writeSecret(passwordFile, password);
      await redis.call('ACL', 'SETUSER', acl.user, ...setUserRules(acl, password)).catch((err: Error) => {
        throw new HangarError('acl-refused', `Redis refused ACL SETUSER ${acl.user}: ${err.message.split(password).join('***')}`);
      });
    } catch (err) {
      // Nothing half-made stays behind: a second try starts clean.
      rmSync(passwordFile, { force: true });
      rmSync(tokenFile, { force: true });
      throw err;
    }
    const persisted = await persistAcl(redis);
    io.out(enrolment({ config, name, opts, user: acl.user, keyPatterns: acl.keyPatterns, tokenFile, passwordFile, sha: tokenSha256(token) }));
    io.err(persistNote(persisted));
  });
}

export async function hostRemove(name: string, opts: { config: string }, io: Io = stdio): Promise<void> {
  const config = validateConfig(loadConfig(opts.config));
  if (!hostName.safeParse(name).success) throw new HangarError('host-name', `"${name}" is not a host name`);
  const user = hostAclUser(name);
  const entry = config.hosts.find((h) => h.name === name);
  await withAdmin(config, async (redis) => {
    // The token first: it is what mints runners. The control reads this on every host request.
    const k = keys(config.redis.prefix);
    const revoked = entry ? await revokeToken(redis, k, entry.tokenSha256, name) : null;
    // Its heartbeat goes too: the dashboard stops listing it, and another host may take over its jobs' claims (jit/mint.ts).
    await redis.del(k.host(name));
    // Redis closes the connections that authenticated as the user, so its agent loses its queues at once.
    const n = Number(await redis.call('ACL', 'DELUSER', user));
    const persisted = n > 0 ? await persistAcl(redis) : 'unchanged';
    io.out(removal(name, user, revoked, n > 0));
    io.err(persistNote(persisted));
  });
}

function removal(name: string, user: string, revoked: boolean | null, deleted: boolean): string {
  const token = revoked === null
    ? `the config has no hosts entry "${name}": no token to revoke, so only its Redis user is removed\n` +
      '(if a control has its entry in a config of its own, remove it there and restart that control).\n'
    : `${revoked ? 'revoked' : 'already revoked'}: host ${name}'s token (its hosts entry's tokenSha256); every control refuses it\n` +
      'from its next request (403 host-revoked), with no restart, even while the entry stays in hosts:.\n';
  const acl = deleted ? `deleted the Redis ACL user ${user}; its connections are closed\n` : `Redis has no ACL user ${user} (already removed)\n`;
  const tidy = revoked === null ? '' : `You may now remove the hosts entry "${name}" from the control's config (tidiness only).\n`;
  return `${token}${acl}${tidy}On the host, delete ${name}.token and ${name}.redis-password.\n`;
}

function checkNewHost(config: Config, name: string, opts: HostAddOptions): void {
  if (!hostName.safeParse(name).success) throw new HangarError('host-name', `"${name}" is not a host name: lowercase letters, digits and dashes, at most 31`);
  if (opts.pools.length === 0) throw new HangarError('host-pools', '--pools names no pool');
  const problems = checkPoolsAndHosts({ pools: config.pools, hosts: [{ name, role: opts.role, pools: opts.pools }] });
  if (problems.length > 0) throw new HangarError('host-pools', `--pools: ${problems.map((p) => p.message).join('; ')}`);
}

function writeSecret(file: string, value: string): void {
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new HangarError('secret-file-exists', `${file} already exists: hangar host add never overwrites one (a host may be using it); remove it first, or use another --out`);
  }
}

async function withAdmin<T>(config: Config, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const target = redisTarget(config.redis);
  const redis = new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null, ...target.options });
  redis.on('error', () => undefined);
  try {
    await connectRedis(redis, config.redis.url);
    await redis.call('ACL', 'WHOAMI').catch(() => {
      throw new HangarError('no-acl', `Redis at ${redactRedisUrl(config.redis.url)} has no ACL (needs Redis 6 or later), or this user may not use it`);
    });
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

async function userExists(redis: Redis, user: string): Promise<boolean> {
  return (await redis.call('ACL', 'GETUSER', user)) !== null;
}

type Persisted = 'saved' | 'no-aclfile' | 'unknown' | 'unchanged';

/** `ACL SAVE` when Redis keeps users in an aclfile; otherwise they live until its restart (persistNote says what to do). */
async function persistAcl(redis: Redis): Promise<Persisted> {
  let aclfile: string;
  try {
    aclfile = String(((await redis.call('CONFIG', 'GET', 'aclfile')) as string[])[1] ?? '');
  } catch {
    return 'unknown';
  }
  if (aclfile === '') return 'no-aclfile';
  await redis.call('ACL', 'SAVE');
  return 'saved';
}

function persistNote(p: Persisted): string {
  if (p === 'saved') return 'hangar: saved to Redis\'s aclfile (ACL SAVE)\n';
  if (p === 'unchanged') return '';
  const why = p === 'no-aclfile' ? 'Redis has no aclfile' : 'cannot read Redis\'s aclfile setting (CONFIG GET is not allowed)';
  return `hangar: warning: ${why}: the change lasts only until Redis restarts. Set "aclfile" in redis.conf (then ACL SAVE, which hangar host runs), or run CONFIG REWRITE to write the users into redis.conf.\n`;
}

/** The control's redis.tls, for the agent's config: it trusts the same Redis by the same certificate. */
function redisTlsLines(redis: Config['redis']): string[] {
  const t = redis.tls;
  if (!redis.url.startsWith('rediss://') || !t) return [];
  return [
    '  tls:',
    ...(t.caFile ? [`    caFile: ${t.caFile}  # copy this CA there too (it is no secret)`] : []),
    ...(t.certSha256 ? [`    certSha256: ${t.certSha256}`] : []),
    ...(t.serverName ? [`    serverName: ${t.serverName}`] : []),
  ];
}

function enrolment(o: { config: Config; name: string; opts: HostAddOptions; user: string; keyPatterns: string[]; tokenFile: string; passwordFile: string; sha: string }): string {
  const url = new URL(o.config.redis.url);
  url.username = o.user;
  url.password = '';
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  return [
    `# Host ${o.name} (${o.opts.role}; pools ${o.opts.pools.join(', ')}): token in ${o.tokenFile}, Redis password in ${o.passwordFile} (both 0600).`,
    `# Its Redis user ${o.user} reaches only ${o.keyPatterns.join(' ')}: no job record, decision, heartbeat or control key.`,
    '',
    `# The agent's config, on ${o.name} (copy both files there, mode 0600, and fix the paths):`,
    'redis:',
    `  url: ${url.toString()}`,
    ...(loopback ? [`  # ${url.hostname} is this box: from another box use the control's address, and rediss:// (TLS)`] : []),
    `  prefix: ${o.config.redis.prefix}`,
    `  passwordFile: ${o.passwordFile}`,
    ...redisTlsLines(o.config.redis),
    'agent:',
    `  host: ${o.name}`,
    `  tokenFile: ${o.tokenFile}`,
    '',
    `# The control's config (and the agent's copy of it): the host's entry under hosts:`,
    'hosts:',
    `  - name: ${o.name}`,
    `    role: ${o.opts.role}`,
    `    pools: [${o.opts.pools.join(', ')}]`,
    `    tokenSha256: ${o.sha}`,
    ...(o.config.hosts.some((h) => h.name === o.name) ? [`# (hosts already has "${o.name}": replace its tokenSha256 with this one)`] : []),
    '',
  ].join('\n');
}
