import { z } from 'zod';
import type { ConfigProblem } from '../domain/errors.js';
import { checkPoolsAndHosts, filePath, isRecord, repoPattern, requiredFor, sharedShape, withChecks } from './schema.js';

/**
 * What `hangar control` reads: GitHub, the policy, its listeners, and the shared sections
 * (schema.ts). An agent host's file has none of the control's own sections: it has no GitHub
 * credentials.
 */

const github = z.strictObject(
  {
    apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.github.com'),
    appId: z.number().int().positive(),
    privateKeyFile: filePath,
    webhookSecretFile: filePath,
    /** During a secret rotation: the old secret, still accepted until removed. */
    previousWebhookSecretFile: filePath.optional(),
    /** Pause between GitHub writes (runner registration, deletion), as GitHub asks of integrations. */
    writeSpacingMs: z.number().int().min(0).max(10_000).default(1000),
    /**
     * One budget for every GitHub call of every control replica (Redis keeps it): a token bucket
     * of `burst` requests refilled at `requestsPerHour`. The default stays under GitHub's 5000
     * per hour per installation, leaving room for another tool on the same App.
     */
    rateBudget: z
      .strictObject({
        requestsPerHour: z.number().int().min(1).max(10_000_000).default(4000),
        burst: z.number().int().min(1).max(100_000).default(100),
      })
      .prefault({}),
  },
  requiredFor('hangar control'),
);

const policy = z.strictObject(
  {
    /** Repositories whose jobs Hangar may run. Everything else is refused. */
    repositories: z.array(repoPattern).min(1),
    /** Internal (enterprise-visible) repositories are refused unless this is true. */
    allowInternal: z.boolean().default(false),
    /**
     * Cancel refused runs before a runner can be handed their jobs: deploy jobs refused at
     * intake, fork runs, and refused jobs a new runner could take. The gate at job start
     * holds without it; this only refuses earlier.
     */
    cancelRefusedRuns: z.boolean().default(true),
    /**
     * Mints in one repository within this many seconds of its last sweep skip the sweep (its
     * listing costs GitHub requests on every mint of a batch). A refused job whose run started
     * in between is still refused by the gate when a runner takes it. 0: sweep at every mint.
     */
    sweepWindowSeconds: z.number().min(0).max(3600).default(20),
  },
  requiredFor('hangar control'),
);

/** `host:port` (IPv4, a name, or `[IPv6]`); port 0 picks a free one (tests). */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected "host:port", e.g. 127.0.0.1:8081')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port above 65535');

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

const control = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** GitHub caps payloads at 25 MB; a workflow_job event is a few kB. */
    bodyLimitBytes: z.number().int().min(1024).max(26_214_400).default(1_048_576),
    /** How long a delivery id is remembered for dedupe. GitHub redelivers for 3 days. */
    deliveryTtlHours: z.number().int().min(72).default(72),
    /**
     * Tries per job, and the first pause between them (it doubles): a transient failure (the
     * control unreachable, a VM whose runner never started a job) gets another go; a fatal one
     * fails at once.
     */
    /**
     * Names this Hangar's runners (a label `hangar-id-<id>` on each), so the reconciler deletes
     * only runners it made, never another installation's sharing the organization. Default:
     * derived from the App id and the Redis prefix (installationIdOf, below).
     */
    installationId: z.string().regex(/^[a-z0-9]{1,16}$/, 'lowercase letters and digits, at most 16').optional(),
    retries: z
      .strictObject({
        attempts: z.number().int().min(1).max(20).default(5),
        backoffSeconds: z.number().min(0.1).max(600).default(2),
      })
      .prefault({}),
    /**
     * The private listener: the agents' API (runners, the gate, reports, heartbeats), `/healthz`
     * and `/metrics`. `host`/`port` above are the public one, where GitHub posts webhooks and
     * nothing else is served. TLS with `tls`; without it only a loopback `listen` is allowed
     * (checkListeners): a host token must never cross a network in plain text.
     */
    private: z
      .strictObject({
        listen: listenAddress.default('127.0.0.1:8443'),
        /** The control's certificate (PEM, chain after it) and its key; agents pin it or its CA. */
        tls: z.strictObject({ certFile: filePath, keyFile: filePath }).optional(),
      })
      .prefault({}),
  })
  .prefault({});

/**
 * How verified jobs arrive. `push`: GitHub posts webhooks to the public listener. `pull`: the box
 * GitHub cannot reach (carrier-grade NAT, no inbound port) has no webhook receiver at all; the
 * reconciler reads the App's deliveries every `pullIntervalSeconds` and that is the intake.
 */
const intake = z
  .strictObject({
    mode: z.enum(['push', 'pull']).default('push'),
    pullIntervalSeconds: z.number().min(1).max(300).default(5),
  })
  .prefault({});

/**
 * The reconciler (src/reconcile/): one leader at a time across control replicas, a few loops
 * that converge Redis and GitHub on their own. Intervals are each loop's cadence.
 */
const reconcile = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** A dead leader's lock lapses after this; another replica leads within it. */
    leaderTtlSeconds: z.number().int().min(2).max(300).default(15),
    /** Lost deliveries (push mode; pull mode uses intake.pullIntervalSeconds). */
    deliveriesIntervalSeconds: z.number().min(1).max(3600).default(60),
    /** How far back the first pass looks for deliveries (GitHub keeps them 3 days). */
    deliveriesLookbackMinutes: z.number().int().min(1).max(4320).default(60),
    /** Queued runs no delivery announced. */
    queuedRunsIntervalSeconds: z.number().min(1).max(3600).default(120),
    /** Orphaned runners, idle VMs, stuck jobs, hosts gone quiet. */
    runnersIntervalSeconds: z.number().min(1).max(3600).default(60),
    /** A runner this young may still be booting its VM: never an orphan. */
    runnerGraceSeconds: z.number().int().min(1).max(3600).default(120),
    /** A VM whose runner has taken no job this long is destroyed, its runner deleted. */
    idleVmSeconds: z.number().int().min(5).max(86_400).default(600),
    /** A job queued this long is flagged stuck, with why. */
    stuckAfterSeconds: z.number().int().min(5).max(86_400).default(900),
  })
  .prefault({});

/** Minutes a month each GitHub plan includes for private repositories (Linux, 1×). */
export const PLAN_MINUTES = { free: 2000, pro: 3000, team: 3000, enterprise: 50_000, none: 0 } as const;

/**
 * The operator's view (src/dashboard/): its own listener (never the webhook port: the page and
 * the API must not be reachable where GitHub posts), behind the operator token in `tokenFile`.
 */
const dashboard = z
  .strictObject({
    enabled: z.boolean().default(true),
    listen: listenAddress.default('127.0.0.1:8081'),
    /** The operator token (at least 16 characters; `hangar host token FILE` makes one). Required while enabled. */
    tokenFile: filePath.optional(),
    /** How long a login lasts. */
    sessionHours: z.number().min(0.1).max(24 * 30).default(12),
    savings: z
      .strictObject({
        /** What GitHub bills a hosted runner minute: Linux 2-core, $0.006 since 2026-01-01. */
        pricePerMinute: z.number().min(0).max(10).default(0.006),
        plan: z.enum(['free', 'pro', 'team', 'enterprise', 'none']).default('free'),
        /** Overrides the plan's included minutes (PLAN_MINUTES). */
        includedMinutes: z.number().int().min(0).optional(),
        /** The self-hosted platform charge GitHub announced and postponed, per minute. */
        platformChargePerMinute: z.number().min(0).max(10).default(0.002),
      })
      .prefault({}),
  })
  .prefault({});

const controlShape = { github, policy, control, intake, reconcile, dashboard, ...sharedShape };

/** The control's own sections: a file with any of them is (also) a control's. */
export const CONTROL_ONLY_SECTIONS = ['github', 'policy', 'control', 'intake', 'reconcile', 'dashboard'] as const;
export const CONTROL_SECTIONS = Object.keys(controlShape);

/** The dashboard's token while it is enabled, and its listener apart from the webhooks' port. */
export function checkDashboard(input: unknown): ConfigProblem[] {
  if (!isRecord(input)) return [];
  const d = isRecord(input.dashboard) ? input.dashboard : {};
  if (d.enabled === false) return [];
  const problems: ConfigProblem[] = [];
  if (d.tokenFile === undefined) {
    problems.push({ path: 'dashboard.tokenFile', message: 'required while the dashboard is enabled (a file with the operator token; `hangar host token FILE` makes one), or set dashboard.enabled: false' });
  }
  const listen = typeof d.listen === 'string' ? d.listen : '127.0.0.1:8081';
  const webhookPort = isRecord(input.control) && typeof input.control.port === 'number' ? input.control.port : 8080;
  if (listenAddress.safeParse(listen).success) {
    const { port } = splitListen(listen);
    if (port !== 0 && port === webhookPort) problems.push({ path: 'dashboard.listen', message: `port ${port} is the webhook listener's (control.port): the dashboard needs a listener of its own` });
  }
  return problems;
}

/** 127.0.0.0/8, ::1 or localhost: an address no other machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The private listener: a port of its own (not the webhooks', not the dashboard's), and TLS
 * unless it listens on loopback. Plain HTTP on loopback is the one-box case (the agent beside
 * the control); anything another machine can reach carries host tokens, so it gets TLS or the
 * config is refused: there is no flag to opt out (a TLS-terminating proxy can sit on loopback).
 */
export function checkListeners(input: unknown): ConfigProblem[] {
  if (!isRecord(input)) return [];
  const c = isRecord(input.control) ? input.control : {};
  const p = isRecord(c.private) ? c.private : {};
  const listen = typeof p.listen === 'string' ? p.listen : '127.0.0.1:8443';
  if (!listenAddress.safeParse(listen).success) return [];
  const { host, port } = splitListen(listen);
  const problems: ConfigProblem[] = [];
  const push = !(isRecord(input.intake) && input.intake.mode === 'pull');
  const webhookPort = typeof c.port === 'number' ? c.port : 8080;
  if (port !== 0 && push && port === webhookPort) {
    problems.push({ path: 'control.private.listen', message: `port ${port} is the public webhook listener's (control.port): the agents' API needs a listener of its own` });
  }
  const d = isRecord(input.dashboard) ? input.dashboard : {};
  const dashListen = typeof d.listen === 'string' ? d.listen : '127.0.0.1:8081';
  if (port !== 0 && d.enabled !== false && listenAddress.safeParse(dashListen).success && splitListen(dashListen).port === port) {
    problems.push({ path: 'control.private.listen', message: `port ${port} is the dashboard's (dashboard.listen): the agents' API needs a listener of its own` });
  }
  if (p.tls === undefined && !isLoopbackHost(host)) {
    problems.push({
      path: 'control.private.tls',
      message: `required: control.private.listen ${listen} is not a loopback address, and host tokens would cross the network in plain text; set control.private.tls {certFile, keyFile}, or listen on 127.0.0.1`,
    });
  }
  return problems;
}

export const controlSchema = withChecks(z.strictObject(controlShape), checkPoolsAndHosts, checkDashboard, checkListeners);

/** The config `hangar control` runs with (requireControl, load.ts). */
export type ControlConfig = z.output<typeof controlSchema>;
