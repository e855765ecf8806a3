import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../domain/errors.js';
import { startLocalRedis, type LocalRedis } from './local-redis.js';

/**
 * The Redis of `hangar up` when the config names none: a redis-server of its own under
 * `<agent.stateDir>/redis` (AOF on, appendfsync everysec, noeviction, 127.0.0.1 on a free port),
 * its data kept from one start to the next so queued jobs survive a restart. A fresh random
 * password at every start, in `password` (0600, what `redis.passwordFile` points at) and in
 * `redis.conf` (0600, read by redis-server): never on a command line. A pidfile lets the next
 * start stop a redis-server that a killed `up` (kill -9) left behind.
 */
export interface EmbeddedRedis {
  url: string;
  /** The file holding its password (for `redis.passwordFile`). */
  passwordFile: string;
  dir: string;
  readonly pid: number;
  /** SHUTDOWN (AOF flushed); the pidfile goes with it. */
  stop(): Promise<void>;
}

export const EMBEDDED_REDIS_DIR = 'redis';
const EMBEDDED_REDIS_URL_FILE = 'url';

/**
 * The embedded Redis a running `hangar up` started for this state directory (its url and
 * password file), or null when none runs: no pidfile, a pid that is no redis-server of this
 * folder, or no url file.
 */
export function runningEmbeddedRedis(stateDir: string): { url: string; passwordFile: string } | null {
  const dir = join(stateDir, EMBEDDED_REDIS_DIR);
  const pid = Number(readOr(join(dir, 'redis.pid'), '').trim());
  const url = readOr(join(dir, EMBEDDED_REDIS_URL_FILE), '').trim();
  if (!Number.isInteger(pid) || pid <= 0 || url === '' || !isOurRedis(pid, dir)) return null;
  return { url, passwordFile: join(dir, 'password') };
}

export async function startEmbeddedRedis(stateDir: string, logger: Logger): Promise<EmbeddedRedis> {
  const dir = join(stateDir, EMBEDDED_REDIS_DIR);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new ConfigError('up', [{ path: 'agent.stateDir', message: `cannot make ${dir} for the embedded Redis: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
  await stopStaleEmbeddedRedis(stateDir, logger);
  const pidfile = join(dir, 'redis.pid');
  const passwordFile = join(dir, 'password');
  // base64url: no character redis.conf would need quoted.
  const password = randomBytes(32).toString('base64url');
  rmSync(passwordFile, { force: true });
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  let redis: LocalRedis;
  try {
    redis = await startLocalRedis({ dir, password, pidfile, appendfsync: 'everysec' });
  } catch (err) {
    // What redis-server said (never the password: it is only in redis.conf) is the operator's fix.
    throw new ConfigError('up', [{ path: 'redis.url', message: `not set, and the embedded Redis under ${dir} did not start: ${(err as Error).message}` }]);
  }
  logger.info({ url: redis.url, dir, pid: redis.pid }, 'embedded redis started');
  // Where it listens (the port is a free one, chosen now), for `hangar doctor` to find it.
  const urlFile = join(dir, EMBEDDED_REDIS_URL_FILE);
  writeFileSync(urlFile, `${redis.url}\n`, { mode: 0o600 });
  return {
    url: redis.url,
    passwordFile,
    dir,
    get pid() {
      return redis.pid;
    },
    stop: async () => {
      await redis.stop();
      rmSync(urlFile, { force: true });
    },
  };
}

/**
 * The redis-server a killed `up` left: stopped if the pidfile's pid is a redis-server whose
 * working directory is this one (redis-server chdirs to its `dir`); any other process that
 * has the pid since is left alone.
 */
export async function stopStaleEmbeddedRedis(stateDir: string, logger?: Logger): Promise<void> {
  const dir = join(stateDir, EMBEDDED_REDIS_DIR);
  const pidfile = join(dir, 'redis.pid');
  const pid = Number(readOr(pidfile, '').trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  if (isOurRedis(pid, dir)) {
    logger?.warn({ pid, dir }, 'stopping the embedded redis a previous run left');
    await stopPid(pid);
  }
  rmSync(pidfile, { force: true });
}

export function isOurRedis(pid: number, dir: string): boolean {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return comm === 'redis-server' && readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dir);
  } catch {
    return false; // gone, or not ours to look at
  }
}

/** SIGTERM (redis-server flushes its AOF and exits), SIGKILL after 10 s; resolves once it is gone. */
async function stopPid(pid: number): Promise<void> {
  const alive = () => {
    try {
      // A zombie is gone for our purpose: its parent (the killed run's) is not there to reap it soon.
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      // gone already
    }
  };
  signal('SIGTERM');
  for (let i = 0; i < 200 && alive(); i++) {
    if (i === 100) signal('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}
