import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

/**
 * A redis-server of our own, on a free loopback port, with the settings Hangar requires
 * (AOF on, noeviction). Used by `hangar up`, the demo, the tests and the benchmarks. With
 * `netns` it runs inside that network namespace (its loopback, not the machine's) and is
 * reached from outside through its unix socket.
 */
export interface LocalRedis {
  /** redis://127.0.0.1:PORT (rediss:// with `tls`), on the loopback of the namespace it runs in. */
  url: string;
  port: number;
  dir: string;
  /** Its unix socket, when asked for one (ioredis: `new Redis({ path })`). */
  socket?: string;
  /** The redis-server's pid (it changes on restart). */
  readonly pid: number;
  /** Stop politely (SHUTDOWN, AOF flushed). */
  stop(): Promise<void>;
  /** kill -9: what a crash looks like. */
  kill(): Promise<void>;
  /** Start again on the same port and data directory (after kill or stop). */
  restart(): Promise<void>;
  /** Stop and remove the data directory. */
  dispose(): Promise<void>;
}

export interface LocalRedisOptions {
  port?: number;
  dir?: string;
  /** `everysec` (default) or `always`. */
  appendfsync?: 'everysec' | 'always' | 'no';
  persistence?: boolean;
  /** Run inside this network namespace (`nsenter --net=/run/netns/NAME`); needs `socket`. */
  netns?: string;
  /** Listen on this unix socket too (mode 0700). */
  socket?: string;
  /** Addresses to listen on (default 127.0.0.1 only; `url` names the first). */
  bind?: string[];
  /**
   * TLS only (`--port 0 --tls-port PORT`) with this certificate and key: for an agent on another
   * box (`redis.tls` on its side). Clients are not asked for a certificate; they log in as their
   * ACL user. The unix socket, if any, stays plain (it is this machine's).
   */
  tls?: { certFile: string; keyFile: string };
  /**
   * `requirepass` for the default user: written to `<dir>/redis.conf` (mode 0600), which
   * redis-server reads at start, so the password is on no command line.
   */
  password?: string;
  /** Where redis-server writes its pid (it removes the file on a clean shutdown, not on kill -9). */
  pidfile?: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startLocalRedis(opts: LocalRedisOptions = {}): Promise<LocalRedis> {
  if (opts.netns && !opts.socket) throw new TypeError('a redis-server in a network namespace is reached through its socket: give socket too');
  // A namespace of our own has every port free; freePort() looks at the machine's loopback.
  if (opts.port !== undefined || opts.netns) return startOn(opts.port ?? 6379, opts);
  // freePort() lets the port go before redis-server binds it: another process may take it first.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(await freePort(), opts);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOn(port: number, opts: LocalRedisOptions): Promise<LocalRedis> {
  const ownDir = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'hangar-redis-'));
  mkdirSync(dir, { recursive: true });
  const persistence = opts.persistence ?? true;
  const listen = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const conf = opts.password === undefined ? undefined : writeConf(dir, opts.password);
  const args = [
    // The file first: redis-server takes a config file only as its first argument.
    ...(conf ? [conf] : []),
    ...listen, '--bind', ...(opts.bind ?? ['127.0.0.1']), '--dir', dir,
    '--save', '', '--appendonly', persistence ? 'yes' : 'no',
    '--appendfsync', opts.appendfsync ?? 'everysec',
    '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning',
    ...(opts.socket ? ['--unixsocket', opts.socket, '--unixsocketperm', '700'] : []),
    ...(opts.pidfile ? ['--pidfile', opts.pidfile] : []),
  ];
  // nsenter execs redis-server (no fork): the process we signal is redis-server itself.
  const [cmd, argv] = opts.netns ? ['nsenter', [`--net=/run/netns/${opts.netns}`, 'redis-server', ...args]] : ['redis-server', args];
  // Readiness only asks whether our own process answers (its pid): no certificate check needed there.
  const where = opts.socket ? { path: opts.socket } : { port, host: '127.0.0.1', ...(opts.tls ? { tls: { rejectUnauthorized: false } } : {}) };
  let proc: ResultPromise | undefined;

  const launch = async () => {
    proc = execa(cmd, argv, { reject: false, stdio: ['ignore', 'pipe', 'pipe'], cleanup: true });
    await waitReady(where, proc, opts.password);
  };
  const halt = async (signal: 'SIGTERM' | 'SIGKILL') => {
    if (!proc || proc.exitCode !== null) return;
    proc.kill(signal);
    await proc;
  };
  try {
    await launch();
  } catch (err) {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    dir,
    ...(opts.socket ? { socket: opts.socket } : {}),
    get pid() {
      return proc!.pid!;
    },
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    dispose: async () => {
      await halt('SIGTERM');
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

const serverPid = (info: string): number | undefined => Number(/^process_id:(\d+)/m.exec(info)?.[1]) || undefined;

/** `<dir>/redis.conf`, made afresh 0600 (never an older file's mode, never readable for a moment): it holds the password. */
function writeConf(dir: string, password: string): string {
  if (/[\s"'\\]/.test(password)) throw new TypeError('a redis password for redis.conf has no spaces, quotes or backslashes');
  const file = join(dir, 'redis.conf');
  rmSync(file, { force: true });
  writeFileSync(file, `# Written by Hangar at every start: the password is here, not on redis-server's command line.\nrequirepass ${password}\n`, { mode: 0o600, flag: 'wx' });
  return file;
}

async function waitReady(where: { path: string } | { port: number; host: string; tls?: { rejectUnauthorized: boolean } }, proc: ResultPromise, password?: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      const out = await proc;
      throw new Error(`redis-server exited (${out.exitCode}): ${String(out.stderr || out.stdout).slice(-500)}`);
    }
    const client = new Redis({ ...where, ...(password === undefined ? {} : { password }), lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    client.on('error', () => undefined); // refused while starting: expected, retried below
    try {
      await client.connect();
      const pong = await client.ping();
      // AOF loading answers LOADING errors until done; PING succeeds only when ready. And the
      // server answering must be ours: a port freed by kill() can be taken by another process's
      // redis-server before ours is back (tests run side by side), and a PONG from it is not ours.
      if (pong === 'PONG' && serverPid(await client.info('server')) === proc.pid) return;
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not become ready on ${'path' in where ? where.path : `port ${where.port}`}`);
}
