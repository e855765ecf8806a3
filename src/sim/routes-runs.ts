import type { FastifyInstance } from 'fastify';
import type { SimContext } from './context.js';
import { notFound } from './errors.js';
import { paginate } from './github-api.js';
import type { Run } from './model.js';
import { fullRepoJson, jobJson, runJson, runOutcome } from './shapes.js';

/** Workflow runs and jobs (as the control plane sees them, and cancelling a run) and the repository itself. */

const auth = { config: { auth: 'installation' as const } };

type RepoParams = { owner: string; repo: string };

export function runRoutes(scope: FastifyInstance, ctx: SimContext): void {
  const { store } = ctx;
  const runIn = (p: RepoParams & { run_id: string }): Run => {
    const repo = store.requireRepo(p.owner, p.repo);
    const run = store.run(Number(p.run_id));
    if (!run || run.repo !== repo) throw notFound();
    return run;
  };

  scope.get<{ Params: RepoParams }>('/repos/:owner/:repo', auth, async (req) =>
    fullRepoJson(store.requireRepo(req.params.owner, req.params.repo), ctx.urls()),
  );

  scope.get<{ Params: RepoParams & { job_id: string } }>('/repos/:owner/:repo/actions/jobs/:job_id', auth, async (req) => {
    const repo = store.requireRepo(req.params.owner, req.params.repo);
    const job = store.job(Number(req.params.job_id));
    if (!job || job.run.repo !== repo) throw notFound();
    return jobJson(job, ctx.urls());
  });

  // `status` matches a run's status or its conclusion, as on GitHub (`?status=success` works).
  scope.get<{ Params: RepoParams; Querystring: { status?: string; event?: string; branch?: string; head_sha?: string } }>(
    '/repos/:owner/:repo/actions/runs',
    auth,
    async (req, reply) => {
      const repo = store.requireRepo(req.params.owner, req.params.repo);
      const q = req.query;
      const runs = store.runsOf(repo).filter((run) => {
        const o = runOutcome(store.jobsOf(run));
        return (
          (q.status === undefined || o.status === q.status || o.conclusion === q.status) &&
          (q.event === undefined || run.event === q.event) &&
          (q.branch === undefined || run.headBranch === q.branch) &&
          (q.head_sha === undefined || run.headSha === q.head_sha)
        );
      });
      const page = paginate(req, reply, ctx, runs);
      return { total_count: runs.length, workflow_runs: page.map((r) => runJson(r, store.jobsOf(r), ctx.urls())) };
    },
  );

  scope.get<{ Params: RepoParams & { run_id: string } }>('/repos/:owner/:repo/actions/runs/:run_id', auth, async (req) => {
    const run = runIn(req.params);
    return runJson(run, store.jobsOf(run), ctx.urls());
  });

  scope.get<{ Params: RepoParams & { run_id: string; attempt_number: string } }>(
    '/repos/:owner/:repo/actions/runs/:run_id/attempts/:attempt_number/jobs',
    auth,
    async (req, reply) => {
      const run = runIn(req.params);
      if (Number(req.params.attempt_number) !== run.runAttempt) throw notFound();
      const jobs = store.jobsOf(run);
      return { total_count: jobs.length, jobs: paginate(req, reply, ctx, jobs).map((j) => jobJson(j, ctx.urls())) };
    },
  );

  scope.post<{ Params: RepoParams & { job_id: string } }>('/repos/:owner/:repo/actions/jobs/:job_id/rerun', auth, async (req, reply) => {
    const repo = store.requireRepo(req.params.owner, req.params.repo);
    const job = store.job(Number(req.params.job_id));
    if (!job || job.run.repo !== repo) throw notFound();
    const fresh = store.rerunJob(job);
    ctx.logger.info({ runId: job.run.id, workflowJobId: job.id, newWorkflowJobId: fresh.id, runAttempt: job.run.runAttempt }, 'job re-run');
    return reply.code(201).send({});
  });

  // GitHub answers 202 and cancels shortly after; the sim cancels at once, one `completed` webhook per job.
  scope.post<{ Params: RepoParams & { run_id: string } }>('/repos/:owner/:repo/actions/runs/:run_id/cancel', auth, async (req, reply) => {
    const run = runIn(req.params);
    const jobs = store.cancelRun(run);
    ctx.logger.info({ runId: run.id, workflowJobIds: jobs.map((j) => j.id) }, 'run cancelled');
    return reply.code(202).send({});
  });
}
