import { createHmac, randomUUID } from 'node:crypto';
import { sign } from '@octokit/webhooks-methods';
import type { Logger } from 'pino';
import type { KnobBox } from './knobs.js';
import { isoNow, type Ids } from './model.js';

/** What GitHub remembers of one delivery attempt (`GET /app/hook/deliveries/{id}` shows it). */
export interface Delivery {
  id: number;
  guid: string;
  event: string;
  action: string | null;
  installationId: number;
  repositoryId: number | null;
  workflowJobId: number | null;
  body: string;
  requestHeaders: Record<string, string>;
  deliveredAt: string;
  /** Seconds, as GitHub reports it. */
  duration: number;
  /** 0 when no HTTP response came back (dropped, refused, timed out). */
  statusCode: number;
  status: string;
  responseHeaders: Record<string, string>;
  responseBody: string | null;
  redelivery: boolean;
  /** Knob: recorded as failed, never sent. */
  dropped: boolean;
  /** Knob: the second copy of a duplicated delivery (same guid); GitHub's API does not list these. */
  duplicate: boolean;
}

interface Outgoing {
  guid: string;
  event: string;
  action: string | null;
  body: string;
  repositoryId: number | null;
  workflowJobId: number | null;
  redelivery: boolean;
}

export interface HookshotOptions {
  ids: Ids;
  knobs: KnobBox;
  /** The App's id now (a converted manifest replaces the App). */
  appId: () => number;
  installationId: number;
  hookId: number;
  logger: Logger;
}

const TIMEOUT_MS = 10_000;
const RESPONSE_LIMIT = 64 * 1024;

/**
 * GitHub's webhook sender: signs, posts, records each attempt, never retries on its own.
 * Knobs make it worse on purpose: drop, duplicate, delay, and hold-then-shuffle (reorder).
 */
export class Hookshot {
  private url: string | undefined;
  private secret: string | undefined;
  private readonly records: Delivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private held: Outgoing[] = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly o: HookshotOptions) {}

  setTarget(url: string | undefined, secret: string | undefined): void {
    this.url = url;
    this.secret = secret;
  }

  target(): { url: string | undefined; hasSecret: boolean } {
    return { url: this.url, hasSecret: Boolean(this.secret) };
  }

  emit(event: string, payload: Record<string, unknown>, meta: { repositoryId: number | null; workflowJobId: number | null }): string {
    const guid = randomUUID();
    const action = typeof payload.action === 'string' ? payload.action : null;
    this.schedule({ guid, event, action, body: JSON.stringify(payload), ...meta, redelivery: false });
    return guid;
  }

  /** `POST /app/hook/deliveries/{id}/attempts`: the same payload and guid, sent again. */
  redeliver(id: number): boolean {
    const d = this.get(id);
    if (!d) return false;
    const { guid, event, action, body, repositoryId, workflowJobId } = d;
    this.schedule({ guid, event, action, body, repositoryId, workflowJobId, redelivery: true });
    return true;
  }

  list(): Delivery[] {
    return [...this.records];
  }

  get(id: number): Delivery | undefined {
    return this.records.find((d) => d.id === id && !d.duplicate);
  }

  /** Resolves once every delivery emitted so far has been attempted (sent, failed or dropped). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.pending = 0;
    this.settle();
  }

  private schedule(out: Outgoing): void {
    if (this.closed) return;
    this.pending++;
    const { delayMs } = this.o.knobs.get();
    if (delayMs > 0) this.later(delayMs, () => this.hold(out));
    else this.hold(out);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Reorder: collect for one window, then release the batch shuffled. */
  private hold(out: Outgoing): void {
    const { reorderWindowMs } = this.o.knobs.get();
    if (reorderWindowMs === 0) return this.enqueue(out);
    this.held.push(out);
    if (this.holdTimer) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      const batch = this.o.knobs.shuffle(this.held);
      this.held = [];
      for (const b of batch) this.enqueue(b);
    }, reorderWindowMs);
  }

  /** One at a time, so without the reorder knob deliveries arrive in the order they happened. */
  private enqueue(out: Outgoing): void {
    this.chain = this.chain.then(() => this.attempt(out)).catch((err: unknown) => this.o.logger.error({ err }, 'webhook attempt failed'));
  }

  private async attempt(out: Outgoing): Promise<void> {
    if (this.closed) return;
    const knobs = this.o.knobs;
    try {
      if (knobs.chance(knobs.get().dropRate)) {
        this.record(out, await this.headers(out), { statusCode: 0, status: 'timed out', responseHeaders: {}, responseBody: null, duration: TIMEOUT_MS / 1000 }, { dropped: true });
        return;
      }
      await this.send(out, false);
      if (knobs.chance(knobs.get().duplicateRate)) await this.send(out, true);
    } finally {
      this.pending = Math.max(0, this.pending - 1);
      this.settle();
    }
  }

  private settle(): void {
    if (this.pending > 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private async headers(out: Outgoing): Promise<Record<string, string>> {
    const h: Record<string, string> = {
      'Accept': '*/*',
      'Content-Type': 'application/json',
      'User-Agent': 'GitHub-Hookshot/hangar-sim',
      'X-GitHub-Delivery': out.guid,
      'X-GitHub-Event': out.event,
      'X-GitHub-Hook-ID': String(this.o.hookId),
      'X-GitHub-Hook-Installation-Target-ID': String(this.o.appId()),
      'X-GitHub-Hook-Installation-Target-Type': 'integration',
    };
    if (this.secret) {
      h['X-Hub-Signature'] = `sha1=${createHmac('sha1', this.secret).update(out.body).digest('hex')}`;
      h['X-Hub-Signature-256'] = await sign(this.secret, out.body);
    }
    return h;
  }

  private async send(out: Outgoing, duplicate: boolean): Promise<void> {
    const headers = await this.headers(out);
    const started = Date.now();
    const url = this.url;
    const log = this.o.logger.child({ deliveryId: out.guid, workflowJobId: out.workflowJobId });
    if (!url) {
      this.record(out, headers, { statusCode: 0, status: 'no webhook URL configured', responseHeaders: {}, responseBody: null, duration: 0 }, { duplicate });
      return;
    }
    try {
      const res = await fetch(url, { method: 'POST', headers, body: out.body, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
      const text = (await res.text()).slice(0, RESPONSE_LIMIT);
      const ok = res.status >= 200 && res.status < 300;
      this.record(out, headers, {
        statusCode: res.status, status: ok ? 'OK' : `Invalid HTTP Response: ${res.status}`,
        responseHeaders: Object.fromEntries(res.headers), responseBody: text, duration: (Date.now() - started) / 1000,
      }, { duplicate });
      log.debug({ statusCode: res.status, action: out.action }, 'webhook delivered');
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      this.record(out, headers, {
        statusCode: 0, status: timedOut ? 'timed out' : 'failed to connect to host', responseHeaders: {}, responseBody: null,
        duration: (Date.now() - started) / 1000,
      }, { duplicate });
      log.info({ action: out.action, timedOut }, 'webhook delivery failed');
    }
  }

  private record(
    out: Outgoing,
    requestHeaders: Record<string, string>,
    result: Pick<Delivery, 'statusCode' | 'status' | 'responseHeaders' | 'responseBody' | 'duration'>,
    flags: { dropped?: boolean; duplicate?: boolean },
  ): void {
    this.records.push({
      id: this.o.ids.take('delivery'), guid: out.guid, event: out.event, action: out.action,
      installationId: this.o.installationId, repositoryId: out.repositoryId, workflowJobId: out.workflowJobId,
      body: out.body, requestHeaders, deliveredAt: isoNow(), ...result, redelivery: out.redelivery,
      dropped: flags.dropped ?? false, duplicate: flags.duplicate ?? false,
    });
  }
}
