import { z } from 'zod';
import type { ConfigProblem } from '../domain/errors.js';
import { closest } from './did-you-mean.js';
import { checkAllowEntry } from './egress.js';

/**
 * What both processes read from `hangar.yaml`: the pools, the hosts, Redis and logging. The
 * control's sections are in control-schema.ts, the agent's in agent-schema.ts; one file may
 * hold both. Unknown keys are errors (a typo must not silently disable a setting). Secrets are
 * file paths, never values.
 */

export const poolName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, at most 32, not starting with a dash');

/** `owner/repo`, or `owner/*` for every repository of an owner. Matched case-insensitively. */
export const repoPattern = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+\/(\*|[A-Za-z0-9_.-]+)$/, 'expected "owner/repo" or "owner/*"');

const label = z.string().min(1).max(100).regex(/^[^,\s]+$/, 'a label has no spaces or commas');
export const filePath = z.string().min(1, 'expected a file path');
export const hostName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits and dashes, at most 31');

/** A certificate's sha256 (DER), as openssl prints it or bare: lowercase hex without colons. */
export const sha256Pin = z
  .string()
  .transform((s) => s.replace(/:/g, '').toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'expected the sha256 of the certificate: 64 hex digits (colons allowed)'));

/** A url fit for a message: its password (if any) replaced. */
const redactUrl = (url: string) => url.replace(/^(\w+:\/\/[^:@/]*):[^@/]*@/, '$1:***@');

/** A message from a pure check, as a zod issue on the value it looked at. */
export const checked = (check: (s: string) => string | undefined) =>
  z.string().superRefine((s, ctx) => {
    const message = check(s);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

/** A section a process cannot run without: its absence is said plainly, not as a type error. */
export const requiredFor = (process: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? `required for ${process}` : undefined),
});

const deploy = z.strictObject({
  /** Repositories that may run jobs in this pool. */
  repositories: z.array(repoPattern).min(1),
  /** Branches (exact names, or a prefix ending in `*`) that may run jobs in this pool. */
  branches: z.array(z.string().min(1)).min(1),
});

/**
 * Where a pool's guests may connect. `internet`: any public address (never the LAN, the host or
 * the metadata address). `allowlist`: only what the listed names resolve to, through the
 * host's DNS forwarder; entries are domains, `*.` wildcards or presets (egress.ts).
 */
const egress = z
  .discriminatedUnion('mode', [
    z.strictObject({ mode: z.literal('internet') }),
    z.strictObject({
      mode: z.literal('allowlist'),
      allow: z.array(checked(checkAllowEntry)).min(1, 'an empty allowlist lets nothing out, not even GitHub: list names or presets, or use mode internet'),
    }),
  ])
  .default({ mode: 'internet' });

const pool = z.strictObject({
  name: poolName,
  /** The runner's labels; a job goes here when its `runs-on` labels are a subset of these. */
  labels: z
    .array(label)
    .min(1)
    .refine((ls) => ls.some((l) => l.toLowerCase() === 'self-hosted'), 'must include "self-hosted"'),
  /** Runner group the JIT runners join (1 is the default group). */
  runnerGroupId: z.number().int().positive().default(1),
  /** Register runners on the repository (default) or on the organization. */
  scope: z.enum(['repo', 'org']).default('repo'),
  /** Present on a deploy pool: only these repositories and branches may run here. */
  deploy: deploy.optional(),
  egress,
});

/**
 * A host that runs jobs, described once: the control lets it mint runners only for its pools
 * (deploy pools only for a deploy host), and its agent (`agent.host` names the entry) serves them.
 */
const host = z.strictObject({
  name: hostName,
  role: z.enum(['build', 'deploy']),
  /** Pools this host takes jobs from. */
  pools: z.array(poolName).min(1),
  /** sha256 (hex) of the host's token; the control never keeps the token itself. `hangar host token` makes one. */
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256 of the token)'),
});

/** The sections both processes read. */
export const sharedShape = {
  redis: z
    .strictObject({
      url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss://').default('redis://127.0.0.1:6379'),
      /** Key prefix, so several Hangars (or tests) can share one Redis. */
      prefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('hangar'),
      /**
       * The password of the url's user, from a file (a host's own ACL user: `hangar host add`
       * writes it; the control's own user too), so it is in no YAML and no process list. Every
       * connection of the control, the agent and the CLI takes it.
       */
      passwordFile: filePath.optional(),
      /**
       * How a rediss:// url's certificate is trusted (Redis on another box): by `caFile`, by
       * `certSha256`, or both. With neither, by this machine's system CAs (a public CA's
       * certificate). Only with rediss://: on redis:// there is no certificate to check.
       */
      tls: z
        .strictObject({
          /** PEM: the CA that signed Redis's certificate, or that (self-signed) certificate itself. */
          caFile: filePath.optional(),
          /** The sha256 of Redis's certificate (DER; `openssl x509 -noout -fingerprint -sha256`), hex, colons allowed. */
          certSha256: sha256Pin.optional(),
          /** The name Redis's certificate carries, when it is not the host in the url (e.g. the url has an IP). */
          serverName: z.string().regex(/^[A-Za-z0-9.-]+$/, 'expected a DNS name').optional(),
        })
        .optional(),
    })
    .superRefine(
      (r, ctx) => {
        if (isRecord(r) && r.tls !== undefined && typeof r.url === 'string' && !r.url.startsWith('rediss://')) {
          ctx.addIssue({ code: 'custom', path: ['tls'], message: `redis.url ${redactUrl(r.url)} is plain redis://, where a certificate cannot be checked: use rediss:// or remove redis.tls` });
        }
      },
      { when: () => true },
    )
    .prefault({}),
  pools: z.array(pool).min(1),
  /** Hosts that run jobs: the control lets each mint runners; an agent finds its own entry here. */
  hosts: z.array(host).default([]),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
};

/** Adds a pure check's problems to a schema; it runs even when other keys are invalid (zod would skip it), so one pass names every problem. */
export function withChecks<T extends z.ZodType>(schema: T, ...checks: ((input: unknown) => ConfigProblem[])[]): T {
  return schema.superRefine(
    (input, ctx) => {
      for (const check of checks) {
        for (const p of check(input)) ctx.addIssue({ code: 'custom', path: toPath(p.path), message: p.message });
      }
    },
    { when: () => true },
  );
}

export const toPath = (dotted: string) => (dotted === '' ? [] : dotted.split('.').map((k) => (/^\d+$/.test(k) ? Number(k) : k)));

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Each entry of `list` that is a mapping, with its index; the schema reports the others. */
export const records = (list: unknown): [Record<string, unknown>, number][] =>
  Array.isArray(list) ? list.flatMap((v, i) => (isRecord(v) ? [[v, i] as [Record<string, unknown>, number]] : [])) : [];

/** The hosts[] entry named `name`, as written (possibly invalid elsewhere). */
export function hostEntry(input: unknown, name: unknown): [Record<string, unknown>, number] | undefined {
  if (!isRecord(input) || typeof name !== 'string') return undefined;
  return records(input.hosts).find(([h]) => h.name === name);
}

/**
 * References between pools and hosts, read defensively: names are unique, the pools a host
 * names exist, and deploy pools are served only by deploy hosts.
 */
export function checkPoolsAndHosts(input: unknown): ConfigProblem[] {
  if (!isRecord(input)) return [];
  const problems: ConfigProblem[] = [];
  const pools = new Map<string, { p: Record<string, unknown>; i: number }>();
  const hosts = new Map<string, number>();
  for (const [p, i] of records(input.pools)) {
    if (typeof p.name !== 'string') continue;
    const first = pools.get(p.name);
    if (first) problems.push({ path: `pools.${i}.name`, message: `duplicate pool name "${p.name}" (also pools.${first.i})` });
    else pools.set(p.name, { p, i });
  }
  for (const [h, i] of records(input.hosts)) {
    if (typeof h.name === 'string') {
      const first = hosts.get(h.name);
      if (first !== undefined) problems.push({ path: `hosts.${i}.name`, message: `duplicate host name "${h.name}" (also hosts.${first})` });
      else hosts.set(h.name, i);
    }
    if (!Array.isArray(h.pools)) continue;
    h.pools.forEach((name: unknown, j) => {
      if (typeof name !== 'string') return;
      const path = `hosts.${i}.pools.${j}`;
      const p = pools.get(name)?.p;
      if (!p) {
        const near = closest(name, [...pools.keys()]);
        problems.push({ path, message: `no pool named "${name}"${near ? ` (did you mean "${near}"?)` : ''}` });
      } else if (p.deploy !== undefined && h.role !== 'deploy') {
        problems.push({ path, message: `"${name}" is a deploy pool: only a host with role deploy may serve it` });
      }
    });
  }
  return problems;
}

export type PoolConfig = z.output<typeof pool>;
export type HostConfig = z.output<typeof host>;
export type { ControlConfig } from './control-schema.js';
export type { AgentConfig, AgentSideConfig } from './agent-schema.js';
export type { Config } from './load.js';
