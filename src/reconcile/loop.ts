import type { BudgetPriority } from '../github/index.js';
import type { Fence } from './leader.js';

/**
 * One reconcile loop: observe (read Redis and GitHub) → plan (pure, in src/domain/, so it is
 * tested from tables) → apply (move jobs through the job-record owner, call GitHub), named so
 * its passes, actions and failures show in /metrics and the log. A loop keeps no state between
 * passes but what it stores in Redis (a cursor), so a new leader carries on where the last stopped.
 */
export interface ReconcileLoop<Obs = unknown, Plan = unknown> {
  readonly name: string;
  /** Pause between two passes of this loop. */
  readonly intervalMs: number;
  /**
   * Its GitHub calls' place in the rate budget: `background` unless said (a loop that only
   * catches up waits behind minting and the gate); the pulling intake says `mint`.
   */
  readonly budgetPriority?: BudgetPriority;
  observe(now: number): Promise<Obs>;
  plan(observed: Obs, now: number): Plan;
  /** One line per action the plan would take (`hangar reconcile --once --dry-run`, and the log). */
  describe(plan: Plan): string[];
  /**
   * Carries the plan out for the leader holding `fence`; every Redis write it makes carries the
   * fence, so a replica that stopped leading mid-pass changes nothing. Returns how many of each
   * action it took (for /metrics).
   */
  apply(plan: Plan, fence: Fence): Promise<Record<string, number>>;
}

/** A loop with its types erased, as the reconciler holds them. */
export type AnyLoop = ReconcileLoop<any, any>;

/** What one pass found to do and, unless a dry run, did. */
export interface PassReport {
  loop: string;
  actions: string[];
  applied: Record<string, number> | null;
  error: string | null;
  ms: number;
}
