import { z } from 'zod';
import type { CallCounts, CallEntry } from './calls.js';
import type { SimContext } from './context.js';
import { notFound } from './errors.js';
import type { Delivery } from './hookshot.js';
import type { Knobs, KnobsPatch } from './knobs.js';
import type { GroupVisibility, Job, Runner, RunnerGroup } from './model.js';
import { encodeJitConfig } from './job-script.js';
import { fullRepoJson } from './shapes.js';

/**
 * The control API's operations (`/_sim/...`), typed, for routes-control.ts and for tests that
 * hold the Sim in-process. These shapes are a contract other tests are written against.
 */

const fullName = z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'expected owner/name');
const visibility = z.enum(['private', 'public', 'internal']);
const segment = z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/);

export const CreateRepoBody = z.object({ owner: segment, name: segment, visibility, forkOf: fullName.optional() });
export const PatchRepoBody = z.object({ visibility });
export const CreateRunBody = z.object({
  repo: fullName,
  event: z.enum(['push', 'pull_request', 'schedule', 'workflow_dispatch']).optional(),
  headBranch: z.string().min(1).optional(),
  headRepository: fullName.optional(),
  workflowName: z.string().min(1).optional(),
  jobs: z.array(z.object({ name: z.string().min(1), labels: z.array(z.string().min(1)), steps: z.array(z.string()) })).min(1),
});
/** Creates a runner group of `org`, or replaces every setting of the one with that name. */
export const RunnerGroupBody = z.object({
  org: segment,
  name: z.string().min(1).max(100),
  visibility: z.enum(['all', 'selected', 'private']),
  allowsPublicRepositories: z.boolean().optional(),
  restrictedToWorkflows: z.boolean().optional(),
  selectedWorkflows: z.array(z.string().min(1)).optional(),
  selectedRepositories: z.array(fullName).optional(),
});
export const WebhookBody = z.object({ url: z.string().url(), secret: z.string().min(1) });

export type CreateRepoBody = z.infer<typeof CreateRepoBody>;
export type CreateRunBody = z.infer<typeof CreateRunBody>;
export type RunnerGroupBody = z.infer<typeof RunnerGroupBody>;

export interface RunnerGroupView {
  id: number;
  org: string;
  name: string;
  visibility: GroupVisibility;
  default: boolean;
  allowsPublicRepositories: boolean;
  restrictedToWorkflows: boolean;
  selectedWorkflows: string[];
  /** `owner/name` of each selected repository. */
  selectedRepositories: string[];
}

export interface CreatedRun {
  runId: number;
  runAttempt: number;
  jobs: { id: number; name: string }[];
}

export interface JobView {
  id: number;
  runId: number;
  status: Job['status'];
  conclusion: Job['conclusion'];
  labels: string[];
  runnerId: number | null;
  runnerName: string | null;
  exitCode: number | null;
  output: string;
  /** Exit code of each step that ran: empty when no step did (e.g. its job-started hook failed). */
  stepExits: number[];
}

export interface RunnerView {
  id: number;
  name: string;
  labels: string[];
  scope: 'repo' | 'org';
  /** `owner/name`, for repo scope. */
  repo?: string;
  /** The organization login, for org scope. */
  org?: string;
  /** `deleted` once it is gone from GitHub's API (after its job, or a DELETE). */
  status: 'offline' | 'online' | 'busy' | 'deleted';
  createdAt: string;
  busySince: string | null;
  deletedAt: string | null;
  jobId: number | null;
}

export interface DeliveryView {
  id: number;
  guid: string;
  event: string;
  action: string | null;
  workflowJobId: number | null;
  /** 0: no HTTP response (dropped, refused, timed out, no URL). */
  statusCode: number;
  redelivery: boolean;
  dropped: boolean;
  duplicate: boolean;
  deliveredAt: string;
}

export const jobView = (j: Job): JobView => ({
  id: j.id, runId: j.run.id, status: j.status, conclusion: j.conclusion, labels: [...j.labels],
  runnerId: j.runnerId, runnerName: j.runnerName, exitCode: j.exitCode, output: j.output, stepExits: [...j.stepExits],
});

export const runnerView = (r: Runner): RunnerView => ({
  id: r.id, name: r.name, labels: [...r.labels], scope: r.scope,
  ...(r.scope === 'repo' ? { repo: r.repo?.fullName ?? '' } : { org: r.org }),
  status: r.deletedAt ? 'deleted' : r.busy ? 'busy' : r.status,
  createdAt: r.createdAt, busySince: r.busySince, deletedAt: r.deletedAt, jobId: r.jobId,
});

export const runnerGroupView = (g: RunnerGroup): RunnerGroupView => ({
  id: g.id, org: g.org, name: g.name, visibility: g.visibility, default: g.default, allowsPublicRepositories: g.allowsPublicRepositories,
  restrictedToWorkflows: g.restrictedToWorkflows, selectedWorkflows: [...g.selectedWorkflows], selectedRepositories: g.selectedRepos.map((r) => r.fullName),
});

export const deliveryView = (d: Delivery): DeliveryView => ({
  id: d.id, guid: d.guid, event: d.event, action: d.action, workflowJobId: d.workflowJobId, statusCode: d.statusCode,
  redelivery: d.redelivery, dropped: d.dropped, duplicate: d.duplicate, deliveredAt: d.deliveredAt,
});

export class SimControl {
  constructor(private readonly ctx: SimContext) {}

  createRepo(input: CreateRepoBody): Record<string, unknown> {
    return fullRepoJson(this.ctx.store.createRepo(input), this.ctx.urls());
  }

  setVisibility(repo: string, v: CreateRepoBody['visibility']): Record<string, unknown> {
    return fullRepoJson(this.ctx.store.setVisibility(repo, v), this.ctx.urls());
  }

  /** Creates the organization's runner group, or replaces the settings of the one with that name (`Default` too). */
  setRunnerGroup(input: RunnerGroupBody): RunnerGroupView & { created: boolean } {
    const { group, created } = this.ctx.store.groups.upsert(input);
    return { ...runnerGroupView(group), created };
  }

  /** Queues a run; one signed `workflow_job` `queued` webhook per job follows. */
  createRun(input: CreateRunBody): CreatedRun {
    const { run, jobs } = this.ctx.store.createRun(input);
    return { runId: run.id, runAttempt: run.runAttempt, jobs: jobs.map((j) => ({ id: j.id, name: j.name })) };
  }

  job(id: number): JobView {
    const j = this.ctx.store.job(id);
    if (!j) throw notFound();
    return jobView(j);
  }

  cancelJob(id: number): JobView {
    return jobView(this.ctx.store.cancelJob(id));
  }

  runners(): RunnerView[] {
    return this.ctx.store.allRunners().map(runnerView);
  }

  /** Removes a runner as `DELETE …/actions/runners/{id}` does (422 while it runs a job). */
  deleteRunner(id: number): RunnerView {
    const r = this.ctx.store.runner(id);
    if (!r) throw notFound();
    this.ctx.store.deleteRunner(r);
    return runnerView(r);
  }

  /**
   * Every secret the sim handed out (installation tokens, runners' JIT configs and tokens), so a
   * test can prove none of them reached a log, Redis, a command line or an API response.
   */
  secrets(): { installationTokens: string[]; runnerTokens: string[]; jitConfigs: string[] } {
    const runners = this.ctx.store.allRunners();
    return {
      installationTokens: this.ctx.tokens.all(),
      runnerTokens: runners.map((r) => r.token),
      jitConfigs: runners.map((r) => encodeJitConfig({ url: this.ctx.urls().api, runnerId: r.id, runnerName: r.name, token: r.token })),
    };
  }

  deliveries(): DeliveryView[] {
    return this.ctx.hookshot.list().map(deliveryView);
  }

  setWebhook(target: { url: string; secret: string }): void {
    this.ctx.hookshot.setTarget(target.url, target.secret);
  }

  /** Requests to the GitHub REST face since the last reset, per `METHOD /route/:template` and status. */
  calls(): CallCounts {
    return this.ctx.calls.snapshot();
  }

  /** The same calls one by one, in order, each with the time it arrived (for rates per window). */
  callLog(): CallEntry[] {
    return this.ctx.calls.entries();
  }

  resetCalls(): void {
    this.ctx.calls.reset();
  }

  knobs(): Knobs {
    return this.ctx.knobs.get();
  }

  setKnobs(patch: KnobsPatch): Knobs {
    return this.ctx.knobs.set(patch);
  }

  /** Resolves once every webhook emitted so far has been attempted. */
  idle(): Promise<void> {
    return this.ctx.hookshot.idle();
  }

  /** A valid installation token without the JWT dance, for tests that only need to call the API. */
  installationToken(): string {
    return this.ctx.tokens.issue(this.ctx.knobs.get().tokenTtlSeconds).token;
  }
}
