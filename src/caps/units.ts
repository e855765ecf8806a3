/**
 * Hangar's systemd units, rendered from settings so the slice's quotas follow the config.
 * The defaults are committed under units/ and test/units/units.test.ts keeps the two from
 * drifting; after changing this file, regenerate them with
 * `HANGAR_WRITE_UNITS=1 npx vitest run --config test/vitest.config.ts test/units`.
 */
import { CONTROL_NODE_FLAGS } from '../config/runtime.js';
import { renderUnit, type UnitEntry, type UnitFile } from './systemd-unit.js';

export interface SliceQuotas {
  /** Percent of one core for all VMs and the agent together (150 = 1.5 cores). */
  cpuQuotaPercent: number;
  memoryMaxBytes: number;
  tasksMax: number;
}

/** One `LoadCredential=NAME:<credentialsDir>/FILE` line: the service reads it as $CREDENTIALS_DIRECTORY/NAME. */
export interface UnitCredential {
  name: string;
  /** The file under credentialsDir (default: the name). */
  file?: string;
}

export interface UnitSettings {
  /** The command that runs hangar: `/usr/bin/hangar`, or `/usr/bin/node /opt/hangar/dist/main/cli.js`. */
  hangarBin: string;
  configFile: string;
  /** Where the operator keeps secret files; systemd copies them into the service's credentials. */
  credentialsDir: string;
  /** What each service is handed with LoadCredential= (the config's `credential:NAME` paths). */
  credentials: { control: readonly UnitCredential[]; agent: readonly UnitCredential[] };
  /** agent.drainTimeoutSeconds: the agent's TimeoutStopSec is this plus DRAIN_STOP_MARGIN_SECONDS. */
  drainTimeoutSeconds: number;
  slice: SliceQuotas;
}

/** After the drain bound the agent stops its VMs (SIGTERM, SIGKILL after a grace), reports them and tears its network down. */
export const DRAIN_STOP_MARGIN_SECONDS = 60;

const MiB = 1024 * 1024;

/** A mini PC's share for CI: 1.5 cores, two 2 GiB VMs with their QEMU overhead. */
export const DEFAULT_UNIT_SETTINGS: UnitSettings = {
  hangarBin: '/usr/bin/hangar',
  configFile: '/etc/hangar/hangar.yaml',
  credentialsDir: '/etc/hangar/credentials',
  credentials: {
    control: [{ name: 'github-app-key', file: 'github-app-key.pem' }, { name: 'webhook-secret' }],
    agent: [{ name: 'host-token' }],
  },
  drainTimeoutSeconds: 600,
  slice: { cpuQuotaPercent: 150, memoryMaxBytes: 4608 * MiB, tasksMax: 4096 },
};

export const SLICE_UNIT = 'hangar-runners.slice';
export const UNIT_NAMES = ['hangar-control.service', 'hangar-agent.service', SLICE_UNIT] as const;
export type UnitName = (typeof UNIT_NAMES)[number];

/** Slice quotas from the agent's `caps` config section. */
export function sliceQuotasFromConfig(caps: { cpuQuotaPercent: number; memoryMaxMiB: number; tasksMax: number }): SliceQuotas {
  return { cpuQuotaPercent: caps.cpuQuotaPercent, memoryMaxBytes: caps.memoryMaxMiB * MiB, tasksMax: caps.tasksMax };
}

/** systemd reads K/M/G with base 1024; the shortest exact form keeps the file readable. */
export function systemdBytes(bytes: number): string {
  for (const [suffix, size] of [['G', 1024 ** 3], ['M', MiB], ['K', 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

/** `[key, value]` or `[key, value, why]`: a why becomes the comment above the entry. */
type Row = [string, string] | [string, string, string];
const rows = (list: Row[]): UnitEntry[] => list.map(([key, value, why]) => (why ? { key, value, comments: [why] } : { key, value }));

/**
 * LoadCredential= lines; the first carries the why. Empty: a comment only, so the unit still
 * says where secrets would come from.
 */
function credentialRows(s: UnitSettings, list: readonly UnitCredential[], unitName: string): Row[] {
  const why = `Secrets: a config path "credential:NAME" reads $CREDENTIALS_DIRECTORY/NAME (/run/credentials/${unitName}/NAME), copied by systemd from ${s.credentialsDir}/ (root-owned, 0600).`;
  return list.map((c, i): Row => (i === 0 ? ['LoadCredential', `${c.name}:${s.credentialsDir}/${c.file ?? c.name}`, why] : ['LoadCredential', `${c.name}:${s.credentialsDir}/${c.file ?? c.name}`]));
}

const HEADER = (what: string) => [`${what}`, 'Rendered by src/caps/units.ts; test/units/units.test.ts keeps this file and the code in step.'];

function sliceUnit(q: SliceQuotas): UnitFile {
  return {
    comments: HEADER('The runner slice: every job VM (and the agent) lives here, so CI can never starve what else the host serves.'),
    sections: [
      { name: 'Unit', entries: rows([['Description', 'Hangar runner VMs (capped)'], ['Before', 'slices.target']]) },
      {
        name: 'Slice',
        entries: rows([
          ['CPUAccounting', 'yes'],
          ['CPUQuota', `${q.cpuQuotaPercent}%`],
          ['MemoryAccounting', 'yes'],
          ['MemoryMax', systemdBytes(q.memoryMaxBytes)],
          ['MemorySwapMax', '0', 'A VM in swap slows the whole house down; an OOM kill of that VM is better.'],
          ['TasksAccounting', 'yes'],
          ['TasksMax', String(q.tasksMax)],
        ]),
      },
    ],
  };
}

/** Hardening both services share. Neither sets MemoryDenyWriteExecute: V8's JIT (and QEMU's TCG) write code at run time. */
const COMMON_HARDENING: Row[] = [
  ['NoNewPrivileges', 'yes'],
  ['ProtectSystem', 'strict'],
  ['ProtectHome', 'yes'],
  ['PrivateTmp', 'yes'],
  ['ProtectKernelModules', 'yes'],
  ['ProtectKernelLogs', 'yes'],
  ['ProtectClock', 'yes'],
  ['ProtectHostname', 'yes'],
  ['RestrictNamespaces', 'yes'],
  ['RestrictRealtime', 'yes'],
  ['RestrictSUIDSGID', 'yes'],
  ['LockPersonality', 'yes'],
  ['SystemCallArchitectures', 'native'],
  ['SystemCallFilter', '@system-service'],
  ['SystemCallErrorNumber', 'EPERM', 'A refused call fails with EPERM instead of killing the process: libuv falls back (io_uring), Node keeps going.'],
  ['UMask', '0077'],
];

function controlUnit(s: UnitSettings): UnitFile {
  return {
    comments: HEADER('hangar control: webhooks, policy, JIT runner configs, reconcile, dashboard.'),
    sections: [
      {
        name: 'Unit',
        entries: rows([
          ['Description', 'Hangar control (GitHub webhooks, policy, JIT runners, dashboard)'],
          ['After', 'network-online.target redis-server.service'],
          ['Wants', 'network-online.target'],
        ]),
      },
      {
        name: 'Service',
        entries: rows([
          ['Type', 'exec'],
          ['ExecStart', `${s.hangarBin} control --config ${s.configFile}`],
          ['Environment', `NODE_OPTIONS=${CONTROL_NODE_FLAGS.join(' ')}`, 'A larger young generation: fewer scavenges per webhook (src/config/runtime.ts).'],
          ['Restart', 'on-failure'],
          ['RestartSec', '5s'],
          ['DynamicUser', 'yes', 'No state of its own (Redis holds it): a throwaway uid is enough.'],
          ...credentialRows(s, s.credentials.control, 'hangar-control.service'),
          ['CapabilityBoundingSet', ''],
          ['AmbientCapabilities', ''],
          ['PrivateDevices', 'yes'],
          ['PrivateUsers', 'yes'],
          ['ProtectProc', 'invisible'],
          ['ProcSubset', 'pid'],
          ['ProtectKernelTunables', 'yes'],
          ['ProtectControlGroups', 'yes'],
          ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
          ['DevicePolicy', 'closed'],
          ['KeyringMode', 'private'],
          ['RemoveIPC', 'yes'],
          ...COMMON_HARDENING,
          ['SystemCallFilter', '~@privileged'],
        ]),
      },
      { name: 'Install', entries: rows([['WantedBy', 'multi-user.target']]) },
    ],
  };
}

function agentUnit(s: UnitSettings): UnitFile {
  return {
    comments: HEADER('hangar agent: runs each CI job in its own microVM under hangar-runners.slice.'),
    sections: [
      {
        name: 'Unit',
        entries: rows([
          ['Description', 'Hangar agent (CI jobs in throwaway microVMs)'],
          ['After', 'network-online.target nftables.service'],
          ['Wants', 'network-online.target'],
        ]),
      },
      {
        name: 'Service',
        entries: rows([
          ['Type', 'exec'],
          ['ExecStart', `${s.hangarBin} agent --config ${s.configFile}`],
          ['Restart', 'on-failure'],
          ['RestartSec', '5s'],
          ['Slice', SLICE_UNIT, 'The agent and every VM it starts count against the slice.'],
          ['Delegate', 'yes', 'The agent makes one cgroup per VM below its own (src/caps/v2.ts).'],
          ['OOMPolicy', 'continue', "A VM killed at its memory limit is that job's failure; the default (stop) would take the agent down with it."],
          [
            'KillMode',
            'mixed',
            'Stop drains: SIGTERM to the agent alone (its QEMU children keep running while their jobs finish), SIGKILL to what is left past TimeoutStopSec; leftovers are cleaned at the next start.',
          ],
          [
            'TimeoutStopSec',
            `${s.drainTimeoutSeconds + DRAIN_STOP_MARGIN_SECONDS}s`,
            `agent.drainTimeoutSeconds (${s.drainTimeoutSeconds}) and ${DRAIN_STOP_MARGIN_SECONDS}s to stop the VMs still running then and clean up.`,
          ],
          ...credentialRows(s, s.credentials.agent, 'hangar-agent.service'),
          ['StateDirectory', 'hangar'],
          ['RuntimeDirectory', 'hangar'],
          [
            'CapabilityBoundingSet',
            'CAP_NET_ADMIN CAP_KILL CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE',
            'Root, but only for: taps and nftables (NET_ADMIN), stopping QEMU run as another user (KILL, SETUID/SETGID), handing it its files.',
          ],
          ['DevicePolicy', 'closed'],
          ['DeviceAllow', '/dev/kvm rw'],
          ['DeviceAllow', '/dev/net/tun rw'],
          ['ProtectControlGroups', 'no', 'It writes its delegated cgroup.'],
          ['ProtectKernelTunables', 'no', 'ensureEgress turns on net.ipv4.ip_forward.'],
          ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6 AF_NETLINK', 'Netlink: ip(8) and nft(8) talk to the kernel through it.'],
          ...COMMON_HARDENING,
        ]),
      },
      { name: 'Install', entries: rows([['WantedBy', 'multi-user.target']]) },
    ],
  };
}

export function hangarUnits(settings: UnitSettings = DEFAULT_UNIT_SETTINGS): Record<UnitName, UnitFile> {
  return {
    'hangar-control.service': controlUnit(settings),
    'hangar-agent.service': agentUnit(settings),
    'hangar-runners.slice': sliceUnit(settings.slice),
  };
}

/** The unit files' text, by file name. */
export function renderHangarUnits(settings: UnitSettings = DEFAULT_UNIT_SETTINGS): Record<UnitName, string> {
  const units = hangarUnits(settings);
  return Object.fromEntries(UNIT_NAMES.map((name) => [name, renderUnit(units[name])])) as Record<UnitName, string>;
}
