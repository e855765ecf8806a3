import { expect, test } from 'vitest';
import { batchProgress, latestBatch, utilisation, type BatchJob } from '../../src/domain/batch.js';

const H = 3600_000;
const job = (id: number, runId: number, queuedAt: number, o: Partial<BatchJob> = {}): BatchJob => ({
  workflowJobId: id, runId, event: 'schedule', queuedAt, finishedAt: null, failed: false, ...o,
});

test.each([
  ['no schedule run: no batch', [job(1, 1, 0, { event: 'push' })], []],
  ['one run', [job(1, 1, 0), job(2, 1, 10)], [1, 2]],
  ['last night and tonight: only tonight', [job(1, 1, 0), job(2, 2, 24 * H), job(3, 3, 24 * H + 5 * 60_000)], [2, 3]],
  ['runs spread over minutes are one batch', [job(1, 1, 0), job(2, 2, 30 * 60_000), job(3, 3, 80 * 60_000)], [1, 2, 3]],
  ['a job queued late in its run still belongs to it', [job(1, 1, 0), job(2, 1, 5 * H)], [1, 2]],
  ['push runs beside it are not in it', [job(1, 1, 0), job(2, 2, 60, { event: 'push' })], [1]],
  ['an unknown event is not schedule', [job(1, 1, 0, { event: null })], []],
])('latest batch: %s', (_n, jobs, want) => {
  expect(latestBatch(jobs).map((j) => j.workflowJobId)).toEqual(want);
});

test('progress: running, then done with a failure', () => {
  const running = [job(1, 1, 100, { finishedAt: 500 }), job(2, 1, 200)];
  expect(batchProgress(running, 1000)).toEqual({ total: 2, done: 1, failed: 0, firstQueuedAt: 100, lastFinishedAt: null, makespanMs: 900 });
  const done = [job(1, 1, 100, { finishedAt: 500 }), job(2, 1, 200, { finishedAt: 1500, failed: true })];
  expect(batchProgress(done, 9999)).toEqual({ total: 2, done: 2, failed: 1, firstQueuedAt: 100, lastFinishedAt: 1500, makespanMs: 1400 });
  expect(batchProgress([], 5)).toMatchObject({ total: 0, makespanMs: null });
});

test.each([
  ['no VM', [], 0, 10, [{ at: 0, busy: 0, total: 2 }, { at: 10, busy: 0, total: 2 }]],
  ['one VM inside', [{ up: 2, end: 5 }], 0, 10, [{ at: 0, busy: 0 }, { at: 2, busy: 1 }, { at: 5, busy: 0 }, { at: 10, busy: 0 }]],
  ['one up before the window and still up', [{ up: -5, end: null }], 0, 10, [{ at: 0, busy: 1 }, { at: 10, busy: 1 }]],
  ['two overlapping, one ends as another starts', [{ up: 1, end: 4 }, { up: 2, end: 6 }, { up: 4, end: 8 }], 0, 8,
    [{ at: 0, busy: 0 }, { at: 1, busy: 1 }, { at: 2, busy: 2 }, { at: 4, busy: 2 }, { at: 6, busy: 1 }, { at: 8, busy: 0 }]],
  ['VMs outside the window do not count', [{ up: -10, end: -1 }, { up: 11, end: 12 }], 0, 10, [{ at: 0, busy: 0 }, { at: 10, busy: 0 }]],
])('utilisation: %s', (_n, vms, from, to, want) => {
  expect(utilisation(vms, from, to, 2)).toEqual(want.map((p) => ({ total: 2, ...p })));
});
