import type { Logger } from 'pino';

/**
 * A part of a process with a life: started in order, stopped in reverse. The control and the
 * agent are each a few of these, composed in main/; what comes next (the reconciler, the
 * dashboard, the warm pool) is one more unit, not another edit to a hand-ordered close.
 */
export interface Unit {
  readonly name: string;
  start(): Promise<void>;
  /** Must not throw for a unit that never started, and must be safe to call twice. */
  stop(): Promise<void>;
}

/** A unit from two functions (stop runs only once, and only after a start that went through). */
export function unit(name: string, start: () => Promise<void>, stop: () => Promise<void>): Unit {
  let started = false;
  return {
    name,
    async start() {
      await start();
      started = true;
    },
    async stop() {
      if (!started) return;
      started = false;
      await stop();
    },
  };
}

export interface Composed {
  /** Starts each unit in order; if one fails, stops those already started (reverse) and throws its error. */
  start(): Promise<void>;
  /** Stops every started unit in reverse order; a unit that fails to stop is logged and the rest still stop. */
  stop(): Promise<void>;
}

export function compose(units: readonly Unit[], logger: Logger): Composed {
  const started: Unit[] = [];
  const stop = async () => {
    while (started.length > 0) {
      const u = started.pop()!;
      // Said once each, so a log shows the order a shutdown went in (`hangar up`: agent, control, Redis).
      await u.stop().then(
        () => logger.info({ unit: u.name }, 'unit stopped'),
        (err: Error) => logger.error({ unit: u.name, err: err.message }, 'unit did not stop cleanly'),
      );
    }
  };
  return {
    async start() {
      for (const u of units) {
        try {
          await u.start();
        } catch (err) {
          await stop();
          throw err;
        }
        started.push(u);
      }
    },
    stop,
  };
}
