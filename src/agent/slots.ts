/**
 * The host's VM slots, shared by every pool's worker. A slot carries a small index, stable
 * while held, that names the VM's network link (one /30 per slot).
 */
export class Slots {
  private readonly free: number[];
  private readonly waiters: ((index: number) => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];

  constructor(readonly total: number, private readonly onChange: (busy: number) => void = () => undefined) {
    this.free = Array.from({ length: total }, (_, i) => i);
  }

  get busy(): number {
    return this.total - this.free.length;
  }

  acquire(): Promise<number> {
    const index = this.free.shift();
    if (index !== undefined) {
      this.onChange(this.busy);
      return Promise.resolve(index);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(index: number): void {
    const next = this.waiters.shift();
    if (next) {
      next(index);
      return;
    }
    this.free.push(index);
    this.free.sort((a, b) => a - b);
    this.onChange(this.busy);
    if (this.busy === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves once no slot is held (at once when none is). */
  whenIdle(): Promise<void> {
    return this.busy === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * Whether the pool workers fetch jobs: a slot is free and the operator has not drained the host
 * (the control's heartbeat answer). A drained host finishes what it runs and takes nothing new.
 */
export function takesJobs(busy: number, total: number, drained: boolean): boolean {
  return !drained && busy < total;
}
