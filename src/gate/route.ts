import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { START_REFUSAL_TEXT } from '../domain/start-policy.js';
import type { KnownHost } from '../jit/host-auth.js';
import { hostRequest } from '../jit/host-request.js';
import { jobMetrics } from '../metrics/job-metrics.js';
import { askStartGate, type GateDeps } from './start-gate.js';

/**
 * `POST /api/v1/job-started`: an agent relays its guest's job-started hook. Authenticated by the
 * host's token. Always answers 200 with a decision when it can decide (a refusal is an answer);
 * the agent treats anything else as a refusal too.
 */
const body = z.strictObject({
  runnerName: z.string().min(1).max(100),
  hints: z.strictObject({
    repository: z.string().max(201).optional(),
    runId: z.number().int().positive().optional(),
    runAttempt: z.number().int().positive().max(1_000_000).optional(),
  }),
});

export interface GateRouteDeps extends GateDeps {
  hosts: readonly KnownHost[];
  registry: Registry;
}

export async function gateRoutes(app: FastifyInstance, deps: GateRouteDeps): Promise<void> {
  const asked = new Counter({
    name: 'hangar_start_gate_total',
    help: 'Job-start gate answers, by decision and reason',
    labelNames: ['decision', 'reason'],
    registers: [deps.registry],
  });
  const gate = { ...deps, jobs: jobMetrics(deps.registry, deps.keys.prefix) };
  app.post('/api/v1/job-started', async (req, reply) => {
    const r = await hostRequest(req, reply, deps, body);
    if (!r) return reply;
    const a = await askStartGate(gate, r.host, r.body);
    asked.inc({ decision: a.kind, reason: a.kind === 'deny' ? a.reason : '' });
    if (a.kind === 'allow') return { decision: 'allow', workflowJobId: a.workflowJobId ?? null };
    return { decision: 'deny', reason: a.reason, message: START_REFUSAL_TEXT[a.reason], workflowJobId: a.workflowJobId ?? null };
  });
}
