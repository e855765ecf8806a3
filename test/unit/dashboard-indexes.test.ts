import { describe, expect, test } from 'vitest';
import { latestBatch, type BatchJob, type VmSpan } from '../../src/domain/batch.js';
import { JOB_PHASES } from '../../src/domain/job-phase.js';
import { compareStreamIds, EventLog } from '../../src/dashboard/event-log.js';
import { JobIndex } from '../../src/dashboard/job-index.js';
import type { JobEvent } from '../../src/jobs/events.js';
import { isLive, jobView, phaseTimes, refusalView, resultOf } from '../../src/dashboard/views.js';
import { toRecord, type JobRecord } from '../../src/jobs/record.js';

/**
 * The read model's index (src/dashboard/job-index.ts) against the walk over every record it
 * replaced (read-model.ts before it: sort all, filter all), after every change of a long random
 * history: new jobs, replaced records (ties in time, phases in and out of final, refusals that
 * come and change), removed ones.
 */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomRecord(rand: () => number, id: number): JobRecord {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const t0 = 1_000_000 + Math.floor(rand() * 50) * 1000; // few distinct times: ties in every order
  const phase = pick(JOB_PHASES);
  const state = pick(['queued', 'in_progress', 'completed'] as const);
  const h: Record<string, string> = {
    job: JSON.stringify({ repo: 'acme/app', owner: 'acme', repoId: 1, visibility: 'private', runId: 100 + Math.floor(rand() * 6), runAttempt: 1, jobName: `j${id}`, workflowName: 'CI', labels: ['self-hosted'], headBranch: 'main', headSha: 'x', installationId: 1, decision: rand() < 0.1 ? 'reject' : 'accept', pool: pick(['build', 'deploy']), reason: 'repo-not-allowed', firstDeliveryId: 'd' }),
    state, phase, createdAt: String(t0), updatedAt: String(t0 + Math.floor(rand() * 3) * 1000), pool: 'build',
    [`at:${phase}`]: String(t0 + 2000), queuedAt: String(t0),
  };
  if (rand() < 0.5) h['at:vm-up'] = String(t0 + 1000);
  if (state === 'completed') h.completedAt = String(t0 + 3000);
  if (rand() < 0.1) h.mintRefusal = 'fork-pr';
  if (rand() < 0.1) h.startRefusal = 'labels-not-served';
  if (rand() < 0.3) h.runEvent = 'schedule';
  return toRecord(id, h)!;
}

/** What read-model.ts computed from all records before the index. */
function walked(jobs: Map<number, JobRecord>) {
  const recent = [...jobs.values()].sort((a, b) => b.updatedAt - a.updatedAt || b.workflowJobId - a.workflowJobId);
  const refusals = [...jobs.values()].map(refusalView).filter((r) => r !== null).sort((a, b) => b.at - a.at || b.workflowJobId - a.workflowJobId);
  const candidates: (BatchJob & { r: JobRecord })[] = [];
  const spans: VmSpan[] = [];
  for (const r of jobs.values()) {
    const t = phaseTimes(r);
    if (r.runEvent === 'schedule') {
      const result = resultOf(r);
      candidates.push({ r, workflowJobId: r.workflowJobId, runId: r.runId, event: r.runEvent, queuedAt: t.queued ?? r.createdAt, finishedAt: isLive(r) ? null : t.finished ?? r.phaseAt ?? r.updatedAt, failed: result === 'failed' || result === 'refused' });
    }
    if (t.vmUp !== null) spans.push({ up: t.vmUp, end: isLive(r) ? null : (t.finished ?? r.updatedAt) });
  }
  const live = (pool: string) => [...jobs.values()].filter((r) => isLive(r) && r.pool === pool).map((r) => r.workflowJobId);
  return { recent, refusals, live, batch: latestBatch(candidates), spans };
}

const bySpan = (a: VmSpan, b: VmSpan) => a.up - b.up || (a.end ?? Infinity) - (b.end ?? Infinity);

describe('the dashboard job index', () => {
  test('after every change it gives what a walk over all records gives', () => {
    const rand = rng(7);
    const index = new JobIndex();
    const jobs = new Map<number, JobRecord>();
    for (let step = 0; step < 3000; step++) {
      const id = 1 + Math.floor(rand() * 300);
      if (rand() < 0.05) {
        index.delete(id);
        jobs.delete(id);
      } else {
        const r = randomRecord(rand, id);
        const before = jobs.get(id);
        const v = index.version;
        const set = index.set(r);
        expect(index.version).toBeGreaterThan(v);
        jobs.set(id, r);
        expect(set.before).toBe(before);
        expect(set.view).toEqual(jobView(r));
        expect(set.refusalBefore).toEqual(before ? refusalView(before) : null);
      }
      if (step % 25 !== 0) continue;
      const want = walked(jobs);
      expect(index.size).toBe(jobs.size);
      expect(index.newestFirst()).toEqual(want.recent);
      expect(index.refusals(100)).toEqual(want.refusals.slice(0, 100));
      for (const pool of ['build', 'deploy']) expect([...index.live(pool)].map((r) => r.workflowJobId)).toEqual(want.live(pool));
      expect(latestBatch(index.batchCandidates())).toEqual(want.batch);
      expect([...index.spans()].sort(bySpan)).toEqual([...want.spans].sort(bySpan));
      expect([...index.records()]).toEqual([...jobs.values()]);
      for (const r of jobs.values()) expect(index.view(r.workflowJobId)).toEqual(jobView(r));
    }
  });

  test('a job that comes back to life takes its old place among the live ones', () => {
    const index = new JobIndex();
    const rec = (id: number, phase: string) => toRecord(id, { job: JSON.stringify({ repo: 'acme/app', runId: 1, labels: [], pool: 'build' }), state: 'queued', phase, createdAt: '1', updatedAt: '1' })!;
    for (const id of [1, 2, 3]) index.set(rec(id, 'queued'));
    index.set(rec(1, 'failed'));
    expect([...index.live('build')].map((r) => r.workflowJobId)).toEqual([2, 3]);
    index.set(rec(1, 'queued'));
    expect([...index.live('build')].map((r) => r.workflowJobId)).toEqual([1, 2, 3]);
    expect([...index.live('deploy')]).toEqual([]);
  });
});

describe('the dashboard event log', () => {
  const ev = (ms: number, seq: number, job: number | null): JobEvent => ({ id: `${ms}-${seq}`, workflowJobId: job, at: ms, type: 'move', by: 'test', fields: {} });

  test('stream ids in stream order', () => {
    expect(['10-2', '9-5', '10-10', '-', '10-0'].sort(compareStreamIds)).toEqual(['-', '9-5', '10-0', '10-2', '10-10']);
  });

  test('a job\'s events in a range of ids; past its bound the oldest go, from every job', () => {
    const log = new EventLog(5);
    for (let i = 1; i <= 8; i++) log.add(ev(100 + i, 0, i % 2 === 0 ? 2 : 1));
    log.add(ev(200, 0, null));
    expect(log.size).toBe(5);
    expect(log.of(1, '-', '999-0').map((e) => e.id)).toEqual(['105-0', '107-0']);
    expect(log.of(2, '-', '999-0').map((e) => e.id)).toEqual(['104-0', '106-0', '108-0']);
    expect(log.of(2, '105-0', '107-0').map((e) => e.id)).toEqual(['106-0']);
    for (let i = 0; i < 10_000; i++) log.add(ev(300 + i, 0, 3));
    expect(log.of(3, '-', '99999-0').map((e) => e.at)).toEqual([10_295, 10_296, 10_297, 10_298, 10_299]);
    expect(log.of(1, '-', '99999-0')).toEqual([]);
  });
});

describe('where and why a job was refused', () => {
  // What the intake decided is in the record's fixed part (`job`); the rest are fields of their own.
  const rec = ({ decision, reason, ...fields }: Record<string, string>) =>
    toRecord(7, { job: JSON.stringify({ repo: 'acme/app', runId: 1, labels: [], pool: 'build', ...(decision ? { decision, reason } : {}) }), state: 'queued', createdAt: '1', updatedAt: '2', ...fields })!;

  test.each([
    ['intake', { decision: 'reject', reason: 'public-repo', phase: 'refused' }, { where: 'intake', why: 'public-repo' }],
    ['the vetter', { vetRefusal: 'fork-pr', runCancelledFor: 'fork-pr', phase: 'refused' }, { where: 'vet', why: 'fork-pr' }],
    ['the mint', { mintRefusal: 'host-drained', phase: 'refused' }, { where: 'mint', why: 'host-drained' }],
    ['the mint\'s sweep', { mintRefusal: 'fork-pr', runCancelledFor: 'fork-pr', phase: 'refused' }, { where: 'mint', why: 'fork-pr' }],
    ['the mint\'s sweep, a record from before it wrote mintRefusal', { runCancelledFor: 'fork-pr', phase: 'refused' }, { where: 'mint', why: 'fork-pr' }],
    ['the gate at job start', { startRefusal: 'deploy-not-allowed', phase: 'refused-at-start' }, { where: 'start', why: 'deploy-not-allowed' }],
  ])('refused by %s', (_name, fields, want) => {
    expect(refusalView(rec(fields))).toMatchObject(want);
  });

  test('a job whose run was cancelled for another job\'s refusal, but that ran, is no refusal', () => {
    expect(refusalView(rec({ runCancelledFor: 'fork-pr', phase: 'ran' }))).toBeNull();
    expect(refusalView(rec({ phase: 'queued' }))).toBeNull();
  });
});
