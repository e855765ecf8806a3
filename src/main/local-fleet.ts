import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { createCaps } from '../caps/create-caps.js';
import { CONTROL_NODE_FLAGS } from '../config/runtime.js';
import { tokenSha256 } from '../jit/host-auth.js';
import { stopStaleEmbeddedRedis } from './embedded-redis.js';
import { startLocalRedis, type LocalRedis } from './local-redis.js';
import {
  createTopology, INTERNET, LAN, PROD, pidAlive, removeStaleTopologies, startTool, type ExecOptions, type ExecResult, type Topology,
} from './local-topology.js';
import { ensureTestImage, type TestImage } from './test-image.js';
import { requestOverSocket, type HttpReply } from './unix-http.js';

/**
 * A whole installation on this machine, for the demo and the end-to-end tests. Every part is a
 * real process started from the built CLI: redis-server, `hangar sim` (GitHub), `hangar
 * control`, `hangar agent` with QEMU microVMs. None of it is in the machine's own network
 * namespace (local-topology.ts): Redis, the control and the agent run in a build host's
 * namespace behind a LAN router, the sim on a documentation address of an "internet" beyond
 * it. The caller, in the machine's namespace, reaches them only through unix sockets in the
 * fleet's folder. One agent per machine: its start-up removes every Hangar VM cgroup.
 */
export const WEBHOOK_SECRET_FILE = 'webhook-secret';
export const VM_USER = 'hangar-vm';
/** Ports inside the fleet's own namespaces, where nothing else listens. */
const SIM_PORT = 80;
const CONTROL_PORT = 8080;
/** The control's private listener (the agents' API, /metrics): loopback inside the build host, so plain HTTP. */
const PRIVATE_PORT = 8443;
/** The dashboard's listener in the build host's namespace (reached from outside through `sockets.dashboard`). */
const DASHBOARD_PORT = 8081;
const REDIS_PORT = 6379;

export interface FleetOptions {
  /** Redis key prefix (the fleet's Redis is its own; default `hangar`). */
  prefix?: string;
  slots?: number;
  timeoutMinutes?: number;
  /** The agent's `gateTimeoutSeconds` (default 15). */
  gateTimeoutSeconds?: number;
  memoryMiB?: number;
  /** The agent's role: `deploy` serves the deploy pool too (build, large, deploy). Default build. */
  role?: 'build' | 'deploy';
  /** policy.cancelRefusedRuns (default true). */
  cancelRefusedRuns?: boolean;
  /** More hosts the control lets mint (no agent runs for them; a test acts as one). */
  extraHosts?: { name: string; role: 'build' | 'deploy'; pools: string[]; token: string }[];
  /**
   * Runners find "GitHub" by name (`sim.example`), through their VM's DNS forwarder, as real ones
   * do; what an allowlist pool needs. By default they use its address: a guest whose agent died
   * (and its forwarder with it) can still report its job's end, which the gate tests read.
   */
  simByName?: boolean;
  /**
   * The agent reaches the control through a proxy that answers these requests with these
   * statuses first (netns-tool `faults`): a control that fails the way a real one can.
   */
  controlFaults?: { method: string; path: string; times: number; status: number }[];
  /** `control.retries`: tries per job and the first pause (default 5 and 2 s). */
  retries?: { attempts: number; backoffSeconds: number };
  /** The agent's `vm.accel`: tcg (the default) unless the caller knows KVM boots guests here (the tests probe once per run). */
  accel?: 'kvm' | 'tcg';
  /** The control's `reconcile` section, a YAML flow mapping (default: RECONCILE_DEFAULTS, short enough for a demo). */
  reconcile?: string;
  /** `intake.mode`: pull is a box GitHub cannot reach; give `webhookUrl` an address nothing answers on. */
  intake?: { mode: 'push' | 'pull'; pullIntervalSeconds?: number };
  /** Where the sim sends webhooks (default: the control's intake on the build host's LAN address). */
  webhookUrl?: string;
  /**
   * `github.rateBudget` (default 36 000/h, burst 200: the sim is not GitHub, and a demo batch
   * should not wait on a budget sized for github.com's 5 000/h).
   */
  githubRateBudget?: { requestsPerHour: number; burst: number };
  /**
   * One box: the control and the agent as one `hangar up` process (`startUp()`), with the Redis
   * it embeds (the config names no redis.url). The fleet starts no Redis and no control of its
   * own: `redis()` and `redisServer` throw, `startControl()`/`startAgent()` are not for it.
   */
  up?: boolean;
}

/** Reconcile's cadence in a local fleet: the same loops as production, every few seconds. */
export const RECONCILE_DEFAULTS =
  '{leaderTtlSeconds: 10, deliveriesIntervalSeconds: 10, queuedRunsIntervalSeconds: 20, runnersIntervalSeconds: 10, runnerGraceSeconds: 60, idleVmSeconds: 120, stuckAfterSeconds: 300}';

const FAULTY_CONTROL_PORT = 8090;

/**
 * The fleet's agent isolates its guests (nft table, DNS forwarder on each gateway asking the
 * internet's DNS server, egress log). Its pools: `build`, `large`, `deploy` (a deploy host:
 * with a prod network of its own in `agent.network.productionCidrs`) and `locked`, an allowlist
 * pool that may reach only `sim.example` (the runners' GitHub) and `allowed.example`.
 */
export const LOCKED_ALLOW = ['sim.example', 'allowed.example'] as const;

/** Addresses inside the fleet's namespaces, for tests to aim at (from the host's namespace or a guest). */
export interface FleetAddresses {
  /** The build host's LAN address (the control listens on it too: webhooks come in there). */
  host: string;
  router: string;
  lanWeb: string;
  metadata: string;
  sim: string;
  publicWeb: string;
  /** A public web server no allowlist name resolves to. */
  publicWeb2: string;
  /** The internet's DNS server (the forwarders' upstream). */
  dns: string;
  /** The prod server: reachable from a deploy host only. */
  prod: string;
}

export interface Fleet {
  dir: string;
  image: TestImage;
  /** The sim's URL inside the namespaces (the control, the agent and the guests use it). */
  simUrl: string;
  /** The control's private listener (the agents' API) inside the build host's namespace; webhooks reach the public one at `addresses.host`:8080. */
  controlUrl: string;
  /** The Redis URL inside the build host's namespace (from outside: `redis()`); '' with `up` (it embeds its own). */
  redisUrl: string;
  prefix: string;
  configFile: string;
  stateDir: string;
  /**
   * The agent's runner slice (agent.caps.slice), the fleet's own: its agent's start-up cleans
   * VM cgroups under it only, so fleets (and a real agent's hangar-runners.slice) never touch
   * each other's. close() removes it.
   */
  slice: string;
  hostToken: string;
  /** The dashboard's operator token (its dashboard.tokenFile), for `Authorization: Bearer` or the login form. */
  operatorToken: string;
  /** The fleet's namespaces: the build host (Redis, control, agent, taps), the LAN, the internet (sim). */
  netns: { host: string; lan: string; internet: string };
  addresses: FleetAddresses;
  /** Unix sockets in `dir`: Redis itself, the sim itself, and bridges to the control's private listener and the dashboard's. */
  sockets: { redis: string; sim: string; control: string; dashboard: string };
  /** The sim's API (its control face, or its REST face given an `authorization` header), JSON in and out; throws on a status outside 2xx. */
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  /** One request to the control's private listener (inside the build host), answered whatever the status. */
  controlApi(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpReply>;
  /** The fleet's own ioredis client (over its socket); close() disconnects it. */
  redis(): Redis;
  /** Runs a command inside one of the fleet's namespaces (`netns.host`, …); throws on failure unless `reject: false`. */
  exec(netns: string, cmd: string, args: string[], o?: ExecOptions): Promise<ExecResult>;
  /** Hangar's taps (`hg-…`) in the build host's namespace, where the agent makes them. */
  taps(): Promise<string[]>;
  /** Starts `hangar agent` and resolves once it takes jobs (see `agent` for the process). */
  startAgent(): Promise<void>;
  agent: ResultPromise | null;
  /** A fleet with `up`: starts `hangar up` and resolves once its control listens and its agent takes jobs (see `up`). */
  startUp(): Promise<void>;
  up: ResultPromise | null;
  /**
   * Starts `hangar control` again (after a test stopped `control`), or, with `port`, another
   * replica of it on that port beside the first (same Redis, same config otherwise).
   */
  startControl(o?: { port?: number }): Promise<{ proc: ResultPromise }>;
  control: ResultPromise | null;
  /** The fleet's redis-server (AOF on): `kill()` is kill -9, `restart()` starts it on the same data. */
  redisServer: LocalRedis;
  /** Everything every process printed so far. */
  logs(): string;
  close(): Promise<void>;
}

/** The built CLI (dist/main/cli.js), whether this module runs from dist or from src under vitest. */
export const CLI = fileURLToPath(new URL('../../dist/main/cli.js', import.meta.url));

export async function startLocalFleet(o: FleetOptions = {}): Promise<Fleet> {
  const image = await ensureTestImage();
  // A crashed run's processes go with its namespaces; then its folder (the App key, tokens).
  await removeStaleTopologies();
  await removeStaleSlices();
  removeStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), `hangar-fleet-${process.pid}-`));
  const slice = `${basename(dir)}.slice`;
  const parts: Parts = {};
  const close = async () => {
    parts.client?.disconnect();
    // The hangar processes (the agent drains, then removes its taps and table), then the Redis they used.
    await parts.procs?.stop();
    // A `hangar up` that died before its stop leaves its embedded redis-server: gone with the fleet.
    if (o.up) await stopStaleEmbeddedRedis(join(dir, 'state'));
    // The agent removed its VMs' cgroups; the slice is the fleet's own.
    await removeSlice(slice);
    await parts.redis?.dispose();
    // Deleting the namespaces removes whatever the processes left in them.
    await parts.topology?.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    return await start(o, image, dir, slice, parts, close);
  } catch (err) {
    await close();
    throw err;
  }
}

/** What a fleet has started so far: close() undoes exactly that, also after a failed start. */
interface Parts { topology?: Topology; redis?: LocalRedis; procs?: Processes; client?: Redis }

async function start(o: FleetOptions, image: TestImage, dir: string, slice: string, parts: Parts, close: () => Promise<void>): Promise<Fleet> {
  await ensureVmUser();
  const topology = (parts.topology = await createTopology({ hosts: [{ name: 'build', prod: o.role === 'deploy' }] }));
  const host = topology.host('build');
  const sockets = { redis: join(dir, 'redis.sock'), sim: join(dir, 'sim.sock'), control: join(dir, 'control.sock'), dashboard: join(dir, 'dashboard.sock') };
  const redis = o.up ? undefined : (parts.redis = await startLocalRedis({ dir: join(dir, 'redis'), netns: host.netns, port: REDIS_PORT, socket: sockets.redis }));
  const procs = (parts.procs = new Processes(dir, topology));
  const prefix = o.prefix ?? 'hangar';
  const hostToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'host-token'), hostToken, { mode: 0o600 });
  const operatorToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'operator-token'), operatorToken, { mode: 0o600 });
  const simUrl = `http://${INTERNET.sim}:${SIM_PORT}`;
  const simPublicUrl = o.simByName ? `http://sim.example:${SIM_PORT}` : simUrl;
  // The agents' API: the private listener, on the build host's loopback (the agent is beside the control).
  const controlUrl = `http://127.0.0.1:${PRIVATE_PORT}`;
  // What the agent is told: the control, or a proxy in front of it that fails first.
  const agentControlUrl = o.controlFaults ? `http://127.0.0.1:${FAULTY_CONTROL_PORT}` : controlUrl;
  const stateDir = join(dir, 'state');
  const configFile = join(dir, 'hangar.yaml');
  writeFileSync(configFile, fleetConfig({ ...o, prefix, dir, simUrl, redisUrl: redis?.url, controlUrl: agentControlUrl, hostToken, imageDir: image.dir, stateDir, slice }));

  await procs.start('sim', topology.netns.internet, /sim listening/, [
    'sim', '--host', INTERNET.sim, '--port', String(SIM_PORT), '--socket', sockets.sim, '--app-id', '1', '--public-url', simPublicUrl,
    '--app-key-file', join(dir, 'app.pem'), '--webhook-secret-file', join(dir, WEBHOOK_SECRET_FILE),
    // GitHub reaches the control at the host's LAN address, through the router.
    '--webhook-url', o.webhookUrl ?? `http://${host.address}:${CONTROL_PORT}/webhooks/github`,
  ]);
  await startTool(topology, host.netns, 'bridge', [
    { socket: sockets.control, host: '127.0.0.1', port: PRIVATE_PORT },
    { socket: sockets.dashboard, host: '127.0.0.1', port: DASHBOARD_PORT },
  ]);
  if (o.controlFaults) {
    await startTool(topology, host.netns, 'faults', [{ host: '127.0.0.1', port: FAULTY_CONTROL_PORT, to: { host: '127.0.0.1', port: PRIVATE_PORT }, fail: o.controlFaults }]);
  }
  const own = (what: string) => {
    if (!redis) throw new Error(`a fleet with up: true has no ${what}: hangar up embeds its Redis, under ${stateDir}/redis`);
    return redis;
  };
  const fleet: Fleet = {
    dir, image, simUrl, controlUrl, redisUrl: redis?.url ?? '', prefix, configFile, stateDir, slice, hostToken, operatorToken, agent: null, control: null, up: null, sockets,
    get redisServer() {
      return own('redisServer');
    },
    netns: { host: host.netns, lan: topology.netns.lan, internet: topology.netns.internet },
    addresses: {
      host: host.address, router: LAN.router, lanWeb: LAN.web, metadata: LAN.metadata, sim: INTERNET.sim, publicWeb: INTERNET.publicWeb,
      publicWeb2: INTERNET.publicWeb2, dns: INTERNET.dns, prod: PROD.server,
    },
    async api(method, path, body, headers = {}) {
      // No content-type without a body: Fastify answers an empty JSON body 400.
      const json: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      const res = await requestOverSocket(sockets.sim, method, path, body === undefined ? undefined : JSON.stringify(body), { ...json, ...headers });
      if (res.status < 200 || res.status > 299) throw new Error(`sim ${method} ${path}: ${res.status} ${res.body}`);
      return (res.status === 204 || res.body === '' ? undefined : JSON.parse(res.body)) as never;
    },
    controlApi(method, path, body, headers = {}) {
      const json: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      return requestOverSocket(sockets.control, method, path, body === undefined ? undefined : JSON.stringify(body), { ...json, ...headers });
    },
    redis() {
      own('redis()');
      parts.client ??= new Redis({ path: sockets.redis });
      return parts.client;
    },
    exec: (netns, cmd, args, e) => topology.exec(netns, cmd, args, e),
    async taps() {
      const { stdout } = await topology.exec(host.netns, 'ip', ['-o', 'link', 'show']);
      return stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => n.startsWith('hg-'));
    },
    async startAgent() {
      // Not `return` the process: an execa process is a thenable, and returning it would wait for its exit.
      const { proc } = await procs.start('agent', host.netns, /agent started/, ['agent', '--config', configFile]);
      fleet.agent = proc;
    },
    async startUp() {
      const { proc } = await procs.start('up', host.netns, /up started/, ['up', '--config', configFile], CONTROL_NODE_FLAGS);
      fleet.up = proc;
    },
    async startControl(so = {}) {
      let file = configFile;
      if (so.port !== undefined && so.port !== CONTROL_PORT) {
        file = join(dir, `hangar-${so.port}.yaml`);
        // A second control beside the first: its dashboard and private listener on ports of their own (the bridge and the agent reach the first's).
        writeFileSync(file, readFileSync(configFile, 'utf8').replace(`port: ${CONTROL_PORT}`, `port: ${so.port}`).replace(`127.0.0.1:${DASHBOARD_PORT}`, '127.0.0.1:0').replace(`127.0.0.1:${PRIVATE_PORT}`, '127.0.0.1:0'));
      }
      const { proc } = await procs.start('control', host.netns, /control listening/, ['control', '--config', file], CONTROL_NODE_FLAGS);
      if (file === configFile) fleet.control = proc;
      // In a box: an execa process is a thenable, and returning it would wait for its exit.
      return { proc };
    },
    logs: () => procs.logs(),
    close,
  };
  if (!o.up) await fleet.startControl();
  return fleet;
}

/** QEMU drops to this user once it has opened its files (the Ansible role makes it in production). */
export async function ensureVmUser(): Promise<void> {
  if ((await execa('id', ['-u', VM_USER], { reject: false })).exitCode !== 0) {
    // Exit 9: another fleet starting beside this one made it first.
    const made = await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', VM_USER], { reject: false });
    if (made.exitCode !== 0 && made.exitCode !== 9) throw new Error(`useradd ${VM_USER}: ${made.stderr}`);
  }
}

/** A fleet's slice and whatever VM cgroups are left in it (an unknown one is success). */
export async function removeSlice(sliceName: string): Promise<void> {
  const caps = await createCaps({ mode: 'auto', sliceName, cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
  await caps.removeSlice();
}

/** The slices of fleets whose process is gone (a crashed or killed test run). */
export async function removeStaleSlices(): Promise<void> {
  const root = '/sys/fs/cgroup';
  const names = new Set<string>();
  // v2: slices at the root or in the agent's own cgroup's parent; v1: one per hierarchy.
  for (const dir of [root, ...readdirSafe(root).map((d) => join(root, d))]) {
    for (const name of readdirSafe(dir)) {
      const m = /^hangar-fleet-(\d+)-[A-Za-z0-9_-]+\.slice$/.exec(name);
      if (m && !pidAlive(Number(m[1]))) names.add(name);
    }
  }
  for (const name of names) await removeSlice(name).catch(() => undefined);
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Folders of fleets whose process is gone (`hangar-fleet-<pid>-…`); other names are left alone. */
export function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^hangar-fleet-(\d+)-/.exec(name);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** The fleet's processes, each printing to its own log file in the fleet's folder. */
export class Processes {
  private readonly procs: ResultPromise[] = [];
  private readonly files: string[] = [];

  constructor(private readonly dir: string, private readonly topology: Topology) {}

  /** Starts `hangar ARGS` inside `netns`; resolves (in a box: see startAgent) once its output matches `ready`. */
  async start(name: string, netns: string, ready: RegExp, args: string[], nodeFlags: readonly string[] = []): Promise<{ proc: ResultPromise }> {
    const file = join(this.dir, `${name}-${this.files.length}.log`);
    this.files.push(file);
    // nsenter execs node, so `proc` is the hangar process itself (signals reach it, not a wrapper).
    // No forced kill after SIGTERM: a draining agent may take as long as its jobs do.
    const proc = this.topology.spawn(netns, process.execPath, [...nodeFlags, CLI, ...args]);
    proc.all!.pipe(createWriteStream(file));
    this.procs.push(proc);
    for (let i = 0; i < 300; i++) {
      if (ready.test(this.read(file))) return { proc };
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`hangar ${name} did not start:\n${this.read(file).slice(-2000) || '(no output)'}`);
  }

  logs(): string {
    return this.files.map((f) => this.read(f)).join('\n');
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.kill('SIGTERM');
    await Promise.allSettled(this.procs);
  }

  private read(file: string): string {
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }
}

interface ConfigInput extends FleetOptions {
  prefix: string;
  dir: string;
  simUrl: string;
  /** None: `hangar up` embeds its own. */
  redisUrl: string | undefined;
  controlUrl: string;
  hostToken: string;
  imageDir: string;
  stateDir: string;
  slice: string;
}

/** One hangar.yaml for both the control and the agent, as a one-box homelab has (both in the build host's namespace). */
function fleetConfig(c: ConfigInput): string {
  const role = c.role ?? 'build';
  const pools = role === 'deploy' ? 'build, large, locked, deploy' : 'build, large, locked';
  const prod = role === 'deploy' ? `, productionCidrs: [${PROD.server.replace(/\.\d+$/, '.0')}/24]` : '';
  return `
github: {apiUrl: "${c.simUrl}", appId: 1, privateKeyFile: ${c.dir}/app.pem, webhookSecretFile: ${c.dir}/${WEBHOOK_SECRET_FILE}, writeSpacingMs: 0, rateBudget: {requestsPerHour: ${c.githubRateBudget?.requestsPerHour ?? 36_000}, burst: ${c.githubRateBudget?.burst ?? 200}}}
redis: {${c.redisUrl === undefined ? '' : `url: "${c.redisUrl}", `}prefix: ${c.prefix}}
control: {host: 0.0.0.0, port: ${CONTROL_PORT}, private: {listen: "127.0.0.1:${PRIVATE_PORT}"}${c.retries ? `, retries: {attempts: ${c.retries.attempts}, backoffSeconds: ${c.retries.backoffSeconds}}` : ''}}
reconcile: ${c.reconcile ?? RECONCILE_DEFAULTS}
${c.intake ? `intake: {mode: ${c.intake.mode}${c.intake.pullIntervalSeconds ? `, pullIntervalSeconds: ${c.intake.pullIntervalSeconds}` : ''}}` : ''}
policy: {repositories: ["acme/*"], cancelRefusedRuns: ${c.cancelRefusedRuns ?? true}}
dashboard: {listen: "127.0.0.1:${DASHBOARD_PORT}", tokenFile: ${c.dir}/operator-token}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: large, labels: [self-hosted, linux, x64, large]}
  - {name: locked, labels: [self-hosted, linux, x64, locked], egress: {mode: allowlist, allow: [${LOCKED_ALLOW.join(', ')}]}}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
  - {name: minipc, role: ${role}, pools: [${pools}], tokenSha256: ${tokenSha256(c.hostToken)}}
${(c.extraHosts ?? []).map((h) => `  - {name: ${h.name}, role: ${h.role}, pools: [${h.pools.join(', ')}], tokenSha256: ${tokenSha256(h.token)}}`).join('\n')}
agent:
  host: minipc
  slots: ${c.slots ?? 2}
  controlUrl: ${c.controlUrl}
  tokenFile: ${c.dir}/host-token
  stateDir: ${c.stateDir}${c.gateTimeoutSeconds ? `\n  gateTimeoutSeconds: ${c.gateTimeoutSeconds}` : ''}
  network: {dns: {upstreams: ["${INTERNET.dns}"]}${prod}}
  vm: {accel: ${c.accel ?? 'tcg'}, image: ${c.imageDir}, memoryMiB: ${c.memoryMiB ?? 256}, vcpus: 1, timeoutMinutes: ${c.timeoutMinutes ?? 5}, runAs: ${VM_USER}}
  caps: {slice: ${c.slice}, cpuQuotaPercent: 180, memoryMaxMiB: 2048, overheadMiB: 256}
log: {level: info}
`;
}
