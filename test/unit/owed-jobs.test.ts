import { describe, expect, test } from 'vitest';
import { owedCandidates, planOwedJobs, type OwedCandidate, type OwedOptions } from '../../src/domain/owed-jobs.js';

const NOW = 1_000_000_000;
const o: OwedOptions = { now: NOW, graceMs: 120_000, maxReopens: 3, pools: ['build'] };
const owed: OwedCandidate = { workflowJobId: 500, state: 'queued', phase: 'ran', startedJob: 499, phaseAt: NOW - 200_000, pool: 'build', reopens: 0 };

describe('jobs owed a runner', () => {
  test.each<[string, Partial<OwedCandidate>, boolean]>([
    ['its runner ran another job, GitHub still says queued, past the grace', {}, true],
    ['its runner ran it', { startedJob: 500 }, false],
    ['its runner started nothing the gate saw', { startedJob: null }, false],
    ['GitHub said in progress (another runner took it: the swap)', { state: 'in_progress' }, false],
    ['GitHub said completed', { state: 'completed' }, false],
    ['still within the grace: a runner still booting may take it', { phaseAt: NOW - 60_000 }, false],
    ['exactly at the grace', { phaseAt: NOW - 120_000 }, true],
    ['its VM has not ended', { phase: 'started' }, false],
    ['not run at all (retried by its own path)', { phase: 'not-run' }, false],
    ['a phase with no time', { phaseAt: null }, false],
    ['reopened three times already', { reopens: 3 }, false],
    ['reopened twice', { reopens: 2 }, true],
    ['a pool no longer in the config', { pool: 'gone' }, false],
    ['no pool', { pool: null }, false],
  ])('%s', (_why, patch, want) => {
    expect(owedCandidates([{ ...owed, ...patch }], o)).toHaveLength(want ? 1 : 0);
  });

  test('only a job GitHub still holds queued is reopened, with its reopen counted', () => {
    const others = [{ ...owed, workflowJobId: 501 }, { ...owed, workflowJobId: 502 }, { ...owed, workflowJobId: 503, reopens: 1 }];
    const status = new Map([[500, 'queued'], [501, 'in_progress'], [503, 'queued']]);
    expect(planOwedJobs([owed, ...others], status, o)).toEqual([
      { workflowJobId: 500, startedJob: 499, reopens: 1, pool: 'build' },
      { workflowJobId: 503, startedJob: 499, reopens: 2, pool: 'build' },
    ]);
  });
});
