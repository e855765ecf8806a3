import type { Logger } from 'pino';

/** On SIGTERM or SIGINT run `close` once, then exit; a second signal exits at once. */
export function onShutdown(logger: Logger, close: () => Promise<void>): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    logger.info({ signal }, 'shutting down');
    close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/**
 * The close for a process whose stop signal may come while it still starts (handlers are set
 * before the start, so a SIGTERM then never kills it half made): waits for the start, then
 * stops what it made. A start that failed stopped its own parts (the shutdown fails: exit 1). A start
 * still not done after `boundMs` (a dependency that never answers) fails the shutdown loudly.
 */
export function afterStart<T>(starting: Promise<T>, stop: (started: T) => Promise<void>, boundMs = 30_000): () => Promise<void> {
  return async () => {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'bound'>((resolve) => (timer = setTimeout(() => resolve('bound'), boundMs)));
    const outcome = await Promise.race([starting.then((v) => ({ v }), () => 'failed' as const), bound]).finally(() => clearTimeout(timer));
    if (outcome === 'bound') throw new Error(`the start was still going ${boundMs / 1000} s after the stop signal`);
    // Said by the start's own error (the CLI prints it); the exit status must not read as a clean stop.
    if (outcome === 'failed') throw new Error('the start failed');
    await stop(outcome.v);
  };
}
