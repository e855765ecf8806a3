import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SimContext } from './context.js';
import { SimError, notFound } from './errors.js';
import { paginate } from './github-api.js';
import { encodeJitConfig } from './job-script.js';
import type { Runner, RunnerScope } from './model.js';
import { runnerJson } from './shapes.js';

/**
 * Self-hosted runners, repository and organization scope alike: JIT registration, list, get, delete.
 * All want an installation token.
 */

const DOCS_JIT = 'https://docs.github.com/rest/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-a-repository';
const auth = { config: { auth: 'installation' as const } };
/** Names end up as `RUNNER_NAME=<name>` in a file busybox sh sources: keep them to safe characters. */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

interface Where {
  scope: RunnerScope;
  /** `owner/repo` or the org login. */
  at: string;
}

type P = { owner?: string; repo?: string; org?: string; runner_id?: string };

function where(req: FastifyRequest, ctx: SimContext): Where {
  const p = req.params as P;
  if (p.org !== undefined) {
    if (!ctx.store.orgExists(p.org)) throw notFound();
    return { scope: 'org', at: p.org };
  }
  const repo = ctx.store.requireRepo(p.owner ?? '', p.repo ?? '');
  return { scope: 'repo', at: repo.fullName };
}

interface JitBody {
  name: string;
  runner_group_id: number;
  labels: string[];
  work_folder: string;
}

/** GitHub's 422 wording for a body that does not match the operation's schema. */
function parseJitBody(body: unknown): JitBody {
  const b = (body ?? {}) as Record<string, unknown>;
  const bad = (why: string) => new SimError(422, `Invalid request.\n\n${why}`, DOCS_JIT);
  for (const key of ['name', 'runner_group_id', 'labels']) if (!(key in b)) throw bad(`"${key}" wasn't supplied.`);
  if (typeof b.name !== 'string' || !NAME.test(b.name)) throw bad('For \'properties/name\', the name must be 1 to 64 letters, digits, ".", "_" or "-".');
  if (typeof b.runner_group_id !== 'number' || !Number.isInteger(b.runner_group_id) || b.runner_group_id < 1) {
    throw bad(`For 'properties/runner_group_id', ${JSON.stringify(b.runner_group_id)} is not an integer.`);
  }
  const labels = b.labels;
  if (!Array.isArray(labels) || labels.length < 1 || labels.length > 100 || !labels.every((l) => typeof l === 'string' && l.length > 0)) {
    throw bad(`For 'properties/labels', ${JSON.stringify(labels)} is not an array of 1 to 100 non-empty strings.`);
  }
  if (b.work_folder !== undefined && typeof b.work_folder !== 'string') throw bad(`For 'properties/work_folder', ${JSON.stringify(b.work_folder)} is not a string.`);
  return { name: b.name, runner_group_id: b.runner_group_id, labels: labels as string[], work_folder: (b.work_folder as string | undefined) ?? '_work' };
}

function findRunner(req: FastifyRequest, ctx: SimContext): Runner {
  const w = where(req, ctx);
  const id = Number((req.params as P).runner_id);
  const r = ctx.store.listRunners(w.scope, w.at).find((x) => x.id === id);
  if (!r) throw notFound();
  return r;
}

export function runnerRoutes(scope: FastifyInstance, ctx: SimContext): void {
  for (const base of ['/repos/:owner/:repo/actions/runners', '/orgs/:org/actions/runners']) {
    scope.post(`${base}/generate-jitconfig`, auth, async (req, reply) => {
      const w = where(req, ctx);
      const body = parseJitBody(req.body);
      const { jitLatencyMs } = ctx.knobs.get();
      if (jitLatencyMs > 0) await new Promise((r) => setTimeout(r, jitLatencyMs));
      const runner = ctx.store.createRunner({
        scope: w.scope, ...(w.scope === 'repo' ? { repo: ctx.store.repo(w.at)! } : { org: w.at }),
        name: body.name, labels: body.labels, groupId: body.runner_group_id, workFolder: body.work_folder,
      });
      ctx.logger.info({ runnerId: runner.id, runnerName: runner.name, scope: w.scope, at: w.at }, 'jit runner registered');
      const encoded = encodeJitConfig({ url: ctx.urls().api, runnerId: runner.id, runnerName: runner.name, token: runner.token });
      return reply.code(201).send({ runner: runnerJson(runner), encoded_jit_config: encoded });
    });

    scope.get<{ Querystring: { name?: string } }>(base, auth, async (req, reply) => {
      const w = where(req, ctx);
      const all = ctx.store.listRunners(w.scope, w.at, req.query.name);
      return { total_count: all.length, runners: paginate(req, reply, ctx, all).map(runnerJson) };
    });

    scope.get(`${base}/:runner_id`, auth, async (req) => runnerJson(findRunner(req, ctx)));

    scope.delete(`${base}/:runner_id`, auth, async (req, reply) => {
      const r = findRunner(req, ctx);
      ctx.store.deleteRunner(r);
      ctx.logger.info({ runnerId: r.id, runnerName: r.name }, 'runner deleted');
      return reply.code(204).send();
    });
  }
}
