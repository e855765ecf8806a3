import { describe, expect, test } from 'vitest';
import { FINAL_PHASES, JOB_PHASES, MOVES, canMove, movesInto, phaseForVmEnd, type JobPhase } from '../../src/domain/job-phase.js';

/**
 * Every phase against every phase: the whole table, written out, so a change to one edge is a
 * change to this test too. `x` = allowed.
 */
const TABLE: Record<JobPhase, string> = {
  //                  q  rf mi vu st ras ran nr to lo fa ca
  queued:            '.  x  x  .  .  .   .   .  .  .  x  x',
  refused:           '.  .  .  .  .  .   .   .  .  .  .  .',
  minted:            '.  x  x  x  x  x   .   x  x  x  x  x',
  'vm-up':           '.  .  x  .  x  x   .   x  x  x  x  x',
  started:           '.  .  .  .  .  .   x   .  x  x  x  .',
  'refused-at-start':'.  x  x  .  .  .   .   .  .  .  x  x',
  ran:               '.  .  .  .  .  .   .   .  .  .  .  .',
  'not-run':         '.  x  x  .  .  .   .   .  .  .  x  x',
  'timed-out':       '.  .  .  .  .  .   .   .  .  .  .  .',
  lost:              '.  x  x  .  .  .   .   .  .  .  x  x',
  failed:            '.  .  .  .  .  .   .   .  .  .  .  .',
  cancelled:         '.  .  .  .  .  .   .   .  .  .  .  .',
};
const COLUMNS: JobPhase[] = ['queued', 'refused', 'minted', 'vm-up', 'started', 'refused-at-start', 'ran', 'not-run', 'timed-out', 'lost', 'failed', 'cancelled'];

const cases = JOB_PHASES.flatMap((from) => {
  const marks = TABLE[from].split(/\s+/);
  return COLUMNS.map((to, i) => [from, to, marks[i] === 'x'] as const);
});

describe('the phase table', () => {
  test('the test table has every phase as a row and a column', () => {
    expect(COLUMNS.slice().sort()).toEqual([...JOB_PHASES].sort());
    expect(Object.keys(TABLE).sort()).toEqual([...JOB_PHASES].sort());
    for (const p of JOB_PHASES) expect(TABLE[p].split(/\s+/)).toHaveLength(COLUMNS.length);
  });

  test.each(cases)('%s → %s allowed: %s', (from, to, allowed) => {
    expect(canMove(from, to)).toBe(allowed);
    expect(movesInto(to).includes(from)).toBe(allowed);
  });

  test.each(JOB_PHASES.map((p) => [p, p === 'queued' || p === 'refused'] as const))('a new record may start %s: %s', (p, allowed) => {
    expect(canMove(null, p)).toBe(allowed);
  });

  test('final phases have no way out, and every phase but the first is reachable', () => {
    expect([...FINAL_PHASES].sort()).toEqual(['cancelled', 'failed', 'ran', 'refused', 'timed-out']);
    for (const p of JOB_PHASES) if (p !== 'queued') expect(movesInto(p).length, p).toBeGreaterThan(0);
    // Every phase leads to a final one: no job can be stuck by the table itself.
    for (const p of JOB_PHASES) {
      const seen = new Set<JobPhase>([p]);
      const todo = [p];
      while (todo.length) for (const n of MOVES[todo.pop()!]) if (!seen.has(n)) seen.add(n), todo.push(n);
      expect([...seen].some((s) => FINAL_PHASES.includes(s)), p).toBe(true);
    }
  });

  test.each([
    ['ran', 'ran'],
    ['not-run', 'not-run'],
    ['timeout', 'timed-out'],
    ['lost', 'lost'],
    ['refused-at-start', 'refused-at-start'],
  ] as const)('a VM that ended %s puts its job in %s', (end, phase) => expect(phaseForVmEnd(end)).toBe(phase));
});
