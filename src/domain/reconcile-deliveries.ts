import { JOB_ACTIONS } from './workflow-job.js';

/**
 * The lost-deliveries loop's plan (reconcile/deliveries.ts): of the App's webhook deliveries
 * GitHub lists, which did not reach Hangar and must be fetched and ingested, and how far the
 * cursor (the newest delivery id fully handled) may move. Pure: the loop observes, this decides.
 *
 * A delivery reached Hangar when GitHub got a 2xx for it (the intake answers 2xx only once it has
 * stored the delivery, or chose to pass over it: not self-hosted, an action Hangar ignores), or
 * when its guid is known in Redis (stored by a redelivery, an earlier pass, or an intake that
 * answered after GitHub's 10 s timeout). Everything else is fetched, once: the cursor moves past
 * it when its ingest is done. In pull mode GitHub reaches nothing, so every delivery is fetched.
 */
export interface ListedDelivery {
  id: number;
  guid: string;
  event: string;
  action: string | null;
  /** The HTTP status GitHub got; 0 when none (could not connect, timed out). */
  statusCode: number;
}

export interface DeliveriesObservation {
  /** Deliveries newer than the cursor (or, with no cursor yet, within the lookback), as GitHub lists them. */
  listed: readonly ListedDelivery[];
  /** False when the listing stopped at its page limit before reaching the cursor: older ones went unseen. */
  complete: boolean;
  /** Guids with a delivery key in Redis: Hangar stored them already. */
  known: ReadonlySet<string>;
  /** The newest delivery id fully handled; null before the first pass. */
  cursor: number | null;
}

export type DeliverySkip = 'not-workflow-job' | 'action-not-handled' | 'delivered' | 'known';

export interface DeliveriesPlan {
  /** To fetch and ingest, oldest first (the order GitHub sent them); one per guid. */
  fetch: ListedDelivery[];
  skipped: Record<DeliverySkip, number>;
  cursor: number | null;
  /** The cursor once every fetch above is ingested. */
  next: number | null;
}

const ACTIONS: readonly string[] = JOB_ACTIONS;
const delivered = (statusCode: number) => statusCode >= 200 && statusCode < 300;

export function planDeliveries(o: DeliveriesObservation): DeliveriesPlan {
  const skipped: Record<DeliverySkip, number> = { 'not-workflow-job': 0, 'action-not-handled': 0, delivered: 0, known: 0 };
  const fresh = o.listed.filter((d) => o.cursor === null || d.id > o.cursor).sort((a, b) => a.id - b.id);
  const fetch: ListedDelivery[] = [];
  const taken = new Set<string>();
  for (const d of fresh) {
    const skip: DeliverySkip | null =
      d.event !== 'workflow_job' ? 'not-workflow-job'
        : d.action !== null && !ACTIONS.includes(d.action) ? 'action-not-handled'
          : o.known.has(d.guid) || taken.has(d.guid) ? 'known'
            : delivered(d.statusCode) ? 'delivered'
              : null;
    if (skip) skipped[skip]++;
    else {
      taken.add(d.guid);
      fetch.push(d);
    }
  }
  const newest = fresh.length > 0 ? fresh[fresh.length - 1]!.id : null;
  // An incomplete listing says nothing of the deliveries between the cursor and its oldest one.
  const next = o.complete && newest !== null ? Math.max(newest, o.cursor ?? 0) : o.cursor;
  return { fetch, skipped, cursor: o.cursor, next };
}

/**
 * Where the cursor goes once the plan was carried out and the deliveries in `failed` were not
 * ingested: never past the oldest of them, so the next pass tries it again (the ones after it
 * that were ingested are known by then, and skipped without a fetch).
 */
export function cursorAfter(plan: DeliveriesPlan, failed: readonly number[]): number | null {
  if (failed.length === 0) return plan.next;
  const before = Math.min(...failed) - 1;
  return plan.cursor === null ? before : Math.max(plan.cursor, before);
}
