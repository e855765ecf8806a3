import { z } from 'zod';
import { parseCidr } from '../domain/cidr.js';
import { checkCapsFit } from '../domain/caps-fit.js';
import type { ConfigProblem } from '../domain/errors.js';
import { checkAgentNetwork, parseDnsUpstream } from './network-checks.js';
import { checked, checkPoolsAndHosts, filePath, hostEntry, hostName, isRecord, requiredFor, sharedShape, withChecks } from './schema.js';

/**
 * What `hangar agent` reads: this machine's `agent` section and the shared sections
 * (schema.ts). The host is described once, in `hosts[]`: `agent.host` names its entry, whose
 * role and pools the agent serves (the control reads the same entry to let it mint runners).
 */

const cidr = checked((s) => {
  const p = parseCidr(s);
  return p.ok ? undefined : p.message;
});
const dnsUpstream = checked((s) => {
  const p = parseDnsUpstream(s);
  return p.ok ? undefined : p.message;
});

const vm = z.strictObject({
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
});

const caps = z.strictObject({
  /** cgroup flavour: `auto` uses v2 when it has the cpu and memory controllers, else v1. */
  mode: z.enum(['auto', 'v1', 'v2']).default('auto'),
  /** CPU for all VMs together, in percent of one core (150 = 1.5 cores). */
  cpuQuotaPercent: z.number().int().min(10),
  /**
   * The runner slice every VM's cgroup is made under. The agent's start-up removes the VM
   * cgroups it finds under this slice (leftovers of its own earlier run) and nothing outside
   * it. Keep the default with the shipped units; a second agent on one machine (a test's
   * fleet) takes a slice of its own.
   */
  slice: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*\.slice$/, 'a systemd slice name: letters, digits, - and _, ending in .slice').default('hangar-runners.slice'),
  /** Memory for all VMs together (MemoryMax of the slice). */
  memoryMaxMiB: z.number().int().min(256),
  tasksMax: z.number().int().min(64).default(4096),
  /** Host memory a VM takes beyond its guest RAM (QEMU itself). */
  overheadMiB: z.number().int().min(0).default(256),
});

const network = z
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
  .prefault({});

/** This machine as a host that runs jobs (`hangar agent`). */
const agent = z.strictObject(
  {
    /** This host's entry in `hosts[]`: its role and pools are there. */
    host: hostName,
    /** VMs at once. */
    slots: z.number().int().min(1).max(64),
    /**
     * The control's private listener (the agents' API): `https://` unless the control is on
     * this machine's loopback. Its certificate is checked against `controlCaFile` and/or
     * `controlCertSha256`, or the system's CAs when neither is set.
     */
    controlUrl: z.url({ protocol: /^https?$/ }),
    /** PEM: the CA that signed the control's certificate, or that (self-signed) certificate itself. */
    controlCaFile: filePath.optional(),
    /** The sha256 of the control's certificate (DER; `openssl x509 -noout -fingerprint -sha256`), hex, colons allowed. */
    controlCertSha256: z
      .string()
      .transform((s) => s.replace(/:/g, '').toLowerCase())
      .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'expected the sha256 of the certificate: 64 hex digits (colons allowed)'))
      .optional(),
    /** This host's token (a file; the control keeps only its sha256). */
    tokenFile: filePath,
    /** `HOST:PORT` for the agent's `GET /metrics` (the isolation table's counters); loopback by default. */
    metricsListen: z.string().regex(/^[0-9.]+:\d{1,5}$/, 'expected IPv4:port, e.g. 127.0.0.1:9169').default('127.0.0.1:9169'),
    /**
     * How long a starting job waits for the control's answer at the job-start gate (a control
     * restarting, a Redis failing over, the link to a control on another box down) before it
     * fails closed. The guest's hook is told it (GATE in the VM's net file) and waits 15 s more, at least 30 s.
     * A build box across a link: longer than the link outages it should ride out (the seed's
     * sidekick: 120).
     */
    gateTimeoutSeconds: z.number().min(1).max(900).default(15),
    /**
     * How long a stopping agent (SIGTERM: `systemctl stop`) waits for the jobs it runs before it
     * stops their VMs: a job cut off goes back to its queue (or fails loudly on its last attempt).
     * The agent unit's TimeoutStopSec is this plus a margin (`hangar units render`). 0: stop them at once.
     */
    drainTimeoutSeconds: z.number().int().min(0).max(24 * 3600).default(600),
    /** VM state (overlays, guest files, console logs); cleaned at start after a crash. */
    stateDir: z.string().min(1).default('/var/lib/hangar'),
    vm,
    caps,
    network,
  },
  requiredFor('hangar agent'),
);

const agentShape = { agent, ...sharedShape };
export const AGENT_SECTIONS = Object.keys(agentShape);

/** Keys the agent section once had, and where they are now (told to a file that still has them). */
export function movedAgentKey(path: string, input: unknown): string | undefined {
  if (path !== 'agent.role' && path !== 'agent.pools') return undefined;
  const name = isRecord(input) && isRecord(input.agent) ? input.agent.host : undefined;
  const entry = hostEntry(input, name);
  if (entry) return `moved to hosts[] entry "${String(name)}" (hosts.${entry[1]}): a host is described once`;
  return `moved to hosts[] entry ${typeof name === 'string' ? `"${name}"` : 'named as agent.host'}: add {name, role, pools, tokenSha256} to hosts`;
}

/** agent.host names a hosts[] entry; the agent's network and caps fit that host. Reads what parsed, skips the rest. */
function checkAgent(input: unknown): ConfigProblem[] {
  const a = isRecord(input) && isRecord(input.agent) ? input.agent : undefined;
  if (!a) return [];
  const entry = hostEntry(input, a.host);
  const problems: ConfigProblem[] = [];
  if (typeof a.host === 'string' && !entry) {
    problems.push({ path: 'agent.host', message: `no hosts[] entry named "${a.host}"; add {name: ${a.host}, role, pools, tokenSha256} to hosts` });
  }
  problems.push(...checkAgentNetwork(a, entry?.[0].role));
  if (typeof a.controlUrl === 'string' && a.controlUrl.startsWith('http:')) {
    for (const key of ['controlCaFile', 'controlCertSha256'] as const) {
      if (a[key] !== undefined) problems.push({ path: `agent.${key}`, message: `agent.controlUrl ${a.controlUrl} is plain http://, where a certificate cannot be checked: use https://` });
    }
  }
  const vmSection = isRecord(a.vm) ? a.vm : {};
  const capsSection = isRecord(a.caps) ? a.caps : {};
  const num = (v: unknown, fallback?: number) => (typeof v === 'number' ? v : v === undefined ? fallback : undefined);
  const [slots, memoryMiB, overheadMiB, memoryMaxMiB] = [num(a.slots), num(vmSection.memoryMiB, 2048), num(capsSection.overheadMiB, 256), num(capsSection.memoryMaxMiB)];
  if (slots !== undefined && memoryMiB !== undefined && overheadMiB !== undefined && memoryMaxMiB !== undefined) {
    const fit = checkCapsFit({ slots, vmMemoryMiB: memoryMiB, overheadMiB, memoryMaxBytes: memoryMaxMiB * 1024 * 1024 });
    for (const p of fit) problems.push({ path: `agent.${p.path}`, message: p.message });
  }
  return problems;
}

export const agentSchema = withChecks(z.strictObject(agentShape), checkPoolsAndHosts, checkAgent).transform((cfg) => {
  // The checks above made sure the entry is there.
  const entry = cfg.hosts.find((h) => h.name === cfg.agent.host)!;
  return { ...cfg, agent: { ...cfg.agent, role: entry.role, pools: entry.pools } };
});

/** The config `hangar agent` runs with (requireAgent, load.ts). */
export type AgentSideConfig = z.output<typeof agentSchema>;
/** This host's agent: its section, with the role and pools of its hosts[] entry. */
export type AgentConfig = AgentSideConfig['agent'];
