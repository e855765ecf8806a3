/**
 * What the sim's GitHub REST face was asked, for tests: counts per `METHOD /route/:template` and
 * status, e.g. `{ 'POST /app/installations/:installation_id/access_tokens': { '201': 1 } }`.
 * Counts by route, not by URL, so a test can say "one token, ten listings" without knowing ids.
 * A request no route matched (outside `/_sim` and `/_runner`) is counted under its path, so a
 * client calling a route the sim lacks shows up here too.
 */
export type CallCounts = Record<string, Record<string, number>>;

export class CallLog {
  private counts: CallCounts = {};

  record(method: string, route: string, status: number): void {
    const key = `${method} ${route}`;
    const byStatus = (this.counts[key] ??= {});
    byStatus[status] = (byStatus[status] ?? 0) + 1;
  }

  /** A copy: later calls do not change what a test already holds. */
  snapshot(): CallCounts {
    return Object.fromEntries(Object.entries(this.counts).map(([k, v]) => [k, { ...v }]));
  }

  reset(): void {
    this.counts = {};
  }
}
