import { describe, expect, test } from 'vitest';
import { cursorAfter, planDeliveries, type DeliveriesObservation, type ListedDelivery } from '../../src/domain/reconcile-deliveries.js';

/** One listed delivery: a `workflow_job` `queued` GitHub could not deliver, unless told otherwise. */
const d = (id: number, o: Partial<ListedDelivery> = {}): ListedDelivery => ({
  id, guid: `g-${id}`, event: 'workflow_job', action: 'queued', statusCode: 0, ...o,
});
const obs = (listed: ListedDelivery[], o: Partial<DeliveriesObservation> = {}): DeliveriesObservation => ({
  listed, complete: true, known: new Set(), cursor: null, ...o,
});

describe('planDeliveries: which deliveries to fetch, and where the cursor goes', () => {
  test.each<[string, DeliveriesObservation, number[], number | null]>([
    ['nothing listed, no cursor: nothing to do, no cursor yet', obs([]), [], null],
    ['nothing new: the cursor stays', obs([], { cursor: 7 }), [], 7],
    ['failed deliveries: fetched oldest first, cursor to the newest', obs([d(3), d(2), d(1)]), [1, 2, 3], 3],
    ['a 2xx reached the intake: not fetched', obs([d(2, { statusCode: 202 }), d(1)]), [1], 2],
    ['a 200 (a ping answered) is a 2xx too', obs([d(1, { statusCode: 200 })]), [], 1],
    ['a 5xx from the intake (Redis down): fetched', obs([d(1, { statusCode: 503 })]), [1], 1],
    ['a 3xx (a redirect GitHub does not follow): fetched', obs([d(1, { statusCode: 301 })]), [1], 1],
    ['failed but its guid is stored (a redelivery or a late answer got in): not fetched', obs([d(2), d(1)], { known: new Set(['g-1']) }), [2], 2],
    ['known and 2xx: not fetched', obs([d(1, { statusCode: 202 })], { known: new Set(['g-1']) }), [], 1],
    ['two failed attempts of one guid (a failed redelivery): fetched once, the older', obs([d(5, { guid: 'g-x' }), d(4, { guid: 'g-x' })]), [4], 5],
    ['not a workflow_job: passed over, the cursor moves past it', obs([d(2, { event: 'installation', action: 'created' }), d(1)]), [1], 2],
    ['an action Hangar ignores (waiting): passed over', obs([d(2, { action: 'waiting' }), d(1, { action: 'completed' })]), [1], 2],
    ['no action in the listing: fetched (the payload says)', obs([d(1, { action: null })]), [1], 1],
    ['at or below the cursor: already handled, not fetched', obs([d(9), d(8), d(7)], { cursor: 8 }), [9], 9],
    ['an incomplete listing: fetched, the cursor does not jump the unseen ones', obs([d(900), d(899)], { cursor: 10, complete: false }), [899, 900], 10],
    ['an incomplete first listing: no cursor yet', obs([d(900)], { complete: false }), [900], null],
    ['ids out of order in the listing: still oldest first', obs([d(4), d(6), d(5)]), [4, 5, 6], 6],
  ])('%s', (_n, o, fetch, next) => {
    const p = planDeliveries(o);
    expect(p.fetch.map((x) => x.id)).toEqual(fetch);
    expect(p.next).toBe(next);
    expect(p.cursor).toBe(o.cursor);
  });

  test('every delivery listed is either fetched or counted as skipped, with why', () => {
    const p = planDeliveries(obs(
      [d(6, { event: 'ping', action: null }), d(5, { action: 'waiting' }), d(4, { statusCode: 202 }), d(3), d(2), d(1, { guid: 'g-3' })],
      { known: new Set(['g-2']) },
    ));
    expect(p.fetch.map((x) => x.id)).toEqual([1]);
    expect(p.skipped).toEqual({ 'not-workflow-job': 1, 'action-not-handled': 1, delivered: 1, known: 2 });
  });
});

describe('cursorAfter: never past a delivery that was not ingested', () => {
  const plan = (cursor: number | null, ids: number[]) => planDeliveries(obs(ids.map((id) => d(id)), { cursor }));
  test.each<[string, number | null, number[], number[], number | null]>([
    ['all ingested: the newest', 10, [11, 12, 13], [], 13],
    ['the oldest failed: just before it', 10, [11, 12, 13], [11], 10],
    ['one in the middle failed: just before it', 10, [11, 12, 13], [12], 11],
    ['several failed: before the oldest of them', 10, [11, 12, 13, 14], [14, 12], 11],
    ['no cursor yet, the first failed: just before it', null, [5, 6], [5], 4],
    ['no cursor yet, all ingested', null, [5, 6], [], 6],
  ])('%s', (_n, cursor, ids, failed, want) => expect(cursorAfter(plan(cursor, ids), failed)).toBe(want));
});
