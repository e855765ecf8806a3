/**
 * The outbox relay's thread (see outbox-worker.ts, which starts it): its own Redis connections,
 * BullMQ queues and event loop, so that moving a batch into BullMQ never delays a webhook
 * answer on the control's main thread. Logs go to the main thread's logger.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { trimJobIndex } from '../jobs/record.js';
import { keys } from './keys.js';
import { OutboxRelay } from './outbox.js';
import { PoolQueues } from './pool-queues.js';
import { redisTlsOptions } from './redis-tls.js';
import { RELAY_NICE, type RelayThreadData, type RelayThreadMessage } from './outbox-worker.js';

const port = parentPort;
if (!port) throw new Error('outbox-thread.ts runs as a worker thread (started by queue/outbox-worker.ts)');
const data = workerData as RelayThreadData;
const post = (m: RelayThreadMessage) => port.postMessage(m);
lowerPriority(data.nice ?? RELAY_NICE);

const logger = pino({
  level: data.level,
  hooks: {
    logMethod(args, _method, level) {
      post({ type: 'log', level, args: JSON.parse(JSON.stringify(args)) as unknown[] });
    },
  },
});

const retryStrategy = (n: number) => Math.min(50 * 2 ** n, 2000);
const quiet = (r: Redis) => {
  r.on('error', () => undefined); // reconnects on its own; the relay logs failures per round
  return r;
};
const k = keys(data.prefix);
// The TLS check is a class, which workerData cannot carry: made here from the trust it can.
const auth = { ...data.redisOptions, ...(data.redisTrust ? redisTlsOptions(data.redisUrl, data.redisTrust) : {}) };
const queueConn = quiet(new Redis(data.redisUrl, { maxRetriesPerRequest: 1, retryStrategy, ...auth }));
const blocking = quiet(new Redis(data.redisUrl, { maxRetriesPerRequest: null, retryStrategy, ...auth }));
// A plain connection for the relay's own commands: BullMQ's carries its scripts into every multi().
const relayConn = quiet(new Redis(data.redisUrl, { maxRetriesPerRequest: 1, retryStrategy, ...auth }));
const queues = new PoolQueues(queueConn, data.prefix, data.pools, (err) => logger.debug({ err: err.message }, 'queue connection error'), data.retries);
// The main thread says how busy the intake is (outbox-worker.ts).
let intakeBusy = false;
const relay = new OutboxRelay({
  blocking,
  redis: relayConn,
  keys: k,
  queues,
  logger,
  consumer: data.consumer,
  claimIdleMs: data.claimIdleMs,
  intakeBusy: () => intakeBusy,
});

// Housekeeping: the job index keeps ids whose records have expired; trim it now and then.
const trim = setInterval(() => {
  trimJobIndex(relayConn, k, data.keepSeconds).catch((err: Error) => logger.debug({ err: err.message }, 'job index not trimmed'));
}, 60_000);

port.on('message', (m: RelayThreadMessage) => {
  if (m.type === 'intake-load') {
    if (m.busy !== intakeBusy) logger.debug({ busy: m.busy }, m.busy ? 'intake busy: relay paced' : 'intake quiet: relay at full speed');
    intakeBusy = m.busy;
  }
  if (m.type !== 'stop') return;
  clearInterval(trim);
  void relay
    .stop()
    .then(() => queues.close())
    .catch((err: Error) => logger.warn({ err: err.message }, 'outbox relay did not stop cleanly'))
    .finally(() => {
      for (const c of [queueConn, blocking, relayConn]) c.disconnect();
      post({ type: 'stopped' });
      port.close();
    });
});

relay.start();
post({ type: 'ready' });

/**
 * When the control is short of CPU, webhook answers come first: this thread runs at a lower
 * priority than the main thread (Linux: a thread's nice value is its own). The relay still
 * gets every idle cycle, and its backlog is durable in the outbox stream meanwhile.
 */
function lowerPriority(nice: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && nice > 0) setPriority(tid, Math.min(19, getPriority(tid) + nice));
  } catch {
    // Not Linux, or no /proc: the thread keeps the process's priority.
  }
}
