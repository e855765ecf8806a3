/**
 * The lock a runner holds on the job it runs, as the Actions service keeps it: taken when the job
 * is assigned (that counts as the first renewal), renewed by the runner while the job runs, let go
 * when the job completes. A lock not renewed for the timeout means the runner was lost. Times are
 * the sim's clock in ms; the store decides what losing a job means.
 */
export class JobLocks {
  private readonly renewedAt = new Map<number, number>();

  take(jobId: number, now: number): void {
    this.renewedAt.set(jobId, now);
  }

  /** False when the job holds no lock (it completed, or was never assigned). */
  renew(jobId: number, now: number): boolean {
    if (!this.renewedAt.has(jobId)) return false;
    this.renewedAt.set(jobId, now);
    return true;
  }

  release(jobId: number): void {
    this.renewedAt.delete(jobId);
  }

  /** When the job's lock runs out, or undefined for a job without one. */
  lockedUntil(jobId: number, timeoutMs: number): number | undefined {
    const at = this.renewedAt.get(jobId);
    return at === undefined ? undefined : at + timeoutMs;
  }

  /** Jobs whose last renewal is `timeoutMs` or more ago; none when `timeoutMs` is 0 (never expire). */
  expired(now: number, timeoutMs: number): number[] {
    if (timeoutMs <= 0) return [];
    return [...this.renewedAt].filter(([, at]) => now - at >= timeoutMs).map(([id]) => id);
  }
}
