import type { Redis } from 'ioredis';
import { PayloadError } from '../domain/errors.js';
import { cursorAfter, planDeliveries, type DeliveriesObservation, type DeliveriesPlan } from '../domain/reconcile-deliveries.js';
import type { HookDeliveryDetail } from '../github/index.js';
import { deliveryIdOf, ingestDelivery, type IngestDeps } from '../intake/ingest.js';
import type { Keys } from '../queue/keys.js';
import { FENCE_CHECK_LUA, type Fence } from './leader.js';
import type { ReconcileLoop } from './loop.js';
import type { LoopDeps } from './loops.js';

/**
 * Lost deliveries, and in pull mode the intake itself: list the App's webhook deliveries newer
 * than the cursor, fetch each that did not reach Hangar (domain/reconcile-deliveries.ts decides
 * which) and ingest it through the webhook's own parse → policy → record path
 * (intake/ingest.ts), with the leader's fence. The cursor, `reconcileState('deliveries')`, is
 * the newest delivery id fully handled, so each delivery is fetched once; it never moves past a
 * delivery whose fetch or ingest failed.
 */
export const DELIVERIES_LOOP = 'deliveries';

/** Pages of 100 read per pass at most: a backlog larger than this is read newest first, the rest on later passes. */
const MAX_PAGES = 20;
/** Deliveries fetched at once; they are still ingested one by one in the order GitHub sent them. */
const FETCH_CONCURRENCY = 8;

const WRITE_CURSOR = `${FENCE_CHECK_LUA(1, 1)}
redis.call('SET', KEYS[2], ARGV[2])
return 'ok'`;

export function createDeliveriesLoop(d: LoopDeps): ReconcileLoop<DeliveriesObservation, DeliveriesPlan> {
  const pull = d.config.intake.mode === 'pull';
  const stateKey = d.keys.reconcileState(DELIVERIES_LOOP);
  const log = d.logger.child({ loop: DELIVERIES_LOOP });
  const ingest: IngestDeps = { policy: d.config, store: d.store, logger: log.child({ via: 'pulled' }), ...(d.jobs ? { jobs: d.jobs } : {}) };
  const lookbackMs = d.config.reconcile.deliveriesLookbackMinutes * 60_000;

  return {
    name: DELIVERIES_LOOP,
    intervalMs: (pull ? d.config.intake.pullIntervalSeconds : d.config.reconcile.deliveriesIntervalSeconds) * 1000,
    // Pulling, it is the intake: what it finds waits for it as a webhook's job would.
    budgetPriority: pull ? 'mint' : 'background',

    async observe(now) {
      const cursor = parseCursor(await d.redis.get(stateKey), () => log.warn({ key: stateKey }, 'deliveries cursor unreadable: looking back again'));
      const page = await d.github.listDeliveries(
        cursor === null ? { since: new Date(now - lookbackMs), maxPages: MAX_PAGES } : { afterId: cursor, maxPages: MAX_PAGES },
      );
      const complete = page.nextCursor === null;
      if (!complete) log.warn({ listed: page.deliveries.length, cursor }, 'more deliveries than one pass reads: older ones wait for a later pass');
      const known = await knownGuids(d.redis, d.keys, page.deliveries.map((x) => x.guid));
      return { listed: page.deliveries, complete, known, cursor };
    },

    plan: (observed) => planDeliveries(observed),

    describe(p) {
      const lines = p.fetch.map((x) => `fetch delivery ${x.id} ${x.guid} (${x.action ?? '-'}, GitHub got ${x.statusCode || 'no answer'})`);
      if (p.next !== p.cursor) lines.push(`move the deliveries cursor ${p.cursor ?? '(none)'} → ${p.next}`);
      return lines;
    },

    async apply(p, fence) {
      const counts: Record<string, number> = {};
      const count = (what: string) => void (counts[what] = (counts[what] ?? 0) + 1);
      if ((await d.redis.get(fence.key)) !== fence.value) return { fenced: 1 };
      const failed: number[] = [];
      for (let i = 0; i < p.fetch.length; i += FETCH_CONCURRENCY) {
        const chunk = p.fetch.slice(i, i + FETCH_CONCURRENCY);
        const got = await Promise.allSettled(chunk.map((x) => d.github.getDelivery(x.id)));
        for (const [j, r] of got.entries()) {
          const id = chunk[j]!.id;
          if (r.status === 'rejected') {
            log.warn({ deliveryId: id, err: (r.reason as Error).message }, 'delivery not fetched: tried again next pass');
            failed.push(id);
            count('fetch-failed');
            continue;
          }
          count('fetched');
          const outcome = await ingestPulled(r.value, ingest, fence, log);
          if (outcome === 'fenced') {
            count('fenced');
            return counts;
          }
          if (outcome === 'failed') failed.push(id);
          count(outcome);
        }
      }
      const next = cursorAfter(p, failed);
      if (next !== null && next !== p.cursor) {
        if ((await d.redis.eval(WRITE_CURSOR, 2, fence.key, stateKey, fence.value, String(next))) === 'fenced') count('fenced');
        else count('cursor');
      }
      return counts;
    },
  };
}

/** One fetched delivery through the intake's path: its outcome, `failed` to try again, or `fenced`. */
async function ingestPulled(x: HookDeliveryDetail, deps: IngestDeps, fence: Fence, log: LoopDeps['logger']): Promise<string> {
  const deliveryId = deliveryIdOf(x.headers['x-github-delivery'] ?? x.guid);
  try {
    const r = await ingestDelivery({ deliveryId, event: x.headers['x-github-event'] ?? x.event, payload: () => x.payload }, deps, fence);
    if (r.label === 'created' && r.decision?.kind === 'reject') return 'refused';
    return r.label;
  } catch (err) {
    // A payload Hangar cannot use stays unusable: counted and passed over, not fetched forever.
    if (err instanceof PayloadError) {
      log.warn({ deliveryId, field: err.field, err: err.message }, 'pulled delivery not usable');
      return 'bad-payload';
    }
    log.warn({ deliveryId, err: (err as Error).message }, 'pulled delivery not stored: tried again next pass');
    return 'failed';
  }
}

function parseCursor(raw: string | null, onBad: () => void): number | null {
  if (raw === null) return null;
  const n = Number(raw);
  if (Number.isSafeInteger(n) && n >= 0) return n;
  onBad();
  return null;
}

/** Which of these guids Hangar stored already (a delivery key), in one round trip. */
async function knownGuids(redis: Redis, k: Keys, guids: readonly string[]): Promise<Set<string>> {
  if (guids.length === 0) return new Set();
  const pipe = redis.pipeline();
  for (const g of guids) pipe.exists(k.delivery(g));
  const res = (await pipe.exec()) ?? [];
  const known = new Set<string>();
  res.forEach(([err, n], i) => {
    if (err) throw err;
    if (n === 1) known.add(guids[i]!);
  });
  return known;
}
