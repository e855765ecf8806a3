import type { HangarOctokit } from './create-octokit.js';
import { githubCall } from './errors.js';
import type { HookDelivery, HookDeliveryDetail } from './types.js';

/**
 * The App's webhook deliveries, for reconcile to find the ones that failed and ask for them
 * again. These routes take the App's JWT, not an installation token: pass the App Octokit.
 */

export interface ListDeliveriesInput {
  /** Stop at the first delivery older than this (GitHub lists newest first). */
  since?: Date;
  /** Stop at the first delivery with this id or a lower one (one already handled). */
  afterId?: number;
  /** Continue where an earlier call stopped (its `nextCursor`). */
  cursor?: string;
  /** Pages of 100 to read at most in this call (default 10). */
  maxPages?: number;
}

export interface DeliveriesPage {
  deliveries: HookDelivery[];
  /** Set when there is more to read and this call stopped because of `maxPages`. */
  nextCursor: string | null;
}

interface RawDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
}

function toDelivery(d: RawDelivery): HookDelivery {
  return {
    id: d.id,
    guid: d.guid,
    deliveredAt: new Date(d.delivered_at),
    redelivery: d.redelivery,
    status: d.status,
    statusCode: d.status_code,
    event: d.event,
    action: d.action,
    installationId: d.installation_id,
    repositoryId: d.repository_id,
  };
}

/** The `cursor` of the `rel="next"` link, if any. GitHub pages deliveries by cursor, not number. */
export function nextCursorOf(link: string | undefined): string | null {
  const next = link?.split(',').find((part) => /rel="next"/.test(part));
  const url = next?.match(/<([^>]+)>/)?.[1];
  if (!url) return null;
  return new URL(url).searchParams.get('cursor');
}

export async function listDeliveries(app: HangarOctokit, input: ListDeliveriesInput = {}): Promise<DeliveriesPage> {
  const maxPages = input.maxPages ?? 10;
  const since = input.since?.getTime();
  const afterId = input.afterId;
  const deliveries: HookDelivery[] = [];
  let cursor: string | null = input.cursor ?? null;
  for (let page = 0; page < maxPages; page++) {
    const res = await githubCall('list deliveries', () =>
      app.rest.apps.listWebhookDeliveries({ per_page: 100, ...(cursor ? { cursor } : {}) }),
    );
    for (const raw of res.data as RawDelivery[]) {
      const d = toDelivery(raw);
      if (since !== undefined && d.deliveredAt.getTime() < since) return { deliveries, nextCursor: null };
      if (afterId !== undefined && d.id <= afterId) return { deliveries, nextCursor: null };
      deliveries.push(d);
    }
    cursor = nextCursorOf(res.headers.link);
    if (!cursor) return { deliveries, nextCursor: null };
  }
  return { deliveries, nextCursor: cursor };
}

interface RawDeliveryDetail extends RawDelivery {
  request: { headers: Record<string, string> | null; payload: unknown };
}

/**
 * One delivery with the headers and payload GitHub sent (or tried to send). Only the payload and
 * the headers Hangar reads are kept: the signature headers are of no use to a caller that got the
 * payload from the API with the App's own credentials.
 */
export async function getDelivery(app: HangarOctokit, deliveryId: number): Promise<HookDeliveryDetail> {
  const res = await githubCall('get delivery', () => app.rest.apps.getWebhookDelivery({ delivery_id: deliveryId }));
  const raw = res.data as unknown as RawDeliveryDetail;
  const headers = Object.fromEntries(Object.entries(raw.request.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return {
    ...toDelivery(raw),
    headers: { 'x-github-delivery': headers['x-github-delivery'] ?? null, 'x-github-event': headers['x-github-event'] ?? null },
    payload: raw.request.payload,
  };
}

/** Asks GitHub to send a delivery again; resolves once GitHub accepted the request (202). */
export async function redeliver(app: HangarOctokit, deliveryId: number): Promise<void> {
  await githubCall('redeliver', () => app.rest.apps.redeliverWebhookDelivery({ delivery_id: deliveryId }));
}
