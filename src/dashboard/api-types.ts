/**
 * The dashboard's JSON contract: what every endpoint of the dashboard listener answers. Types
 * only; the server (src/dashboard/) builds these, the page (src/dashboard/page/) and
 * `hangar status` read them. Change it only additively.
 *
 * Conventions
 * - Times are milliseconds since the epoch (UTC), as numbers; durations are milliseconds.
 *   `null` means "not (yet) known", never 0.
 * - Every string that came from GitHub (repository, workflow and job names, labels, branches,
 *   refusal details, console and egress text) is untrusted: the page must insert it as text.
 * - No answer ever carries a secret (tokens, JIT configs, keys): the server never reads them
 *   into a view.
 * - Errors: a non-2xx answer is `ApiError` JSON. 401 without a valid session or bearer token
 *   (the page's own routes redirect to `/login` instead), 403 for a cookie-session action
 *   without the right `x-csrf-token`, 404 for an unknown job or host, 409 for an action that
 *   does not apply to the job as it is (with why), 429 for too many failed logins.
 *
 * Endpoints (all on the dashboard listener, `dashboard.listen`, default 127.0.0.1:8081):
 *   GET  /api/v1/overview             → Overview
 *   GET  /api/v1/jobs/:id             → JobDetail            (:id = the workflow job id)
 *   GET  /api/v1/stream               → SSE, see StreamMessage below
 *   GET  /api/v1/session              → SessionView
 *   POST /api/v1/hosts/:name/drain    → HostActionResult     (body: optional { why?: string })
 *   POST /api/v1/hosts/:name/undrain  → HostActionResult     (body: optional { why?: string })
 *   POST /api/v1/jobs/:id/cancel      → JobActionResult      (body: optional { why?: string })
 *   POST /api/v1/jobs/:id/retry       → JobActionResult      (body: optional { why?: string })
 *   GET  /login                       → HTML form (no script); POST /login (form body `token`)
 *                                       → 303 to `/` with the `hangar_session` cookie, or 401 + form
 *   POST /logout                      → 303 to /login, session removed
 *   GET  /healthz                     → { ok: true } (no auth; the bench's baseline)
 *
 * Auth: `Authorization: Bearer <operator token>` (no CSRF needed), or the `hangar_session`
 * cookie set by POST /login (HttpOnly, SameSite=Strict, Path=/). A cookie session's POSTs must
 * carry `x-csrf-token: <SessionView.csrf>`. EventSource sends the cookie by itself.
 *
 * Headers: every answer of the listener, the page's own files included, gets the strict CSP
 * (`default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src
 * 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`), `X-Content-Type-Options:
 * nosniff` and `Referrer-Policy: no-referrer` from an onSend hook in server.ts; the API adds
 * `Cache-Control: no-store`. So the page's routes need not set them.
 *
 * The page's routes: `createDashboardServer({ ..., pageRoutes })` in src/dashboard/server.ts takes
 * `pageRoutes: PageRoutes` — `(app: FastifyInstance, ctx: PageContext) => void | Promise<void>`,
 * called once before the server listens, where `ctx.requireSession` is a Fastify preHandler that
 * redirects a request without a session (or bearer) to `/login`. The page registers `/` and its
 * static files there (the server registers `/` itself only when no `pageRoutes` is given). The
 * control passes it from src/main/control-app.ts (`dashboardUnit(..., { pageRoutes })`).
 */

import type { JobPhase } from '../domain/job-phase.js';
import type { StuckWhy } from '../domain/stuck-jobs.js';

export type Millis = number;

export interface ApiError {
  /** A stable code, e.g. `unauthorized`, `csrf`, `unknown-job`, `not-waiting`, `not-retryable`. */
  error: string;
  /** One line for a person. */
  message: string;
  /** The field a bad request got wrong, when there is one. */
  field?: string;
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/overview

export interface Overview {
  generatedAt: Millis;
  hosts: HostView[];
  pools: PoolView[];
  /** Live jobs (not in a final phase) and recent ones, newest first (by last update), at most 200. */
  jobs: JobView[];
  /** Refused jobs, newest first, at most 100. */
  refusals: RefusalView[];
  /** The latest nightly batch (runs started by `schedule`), or null when there was none in the kept history. */
  batch: BatchView | null;
  savings: SavingsView;
}

// ---------------------------------------------------------------------------------------------
// Hosts: the config's hosts[] joined with their heartbeats and the operator's drain flag.

export interface HostView {
  name: string;
  role: 'build' | 'deploy';
  pools: string[];
  /** A heartbeat is there (it expires 30 s after the agent's last one). */
  up: boolean;
  /** The last heartbeat's time; null once it expired (or never came). */
  lastBeatAt: Millis | null;
  /** The agent says it is draining (its own SIGTERM drain, or the operator's drain taken). */
  draining: boolean;
  /** The operator drained it (POST /api/v1/hosts/:name/drain); the agent takes no new jobs. */
  drained: boolean;
  /** Its slots; null while it is down. */
  slots: { used: number; total: number } | null;
  /** VMs it runs now (from its heartbeat): the VM id and the job it serves. */
  vms: { vmId: string; workflowJobId: number }[];
  /** The VM driver and accelerator, when its heartbeat says (null until an agent reports them). */
  driver: string | null;
  accelerator: 'kvm' | 'tcg' | null;
  /** Usage of its runner slice against the slice's caps; null until the heartbeat carries it. */
  usage: HostUsage | null;
}

export interface HostUsage {
  /** CPU the slice used since the agent's last sample, in percent of its CPUQuota (of the host's CPUs when it has none), as the heartbeat says (domain/host-usage.ts). */
  cpuPercent: number | null;
  memoryBytes: number | null;
  /** The slice's MemoryMax. */
  memoryMaxBytes: number | null;
  /** The slice's CPUQuota, in cores (1.5 = 150 %). */
  cpuQuotaCores: number | null;
}

// ---------------------------------------------------------------------------------------------
// Pools

export interface PoolView {
  name: string;
  labels: string[];
  /** A deploy pool (only its repositories and branches run there). */
  deploy: boolean;
  /** Hosts serving it (names, from the config). */
  hosts: string[];
  /** Accepted jobs GitHub still holds queued and Hangar has no VM up for (phases queued, minted, refused-at-start). */
  waiting: number;
  /** Jobs with a VM up or started. */
  running: number;
  /** The oldest waiting job, and why it waits (domain/stuck-jobs.ts; computed now, not only once reconcile flagged it). */
  oldestWaiting: { workflowJobId: number; since: Millis; why: StuckWhy } | null;
}

// ---------------------------------------------------------------------------------------------
// Jobs

/**
 * A job's outcome in one word:
 * - `waiting`: no VM up for it yet; `running`: VM up or started;
 * - `succeeded` / `failed` / `cancelled` / `skipped`…: GitHub's conclusion once completed
 *   (any conclusion GitHub sends, e.g. `success` becomes `succeeded`, `failure` `failed`,
 *   others as GitHub spells them);
 * - `failed` also when Hangar gave up on it (phase failed, timed-out) before GitHub finished it;
 * - `refused`: refused by policy (intake, mint, vet or at start), see the job's refusal.
 */
export type JobResult = 'waiting' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'refused' | (string & {});

/** The five steps a job's row shows; null for a step it has not reached (or skipped). */
export interface PhaseTimes {
  queued: Millis | null;
  minted: Millis | null;
  vmUp: Millis | null;
  started: Millis | null;
  /** When its VM ended, Hangar gave up, or GitHub completed it: the first of those. */
  finished: Millis | null;
}

export interface JobView {
  workflowJobId: number;
  runId: number;
  runAttempt: number;
  repo: string;
  owner: string;
  workflow: string | null;
  jobName: string;
  labels: string[];
  headBranch: string | null;
  /** The run's event (`push`, `pull_request`, `schedule`…), once the mint read the run; null before. */
  event: string | null;
  pool: string | null;
  /** The host that minted its runner. */
  host: string | null;
  /** Its VM's id (the latest try's). */
  vm: string | null;
  /** Hangar's phase (domain/job-phase.ts), who moved it last and why. */
  phase: JobPhase | null;
  phaseBy: string | null;
  phaseWhy: string | null;
  /** GitHub's state and conclusion, from its webhooks. */
  state: 'queued' | 'in_progress' | 'completed';
  conclusion: string | null;
  times: PhaseTimes;
  /** GitHub's own times for its states (webhook arrival). */
  github: { queuedAt: Millis | null; inProgressAt: Millis | null; completedAt: Millis | null };
  result: JobResult;
  /** Why reconcile last flagged it stuck (null: it never was, or it moved on). */
  stuckWhy: StuckWhy | null;
  /** VMs booted for it. */
  tries: number;
  createdAt: Millis;
  updatedAt: Millis;
}

export interface JobEventView {
  /** The events stream id (`<ms>-<seq>`). */
  id: string;
  at: Millis;
  type: 'decision' | 'move' | 'github' | 'note';
  /** Who: `intake`, `control`, `gate`, `vetter`, `sweep`, `host:<name>`, `reconcile`, `operator`. */
  by: string;
  /** The entry's own fields (see src/jobs/events.ts), e.g. from/to/why for a move. */
  fields: Record<string, string>;
}

export interface JobDetail extends JobView {
  headSha: string | null;
  visibility: string;
  /** The runner GitHub gave the job, and the one Hangar minted for it (they can differ). */
  runnerName: string | null;
  mintedRunner: string | null;
  /** Every phase it was in, with the last time it entered it. */
  phases: Partial<Record<JobPhase, Millis>>;
  /** Its VM's end, when one ended. */
  vmEnd: { outcome: string; exitCode: number | null; ms: number | null; reason: string | null } | null;
  /** The end of a failed VM's console (bounded, secrets redacted by the agent); null otherwise. */
  consoleTail: string | null;
  /** The VM's egress log as the host reported it (shape: src/net/egress-log.ts), when present. */
  egress: unknown;
  refusal: { where: RefusalWhere; why: string } | null;
  /** What the operator may do with it now (the buttons to show). */
  actions: { cancel: boolean; retry: boolean };
  /** The job's events still in the bounded stream, oldest first. */
  events: JobEventView[];
}

// ---------------------------------------------------------------------------------------------
// Refusals

/** Where a job was refused: by policy at intake, by the control at mint, by the run vetter (fork PR), or by the gate at job start. */
export type RefusalWhere = 'intake' | 'mint' | 'start' | 'vet';

export interface RefusalView {
  workflowJobId: number;
  repo: string;
  jobName: string;
  workflow: string | null;
  headBranch: string | null;
  where: RefusalWhere;
  /** The reason (`fork-pr`, `public-repo`, `repo-not-allowed`, `deploy-branch`, …). */
  why: string;
  at: Millis;
}

// ---------------------------------------------------------------------------------------------
// The nightly batch

export interface BatchView {
  /** The runs of the batch: runs started by `schedule` whose first job was queued within the batch window. */
  runIds: number[];
  /** Its jobs, in the order they were queued. */
  jobs: JobView[];
  total: number;
  /** Jobs finished (any result), and of them those that failed. */
  done: number;
  failed: number;
  running: number;
  waiting: number;
  firstQueuedAt: Millis | null;
  /** Null while any job is unfinished. */
  lastFinishedAt: Millis | null;
  /** First queued → last finished (so far, while it runs). */
  makespanMs: number | null;
  /** Busy slots / total slots over the batch, sampled at every VM up and VM end; oldest first. */
  utilisation: UtilisationPoint[];
}

export interface UtilisationPoint {
  at: Millis;
  busy: number;
  total: number;
}

// ---------------------------------------------------------------------------------------------
// Savings this month (domain/savings.ts)

export interface SavingsView {
  /** The calendar month (UTC) the figures cover, `YYYY-MM`. */
  month: string;
  plan: 'free' | 'pro' | 'team' | 'enterprise' | 'none';
  /** Dollars per minute GitHub would bill for a hosted runner (config `dashboard.savings.pricePerMinute`). */
  pricePerMinute: number;
  /** Minutes a month the plan includes. */
  includedMinutes: number;
  /** The postponed self-hosted platform charge, dollars per minute. */
  platformChargePerMinute: number;
  /** Jobs that ran on Hangar this month (GitHub had them in progress and completed them). */
  jobs: number;
  /** Their minutes, each job rounded up to a whole minute as GitHub bills. */
  minutes: number;
  /** minutes × price. */
  gross: number;
  /** The plan's included minutes used, in dollars: min(minutes, included) × price. */
  included: number;
  /** What GitHub would have billed: gross − included, never below 0. */
  saved: number;
  /** What the platform charge would cost on the same minutes: minutes × platformChargePerMinute. */
  platformCharge: number;
  /** saved − platformCharge (can be negative). */
  net: number;
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/session

export interface SessionView {
  /** Send as `x-csrf-token` with every POST of a cookie session. Empty for a bearer caller (it needs none). */
  csrf: string;
  via: 'cookie' | 'bearer';
  /** When the session ends (null for bearer). */
  expiresAt: Millis | null;
}

// ---------------------------------------------------------------------------------------------
// Actions

export interface HostActionResult {
  ok: true;
  host: string;
  /** The operator's flag after the action. */
  drained: boolean;
  message: string;
}

export interface JobActionResult {
  ok: true;
  workflowJobId: number;
  action: 'cancel' | 'retry';
  /**
   * What was done: `run-cancelled` (GitHub cancels runs, not jobs: the job's whole run was
   * cancelled; its jobs end through the normal webhooks), `requeued` (Hangar failed it and GitHub
   * still holds it queued: a new try is queued), `rerun` (GitHub finished it as failed: GitHub's
   * "re-run a job" was asked, a new workflow job follows).
   */
  how: 'run-cancelled' | 'requeued' | 'rerun';
  runId: number;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/stream (text/event-stream)
//
// On connect the first message is `overview` (the whole Overview, so the page needs no separate
// fetch and misses nothing between a fetch and the stream). After that, one message per changed
// view, `data:` being the view's JSON. Every message has an `id:` (a sequence number of this
// server process); the server ignores Last-Event-ID and starts again with `overview`, which is
// the simplest correct resume. A comment line (`: hb`) every ~15 s keeps proxies from closing it.
// The page applies them by key: job by workflowJobId, host by name, pool by name, refusal by
// workflowJobId (prepend), batch and savings replace the whole section.

export type StreamMessage =
  | { event: 'overview'; data: Overview }
  | { event: 'job'; data: JobView }
  | { event: 'host'; data: HostView }
  | { event: 'pool'; data: PoolView }
  | { event: 'refusal'; data: RefusalView }
  | { event: 'batch'; data: BatchView | null }
  | { event: 'savings'; data: SavingsView };

export type StreamEventName = StreamMessage['event'];
