/**
 * What the sim's GitHub REST face was asked, for tests: counts per `METHOD /route/:template` and
 * status, e.g. `{ 'POST /app/installations/:installation_id/access_tokens': { '201': 1 } }`.
 * Counts by route, not by URL, so a test can say "one token, ten listings" without knowing ids.
 * A request no route matched (outside `/_sim` and `/_runner`) is counted under its path, so a
 * client calling a route the sim lacks shows up here too.
 *
 * Each call is also kept in order with the time it arrived (`entries()`, the last
 * `MAX_ENTRIES`), so a test can count calls per time window, e.g. that a rate held.
 */
export type CallCounts = Record<string, Record<string, number>>;

export interface CallEntry {
  /** Epoch ms the request arrived. */
  at: number;
  /** `METHOD /route/:template`, as in `CallCounts`. */
  call: string;
  status: number;
}

const MAX_ENTRIES = 100_000;

export class CallLog {
  private counts: CallCounts = {};
  private list: CallEntry[] = [];

  record(method: string, route: string, status: number, at = Date.now()): void {
    const key = `${method} ${route}`;
    const byStatus = (this.counts[key] ??= {});
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    this.list.push({ at, call: key, status });
    if (this.list.length > MAX_ENTRIES) this.list = this.list.slice(-MAX_ENTRIES);
  }

  /** Calls in the order they were answered, each with when it arrived. A copy. */
  entries(): CallEntry[] {
    return this.list.map((e) => ({ ...e }));
  }

  /** A copy: later calls do not change what a test already holds. */
  snapshot(): CallCounts {
    return Object.fromEntries(Object.entries(this.counts).map(([k, v]) => [k, { ...v }]));
  }

  reset(): void {
    this.counts = {};
    this.list = [];
  }
}
