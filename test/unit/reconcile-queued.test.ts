import { describe, expect, test } from 'vitest';
import type { PolicyConfig } from '../../src/domain/policy.js';
import {
  missingQueuedJobs, ownersToList, planQueuedRuns, queuedJobEvent, reconcileDeliveryId, servedRepositories,
  type FoundJob, type FoundRepository, type FoundRun, type QueuedRepoObservation,
} from '../../src/domain/reconcile-queued.js';

const config: PolicyConfig = {
  policy: { repositories: ['acme/*', 'solo/tool'], allowInternal: false },
  pools: [
    { name: 'build', labels: ['self-hosted', 'linux', 'x64', 'build'] },
    { name: 'deploy', labels: ['self-hosted', 'linux', 'x64', 'deploy'], deploy: { repositories: ['acme/site'], branches: ['main'] } },
  ],
};

const run: FoundRun = { id: 900, runAttempt: 2, headBranch: 'main', headSha: 'abc123' };
const job = (o: Partial<FoundJob> = {}): FoundJob => ({
  id: 1, runId: 900, runAttempt: 2, name: 'build', status: 'queued', labels: ['self-hosted', 'build'],
  headBranch: 'main', headSha: 'abc123', workflowName: 'CI', ...o,
});
const repo = (o: Partial<FoundRepository> = {}): FoundRepository => ({ id: 77, fullName: 'acme/app', visibility: 'private', ...o });
const obs = (jobs: FoundJob[], r: FoundRepository = repo(), installationId: number | null = 5): QueuedRepoObservation =>
  ({ repo: r, installationId, missing: jobs.map((j) => ({ job: j, run })) });

describe('which repositories to poll', () => {
  const listed = [{ fullName: 'acme/app' }, { fullName: 'Acme/Site' }, { fullName: 'other/app' }, { fullName: 'solo/tool' }, { fullName: 'solo/else' }];
  test.each<[string, string[], string[]]>([
    ['owner/* takes every listed repository of that owner, case-insensitively', ['acme/*'], ['acme/app', 'Acme/Site']],
    ['an exact pattern is polled as written, listed or not', ['solo/tool', 'solo/missing'], ['solo/tool', 'solo/missing']],
    ['another owner of the listing is never polled', ['acme/*'], ['acme/app', 'Acme/Site']],
    ['each repository once, when an exact pattern repeats a wildcard', ['acme/*', 'ACME/app'], ['acme/app', 'Acme/Site']],
    ['an owner with nothing listed: nothing', ['nobody/*'], []],
  ])('%s', (_n, patterns, want) => expect(servedRepositories(patterns, listed)).toEqual(want));

  test('owners to list: those of owner/* patterns, once each', () => {
    expect(ownersToList(['acme/*', 'solo/tool', 'ACME/*', 'zed/*'])).toEqual(['ACME', 'zed']);
  });
});

describe('missing queued jobs', () => {
  test.each<[string, FoundJob, Set<number>, boolean]>([
    ['queued, self-hosted, no record', job(), new Set(), true],
    ['labels any case', job({ labels: ['Self-Hosted', 'build'] }), new Set(), true],
    ['already recorded', job(), new Set([1]), false],
    ['in progress', job({ status: 'in_progress' }), new Set(), false],
    ['completed', job({ status: 'completed' }), new Set(), false],
    ['waiting for an environment', job({ status: 'waiting' }), new Set(), false],
    ['GitHub-hosted', job({ labels: ['ubuntu-latest'] }), new Set(), false],
  ])('%s', (_n, j, recorded, want) => expect(missingQueuedJobs([j], recorded)).toEqual(want ? [j] : []));
});

describe('the event a queued webhook would carry', () => {
  test('every field, from the job, its run, the repository and the installation', () => {
    expect(queuedJobEvent(job({ id: 42 }), run, repo(), 5)).toEqual({
      action: 'queued', workflowJobId: 42, runId: 900, runAttempt: 2, jobName: 'build', workflowName: 'CI',
      labels: ['self-hosted', 'build'], headBranch: 'main', headSha: 'abc123', repo: 'acme/app', owner: 'acme', repoId: 77,
      visibility: 'private', installationId: 5, runnerId: null, runnerName: null, conclusion: null,
    });
  });
  test('branch and sha from the run when the job has none', () => {
    const e = queuedJobEvent(job({ headBranch: null, headSha: '' }), { ...run, headBranch: 'dev', headSha: 'fff' }, repo(), null);
    expect(e).toMatchObject({ headBranch: 'dev', headSha: 'fff', installationId: null });
  });
  test('the delivery id is never a GitHub guid (a UUID) and is the same on every pass', () => {
    expect(reconcileDeliveryId(42, 2)).toBe('reconcile-42-2');
    expect(reconcileDeliveryId(42, 2)).not.toMatch(/^[0-9a-f-]+$/i);
  });
});

describe('planQueuedRuns', () => {
  const one = (jobs: FoundJob[], r?: FoundRepository) => planQueuedRuns([obs(jobs, r)], config).map((a) => [a.event.workflowJobId, a.decision, a.deliveryId]);
  test.each<[string, FoundJob[], FoundRepository | undefined, unknown[]]>([
    ['a build job: queued in build', [job()], undefined, [[1, { kind: 'accept', pool: 'build' }, 'reconcile-1-2']]],
    ['a deploy job from main of the deploy repo', [job({ labels: ['self-hosted', 'deploy'] })], repo({ fullName: 'acme/site' }), [[1, { kind: 'accept', pool: 'deploy' }, 'reconcile-1-2']]],
    ['a deploy job of a repo the deploy pool does not allow: recorded refused', [job({ labels: ['self-hosted', 'deploy'] })], undefined, [[1, { kind: 'reject', reason: 'deploy-not-allowed' }, 'reconcile-1-2']]],
    ['a public repository: recorded refused, never queued', [job()], repo({ visibility: 'public' }), [[1, { kind: 'reject', reason: 'public-repo' }, 'reconcile-1-2']]],
    ['a repository policy does not name: recorded refused', [job()], repo({ fullName: 'evil/app' }), [[1, { kind: 'reject', reason: 'repo-not-allowed' }, 'reconcile-1-2']]],
    ['labels no pool has', [job({ labels: ['self-hosted', 'gpu'] })], undefined, [[1, { kind: 'reject', reason: 'no-pool' }, 'reconcile-1-2']]],
    ['a hosted job handed in anyway: left alone, as the webhook route leaves it', [job({ labels: ['ubuntu-latest'] })], undefined, []],
    ['one job twice: once', [job(), job()], undefined, [[1, { kind: 'accept', pool: 'build' }, 'reconcile-1-2']]],
  ])('%s', (_n, jobs, r, want) => expect(one(jobs, r)).toEqual(want));
});
