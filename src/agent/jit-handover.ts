/**
 * One VM's JIT config on its way into the guest. The agent mints the runner and boots the VM
 * side by side; the guest, once its network is up, asks the metadata endpoint for its config
 * (`GET /v1/jit`) and the ask waits here until the mint settles. One answer, then gone: the
 * first ask that is still there when the config is ready takes it and the handover forgets it;
 * every later ask is told it is gone. A refused or failed mint is withheld with its reason.
 * The VM spec never carries the config, so a VM can boot before its job is known (the seam a
 * warm pool of booted VMs needs). The config is never logged, and never part of an error.
 */
export type JitTake =
  | { kind: 'config'; config: string }
  | { kind: 'withheld'; reason: string }
  | { kind: 'gone' }
  /** Nothing settled within the wait (or the asker hung up): ask again. */
  | { kind: 'not-yet' };

export class JitHandover {
  private config: string | null = null;
  private withheldFor: string | null = null;
  private takenAt: number | null = null;
  private firstAsk: number | null = null;
  private readonly waiters = new Set<() => void>();
  private resolveTaken: () => void = () => undefined;
  /** Resolves when the guest has its config. */
  readonly taken: Promise<void> = new Promise((r) => (this.resolveTaken = r));

  /** When the guest first asked (ms since the epoch), else null. */
  get askedAt(): number | null {
    return this.firstAsk;
  }

  /** When the guest got its config, else null. */
  get handedAt(): number | null {
    return this.takenAt;
  }

  /** The minted config: the next ask (or the one waiting) takes it. Once only. */
  offer(config: string): void {
    if (this.settled()) return;
    this.config = config;
    this.wake();
  }

  /** No config is coming (refused, busy, failed mint; the VM is going away). */
  withhold(reason: string): void {
    if (this.takenAt !== null || this.withheldFor !== null) return;
    this.config = null;
    this.withheldFor = reason;
    this.wake();
  }

  /**
   * The guest's ask: waits up to `waitMs` for the mint to settle, or until `hungUp` aborts (the
   * asker's connection closed): a guest that hung up does not use up its one answer.
   */
  async take(waitMs: number, hungUp?: AbortSignal): Promise<JitTake> {
    this.firstAsk ??= Date.now();
    if (!this.settled()) await this.waitSettled(waitMs, hungUp);
    if (this.takenAt !== null) return { kind: 'gone' };
    if (this.withheldFor !== null) return { kind: 'withheld', reason: this.withheldFor };
    if (this.config === null || hungUp?.aborted) return { kind: 'not-yet' };
    const config = this.config;
    this.config = null;
    this.takenAt = Date.now();
    this.resolveTaken();
    return { kind: 'config', config };
  }

  private settled(): boolean {
    return this.config !== null || this.withheldFor !== null || this.takenAt !== null;
  }

  private waitSettled(ms: number, hungUp?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        hungUp?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      hungUp?.addEventListener('abort', done, { once: true });
      if (hungUp?.aborted) done();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
