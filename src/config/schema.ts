import { z } from 'zod';
import { checkCapsFit } from '../domain/caps-fit.js';
import { parseCidr } from '../domain/cidr.js';
import { checkAllowEntry } from './egress.js';
import { checkAgentNetwork, parseDnsUpstream } from './network-checks.js';

/**
 * The one schema for `hangar.yaml`. Unknown keys are errors (a typo must not silently
 * disable a setting). Secrets are file paths, never values.
 */

const poolName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, at most 32, not starting with a dash');

/** `owner/repo`, or `owner/*` for every repository of an owner. Matched case-insensitively. */
export const repoPattern = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+\/(\*|[A-Za-z0-9_.-]+)$/, 'expected "owner/repo" or "owner/*"');

const label = z.string().min(1).max(100).regex(/^[^,\s]+$/, 'a label has no spaces or commas');
const filePath = z.string().min(1, 'expected a file path');

const deploy = z.strictObject({
  /** Repositories that may run jobs in this pool. */
  repositories: z.array(repoPattern).min(1),
  /** Branches (exact names, or a prefix ending in `*`) that may run jobs in this pool. */
  branches: z.array(z.string().min(1)).min(1),
});

/** A message from a pure check, as a zod issue on the value it looked at. */
const checked = (check: (s: string) => string | undefined) =>
  z.string().superRefine((s, ctx) => {
    const message = check(s);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

const cidr = checked((s) => {
  const p = parseCidr(s);
  return p.ok ? undefined : p.message;
});
const dnsUpstream = checked((s) => {
  const p = parseDnsUpstream(s);
  return p.ok ? undefined : p.message;
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

const hostName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits and dashes, at most 31');

/** A host the control lets mint runners: only for its pools, and deploy pools only for a deploy host. */
const host = z.strictObject({
  name: hostName,
  role: z.enum(['build', 'deploy']),
  pools: z.array(poolName).min(1),
  /** sha256 (hex) of the host's token; the control never keeps the token itself. `hangar host token` makes one. */
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256 of the token)'),
});

/** This machine as a host that runs jobs (`hangar agent`). */
const agent = z.strictObject({
  host: hostName,
  role: z.enum(['build', 'deploy']),
  /** Pools this host takes jobs from. */
  pools: z.array(poolName).min(1),
  /** VMs at once. */
  slots: z.number().int().min(1).max(64),
  /** The control's URL, for JIT runner configs. */
  controlUrl: z.url({ protocol: /^https?$/ }),
  /** This host's token (a file; the control keeps only its sha256). */
  tokenFile: filePath,
  /** `HOST:PORT` for the agent's `GET /metrics` (the isolation table's counters); loopback by default. */
  metricsListen: z.string().regex(/^[0-9.]+:\d{1,5}$/, 'expected IPv4:port, e.g. 127.0.0.1:9169').default('127.0.0.1:9169'),
  /** VM state (overlays, guest files, console logs); cleaned at start after a crash. */
  stateDir: z.string().min(1).default('/var/lib/hangar'),
  vm: z.strictObject({
    driver: z.enum(['qemu-microvm']).default('qemu-microvm'),
    /** `auto`: KVM only if a probe boot succeeds, else TCG (slow, but works without nested virtualisation). */
    accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
    /** A folder made by `hangar image build`: vmlinux plus initramfs.cpio or rootfs. */
    image: filePath,
    memoryMiB: z.number().int().min(128).default(2048),
    vcpus: z.number().int().min(1).max(64).default(2),
    /** Wall-clock cap per job; the VM is killed past it and the job reported failed. */
    timeoutMinutes: z.number().min(0.05).max(72 * 60).default(360),
    consoleLimitBytes: z.number().int().min(4096).default(1_048_576),
    /** Unprivileged user QEMU drops to (`-runas`). */
    runAs: z.string().min(1).optional(),
  }),
  caps: z.strictObject({
    /** cgroup flavour: `auto` uses v2 when it has the cpu and memory controllers, else v1. */
    mode: z.enum(['auto', 'v1', 'v2']).default('auto'),
    /** CPU for all VMs together, in percent of one core (150 = 1.5 cores). */
    cpuQuotaPercent: z.number().int().min(10),
    /** Memory for all VMs together (MemoryMax of hangar-runners.slice). */
    memoryMaxMiB: z.number().int().min(256),
    tasksMax: z.number().int().min(64).default(4096),
    /** Host memory a VM takes beyond its guest RAM (QEMU itself). */
    overheadMiB: z.number().int().min(0).default(256),
  }),
  network: z
    .strictObject({
      /** Private range the VMs' /30 links are cut from. */
      range: cidr.default('10.213.0.0/16'),
      /** The metadata endpoint's port on each VM's gateway address (the job-start gate asks it). */
      metadataPort: z.number().int().min(1).max(65535).default(8169),
      /**
       * Guest isolation: the nft table (outbound only, no LAN, no host but the gateway's
       * metadata endpoint and DNS forwarder), the DNS forwarder, the egress log. `false` leaves
       * guests with masquerade only: for benchmarks of other things, never for jobs you did not
       * write; the agent warns at start.
       */
      isolation: z.boolean().default(true),
      /**
       * The guests' resolver is a forwarder on their gateway that asks only these servers; DNS to
       * anywhere else is dropped. `IP` or `IP:port`, IPv4. The house Pi-hole may be one: that
       * address and port exactly are let through, nothing else of the LAN.
       */
      dns: z.strictObject({ upstreams: z.array(dnsUpstream).min(1).default(['1.1.1.1', '9.9.9.9']) }).prefault({}),
      /** Deploy host only: private networks its guests may reach (the isolation rules refuse every other private range). */
      productionCidrs: z.array(cidr).default([]),
    })
    .prefault({}),
});

export const configSchema = z
  .strictObject({
    /** Needed by `hangar control` only: an agent host has no GitHub credentials. */
    github: z
      .strictObject({
      apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.github.com'),
      appId: z.number().int().positive(),
      privateKeyFile: filePath,
      webhookSecretFile: filePath,
      /** During a secret rotation: the old secret, still accepted until removed. */
      previousWebhookSecretFile: filePath.optional(),
        /** Pause between GitHub writes (runner registration, deletion), as GitHub asks of integrations. */
        writeSpacingMs: z.number().int().min(0).max(10_000).default(1000),
      })
      .optional(),
    redis: z
      .strictObject({
        url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss://').default('redis://127.0.0.1:6379'),
        /** Key prefix, so several Hangars (or tests) can share one Redis. */
        prefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('hangar'),
      })
      .prefault({}),
    control: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** GitHub caps payloads at 25 MB; a workflow_job event is a few kB. */
        bodyLimitBytes: z.number().int().min(1024).max(26_214_400).default(1_048_576),
        /** How long a delivery id is remembered for dedupe. GitHub redelivers for 3 days. */
        deliveryTtlHours: z.number().int().min(72).default(72),
      })
      .prefault({}),
    /** Needed by `hangar control` only. */
    policy: z
      .strictObject({
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
      })
      .optional(),
    pools: z.array(pool).min(1),
    /** Hosts allowed to mint runners (control side). */
    hosts: z.array(host).default([]),
    /** This machine's agent (agent side). */
    agent: agent.optional(),
    log: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    crossCheck(cfg, ctx);
    const seen = new Map<string, number>();
    cfg.pools.forEach((p, i) => {
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['pools', i, 'name'], message: `duplicate pool name "${p.name}" (also pools.${first})` });
      } else {
        seen.set(p.name, i);
      }
    });
  })
  // Runs even when other keys are invalid (zod skips refinements then), so a file with a bad
  // pool still hears about its production networks; checkAgentNetwork skips what did not parse.
  .superRefine(
    (cfg, ctx) => {
      const agent = typeof cfg === 'object' && cfg !== null ? cfg.agent : undefined;
      for (const p of checkAgentNetwork(agent)) ctx.addIssue({ code: 'custom', path: toPath(p.path), message: p.message });
    },
    { when: () => true },
  );

const toPath = (dotted: string) => dotted.split('.').map((k) => (/^\d+$/.test(k) ? Number(k) : k));

type Parsed = z.output<typeof configSchema>;

/** References between sections: pools named by hosts and the agent exist; deploy pools only on deploy hosts. */
function crossCheck(cfg: Parsed, ctx: z.RefinementCtx): void {
  // The control's sections come together: one without the other is a half-written control.
  if (cfg.github && !cfg.policy) ctx.addIssue({ code: 'custom', path: ['policy'], message: 'required with github (hangar control)' });
  if (cfg.policy && !cfg.github) ctx.addIssue({ code: 'custom', path: ['github'], message: 'required with policy (hangar control)' });
  const pools = new Map(cfg.pools.map((p) => [p.name, p]));
  const checkPools = (names: string[], role: 'build' | 'deploy', path: (string | number)[]) => {
    names.forEach((name, i) => {
      const p = pools.get(name);
      if (!p) ctx.addIssue({ code: 'custom', path: [...path, i], message: `no pool named "${name}"` });
      else if (p.deploy && role !== 'deploy') {
        ctx.addIssue({ code: 'custom', path: [...path, i], message: `"${name}" is a deploy pool: only a host with role deploy may serve it` });
      }
    });
  };
  cfg.hosts.forEach((h, i) => checkPools(h.pools, h.role, ['hosts', i, 'pools']));
  if (cfg.agent) {
    const a = cfg.agent;
    checkPools(a.pools, a.role, ['agent', 'pools']);
    const fit = checkCapsFit({ slots: a.slots, vmMemoryMiB: a.vm.memoryMiB, overheadMiB: a.caps.overheadMiB, memoryMaxBytes: a.caps.memoryMaxMiB * 1024 * 1024 });
    for (const p of fit) ctx.addIssue({ code: 'custom', path: ['agent', ...p.path.split('.')], message: p.message });
  }
}

export type Config = Parsed;
export type PoolConfig = Config['pools'][number];
export type AgentConfig = NonNullable<Config['agent']>;
export type HostConfig = Config['hosts'][number];
/** A config with what `hangar control` needs; see requireControl (load.ts). */
export type ControlConfig = Config & { github: NonNullable<Config['github']>; policy: NonNullable<Config['policy']> };
