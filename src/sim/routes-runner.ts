import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SimContext } from './context.js';
import { renderJobScript } from './job-script.js';
import type { Runner } from './model.js';

/**
 * `/_runner/...`: the sim's stand-in for the Actions service a real runner talks to. A runner
 * proves itself with the token from its JIT config, takes one job, reports it, and is gone.
 * Everything here comes from a guest, which is hostile: bodies are bounded, numbers checked.
 */

const OUTPUT_LIMIT = 1024 * 1024;

/**
 * The runner a request's token belongs to. With `cancelledToo`, also a retired runner whose job
 * was cancelled while it ran: it still reports that job, and hears 409.
 */
function runnerOf(req: FastifyRequest, ctx: SimContext, reply: FastifyReply, cancelledToo = false): Runner | undefined {
  const m = /^RunnerToken\s+([0-9a-f]{40})$/.exec(req.headers.authorization ?? '');
  const found = m?.[1] ? ctx.store.runnerByToken(m[1], { retired: cancelledToo }) : undefined;
  const jobCancelled = found?.jobId != null && ctx.store.job(found.jobId)?.conclusion === 'cancelled';
  const runner = found && (found.deletedAt === null || jobCancelled) ? found : undefined;
  if (!runner) void reply.code(401).send({ message: 'unknown or retired runner' });
  return runner;
}

export function runnerProtocolRoutes(scope: FastifyInstance, ctx: SimContext): void {
  // Guests post output with whatever content type their wget picks; take every body as text.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: OUTPUT_LIMIT }, (_req, body, done) => done(null, body));

  // When each runner first asked for a job (the assignAfterMs knob counts from there).
  const firstPoll = new Map<number, number>();
  scope.get('/_runner/job', async (req, reply) => {
    const runner = runnerOf(req, ctx, reply);
    if (!runner) return reply;
    if (!firstPoll.has(runner.id)) firstPoll.set(runner.id, Date.now());
    if (Date.now() - firstPoll.get(runner.id)! < ctx.knobs.get().assignAfterMs) return reply.code(204).send();
    const claim = ctx.store.claim(runner);
    if (claim.kind === 'spent') return reply.code(410).send({ message: 'this runner already took its one job' });
    if (claim.kind === 'none') return reply.code(204).send();
    ctx.logger.info({ runnerId: runner.id, workflowJobId: claim.job.id }, 'job assigned');
    return reply
      .code(200)
      .header('content-type', 'text/plain; charset=utf-8')
      .header('x-sim-job-id', String(claim.job.id))
      .send(renderJobScript(claim.job));
  });

  scope.post<{ Params: { jobId: string }; Querystring: { exit?: string } }>('/_runner/jobs/:jobId/result', { bodyLimit: OUTPUT_LIMIT }, async (req, reply) => {
    const runner = runnerOf(req, ctx, reply, true);
    if (!runner) return reply;
    const exit = Number(req.query.exit);
    if (!/^\d{1,3}$/.test(req.query.exit ?? '') || exit > 255) return reply.code(400).send({ message: 'exit must be 0..255' });
    const job = ctx.store.finish(runner, Number(req.params.jobId), exit, typeof req.body === 'string' ? req.body : '');
    ctx.logger.info({ runnerId: runner.id, workflowJobId: job.id, exitCode: exit, conclusion: job.conclusion }, 'job finished');
    return { id: job.id, status: job.status, conclusion: job.conclusion };
  });

  // The runner's lock on its job (actions/runner's listener renews every 60 s while the job
  // runs). No renewal for the jobLockTimeoutMs knob and the store fails the job as lost.
  scope.post<{ Params: { jobId: string } }>('/_runner/jobs/:jobId/renew', async (req, reply) => {
    const runner = runnerOf(req, ctx, reply);
    if (!runner) return reply;
    const timeoutMs = ctx.knobs.get().jobLockTimeoutMs;
    const until = ctx.store.renew(runner, Number(req.params.jobId), timeoutMs);
    return { id: Number(req.params.jobId), lockedUntil: timeoutMs > 0 ? new Date(until).toISOString() : null };
  });

  scope.setErrorHandler(async (err: unknown, _req, reply) => {
    const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ message: err instanceof Error ? err.message : 'error' });
  });
}
