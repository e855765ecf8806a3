import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { pino } from 'pino';
import { ConfigError } from '../domain/errors.js';
import { generateAppKey } from '../sim/auth.js';
import { createSim } from '../sim/server.js';
import { createLogger } from './logger.js';

export interface RunSimOptions {
  host: string;
  port: number;
  webhookUrl?: string;
  webhookSecretFile?: string;
  appId: number;
  appKeyFile?: string;
  installationId: number;
  /** The URL guests and runners use to reach the sim, when not the listen URL (e.g. from inside a VM). */
  publicUrl?: string;
  /** Also serve on this unix socket (a test driving a sim that lives in another network namespace). */
  socket?: string;
}

/**
 * A secret file the sim and the control share. When the file does not exist yet the sim makes
 * the secret and writes it there (0600), so a demo can start the sim first and hand the same
 * files to the control.
 */
async function readOrCreate(path: string, key: string, make: () => string | Promise<string>): Promise<string> {
  try {
    const value = (await readFile(path, 'utf8')).trim();
    if (value === '') throw new ConfigError('sim', [{ path: key, message: `file ${path} is empty` }]);
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const value = await make();
    await writeFile(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value;
  }
}

/**
 * `hangar sim`: one JSON line on stdout once listening (`{"msg":"sim listening","url":...}`),
 * pino logs on stderr so the ready line stays alone; SIGTERM/SIGINT close it cleanly.
 */
export async function runSim(opts: RunSimOptions): Promise<void> {
  const logger = createLogger('sim', 'info', pino.destination({ fd: 2, sync: true }));
  const appPrivateKeyPem = opts.appKeyFile ? await readOrCreate(opts.appKeyFile, 'appKeyFile', generateAppKey) : undefined;
  const webhookSecret = opts.webhookSecretFile
    ? await readOrCreate(opts.webhookSecretFile, 'webhookSecretFile', () => randomBytes(32).toString('hex'))
    : undefined;
  const sim = await createSim({
    appId: opts.appId, installationId: opts.installationId, logger,
    ...(appPrivateKeyPem ? { appPrivateKeyPem } : {}),
    ...(opts.webhookUrl ? { webhookUrl: opts.webhookUrl } : {}),
    ...(webhookSecret ? { webhookSecret } : {}),
    ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
  });
  const url = await sim.listen(opts.port, opts.host);
  if (opts.socket) await sim.listenSocket(opts.socket);
  process.stdout.write(`${JSON.stringify({ msg: 'sim listening', url })}\n`);
  logger.info({ url, socket: opts.socket ?? null, appId: opts.appId, installationId: opts.installationId, webhookUrl: opts.webhookUrl ?? null }, 'sim listening');

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'sim stopping');
    sim.close().then(
      () => {
        logger.info('sim stopped');
        // Keep-alive sockets to the webhook target may linger; do not let them hold the process.
        setTimeout(() => process.exit(0), 1000).unref();
      },
      (err: unknown) => {
        logger.error({ err }, 'sim did not close cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
