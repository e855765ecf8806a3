import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import type { KnownHost } from './host-auth.js';
import { hostRequest } from './host-request.js';
import { VM_BOOT_BUCKETS } from '../domain/arc-metrics.js';
import { jobMetrics } from '../metrics/job-metrics.js';
import { reportJob, type JobReport, type ReportDeps } from './report.js';

/**
 * The agents' reports, so that no agent writes the control's keys in Redis:
 * - `POST /api/v1/jobs/:id/report`: its VM came up, its VM ended (how), or it gave up on the job;
 * - `PUT /api/v1/hosts/self/heartbeat`: its slots and VMs (the mint's claim takeover reads it), its
 *   driver and accelerator, its slice's usage and its VMs' boots (the dashboard's Hosts, /metrics);
 *   answered `{drain}`: whether the operator drained the host; `DELETE` when it drains;
 * - `GET /api/v1/hosts/self`: the host its token names as the control's hosts[] has it (name,
 *   role, pools), written nowhere, so `hangar doctor` can compare it with the agent's file.
 * The host is the one its token names; nothing in a body can speak for another host.
 */
const vmEnd = z.enum(['ran', 'not-run', 'timeout', 'lost', 'refused-at-start']);
const name = z.string().min(1).max(100);

const report: z.ZodType<JobReport> = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('vm-up'), vmId: name, runnerName: name }),
  z.strictObject({
    kind: z.literal('vm-ended'),
    end: vmEnd,
    vmId: name,
    runnerName: name,
    vmMs: z.number().nonnegative(),
    exitCode: z.number().int().nullable().optional(),
    reason: z.string().max(200).optional(),
    startedJob: z.number().int().positive().nullable().optional(),
    consoleTail: z.string().max(65_536).optional(),
    egress: z.unknown().optional(),
  }),
  z.strictObject({ kind: z.literal('failed'), reason: z.string().min(1).max(500), attempts: z.number().int().min(0) }),
]);

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const bytes = z.number().int().min(0).max(2 ** 53);
/** The runner slice against its caps (domain/host-usage.ts), as the agent read its cgroups. */
const usage = z.strictObject({
  cpuPercent: z.number().min(0).max(100_000).nullable(),
  memoryBytes: bytes,
  memoryMaxBytes: bytes.nullable(),
  cpuQuotaCores: z.number().positive().max(4096).nullable(),
});
const heartbeat = z.strictObject({
  slots: z.number().int().min(0).max(1024),
  busy: z.number().int().min(0).max(1024),
  vms: z.array(z.strictObject({ vmId: name, workflowJobId: z.number().int().positive() })).max(256),
  usage: usage.nullable().optional(),
  /** The VM driver (`qemu-microvm`) and the accelerator it boots with (null: not chosen yet, `auto` before the first VM). */
  driver: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/).optional(),
  accel: z.enum(['kvm', 'tcg']).nullable().optional(),
  /** Its VMs' boots since it started (cumulative, VM_BOOT_BUCKETS), relayed on the control's /metrics. */
  boots: z.strictObject({ count, sumSeconds: z.number().min(0).max(1e12), buckets: z.array(count).length(VM_BOOT_BUCKETS.length) }).optional(),
  draining: z.boolean(),
});

const jobId = z.coerce.number().int().positive();

export interface ReportRouteDeps extends ReportDeps {
  hosts: readonly KnownHost[];
  registry: Registry;
}

/** A heartbeat outlives a missed beat or two, not a dead agent. */
export const HEARTBEAT_TTL_SECONDS = 30;

export async function reportRoutes(app: FastifyInstance, deps: ReportRouteDeps): Promise<void> {
  const withMetrics = { ...deps, jobs: jobMetrics(deps.registry, deps.keys.prefix) };
  const reports = new Counter({ name: 'hangar_agent_reports_total', help: 'Agent reports on jobs, by kind and result', labelNames: ['kind', 'result'], registers: [deps.registry] });
  app.post<{ Params: { id: string } }>('/api/v1/jobs/:id/report', async (req, reply) => {
    const r = await hostRequest(req, reply, deps, report);
    if (!r) return reply;
    const id = jobId.safeParse(req.params.id);
    if (!id.success) return reply.code(400).send({ error: 'bad-request', field: 'id', message: 'not a workflow job id' });
    const result = await reportJob(withMetrics, r.host, id.data, r.body);
    reports.inc({ kind: r.body.kind, result: result.kind });
    if (result.kind === 'ok') return { phase: result.phase };
    if (result.kind === 'unknown-job') return reply.code(404).send({ error: 'unknown-job', message: `no record of job ${id.data}` });
    if (result.kind === 'not-yours') return reply.code(403).send({ error: 'not-yours', message: `job ${id.data}'s runner was not minted by this host` });
    return reply.code(409).send({ error: 'illegal-move', message: result.message });
  });
  app.put('/api/v1/hosts/self/heartbeat', async (req, reply) => {
    const r = await hostRequest(req, reply, deps, heartbeat);
    if (!r) return reply;
    const { name: host, role, pools } = r.host;
    const [, drained] = await deps.redis.multi()
      .set(deps.keys.host(host), JSON.stringify({ host, role, pools, ...r.body, at: Date.now() }), 'EX', HEARTBEAT_TTL_SECONDS)
      .exists(deps.keys.hostDrain(host))
      .exec() ?? [];
    // The operator's drain (dashboard): the agent stops taking new jobs until it reads false here.
    return { drain: drained?.[1] === 1 };
  });
  app.get('/api/v1/hosts/self', async (req, reply) => {
    const r = await hostRequest(req, reply, deps, z.unknown());
    if (!r) return reply;
    return { name: r.host.name, role: r.host.role, pools: r.host.pools };
  });
  app.delete('/api/v1/hosts/self/heartbeat', async (req, reply) => {
    const r = await hostRequest(req, reply, deps, z.unknown());
    if (!r) return reply;
    await deps.redis.del(deps.keys.host(r.host.name));
    return reply.code(204).send();
  });
}
