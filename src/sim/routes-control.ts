import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { CreateRepoBody, CreateRunBody, PatchRepoBody, RunnerGroupBody, WebhookBody, type SimControl } from './control.js';
import { SimError } from './errors.js';
import { KnobsPatchSchema } from './knobs.js';

/** `/_sim/...`: the test's handle on the sim. No auth; JSON in, JSON out; 400 lists every bad field. */
export function controlRoutes(scope: FastifyInstance, control: SimControl): void {
  scope.setErrorHandler(async (err: unknown, _req, reply: FastifyReply) => {
    if (err instanceof z.ZodError) {
      return reply.code(400).send({ message: 'invalid body', issues: err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
    }
    if (err instanceof SimError) return reply.code(err.status).send({ message: err.message, ...(err.errors ? { errors: err.errors } : {}) });
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ message: err instanceof Error ? err.message : 'error' });
  });

  const id = (p: unknown) => Number((p as { id: string }).id);

  scope.post('/_sim/repos', async (req, reply) => reply.code(201).send(control.createRepo(CreateRepoBody.parse(req.body))));
  scope.patch<{ Params: { owner: string; repo: string } }>('/_sim/repos/:owner/:repo', async (req) =>
    control.setVisibility(`${req.params.owner}/${req.params.repo}`, PatchRepoBody.parse(req.body).visibility),
  );
  // 201 for a new group, 200 for new settings of an existing one.
  scope.put('/_sim/runner-groups', async (req, reply) => {
    const { created, ...group } = control.setRunnerGroup(RunnerGroupBody.parse(req.body));
    return reply.code(created ? 201 : 200).send(group);
  });
  scope.post('/_sim/runs', async (req, reply) => reply.code(201).send(control.createRun(CreateRunBody.parse(req.body))));
  scope.get('/_sim/jobs/:id', async (req) => control.job(id(req.params)));
  scope.post('/_sim/jobs/:id/cancel', async (req) => control.cancelJob(id(req.params)));
  scope.get('/_sim/runners', async () => control.runners());
  scope.get('/_sim/secrets', async () => control.secrets());
  scope.get('/_sim/deliveries', async () => control.deliveries());
  scope.post('/_sim/idle', async (_req, reply) => {
    await control.idle();
    return reply.code(204).send();
  });
  scope.put('/_sim/webhook', async (req) => {
    const body = WebhookBody.parse(req.body);
    control.setWebhook(body);
    return { url: body.url };
  });
  scope.get('/_sim/calls', async () => control.calls());
  // Every call in order with its time (bounded), for a rate over any window.
  scope.get('/_sim/calls/log', async () => control.callLog());
  scope.delete('/_sim/calls', async (_req, reply) => {
    control.resetCalls();
    return reply.code(204).send();
  });
  scope.get('/_sim/knobs', async () => control.knobs());
  scope.put('/_sim/knobs', async (req) => control.setKnobs(KnobsPatchSchema.parse(req.body)));
}
