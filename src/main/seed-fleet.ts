import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { createCaps } from '../caps/create-caps.js';
import { CONTROL_NODE_FLAGS } from '../config/runtime.js';
import { makeCa, makeServerCert } from './local-certs.js';
import { CLI, ensureVmUser, Processes, RECONCILE_DEFAULTS, removeSlice, removeStaleDirs, removeStaleSlices, VM_USER, WEBHOOK_SECRET_FILE } from './local-fleet.js';
import { startLocalRedis, type LocalRedis } from './local-redis.js';
import { createTopology, INTERNET, LAN, PROD, removeStaleTopologies, startTool, type ExecOptions, type ExecResult, type Topology } from './local-topology.js';
import { ensureTestImage, type TestImage } from './test-image.js';
import { requestOverSocket, type HttpReply } from './unix-http.js';

/**
 * The seed's fleet on this machine, as docs/placement.md places it: two boxes in network
 * namespaces of their own, every part a real process from the built CLI.
 *
 * - "sidekick", the mini PC at home behind carrier-grade NAT (local-topology.ts `homeNat`): the
 *   build agent (pools build and large). It has no inbound port: it dials the cloud box's control
 *   (HTTPS) and Redis (`rediss://`, its own ACL user, its pools' queues only), both checked against the fleet's CA.
 * - "cloudbox", on the internet beside production: Redis (TLS only, no user without a password), the
 *   control (public webhooks on :8080; the agents' API on :8443 with TLS), the deploy agent
 *   (pool deploy) and a "prod" network only it reaches.
 * - GitHub (`hangar sim`) on the internet, posting webhooks to the cloud box.
 *
 * Both hosts are enrolled the way an operator does it, with `hangar host add` run on the cloud box.
 * The caller reaches Redis, the sim and the dashboard through unix sockets in the fleet's folder.
 */
export type BoxName = 'sidekick' | 'cloudbox';

const SIM_PORT = 80;
const WEBHOOK_PORT = 8080;
const PRIVATE_PORT = 8443;
const DASHBOARD_PORT = 8081;
const REDIS_PORT = 6379;
const CONTROL_USER = 'hangar-control';

export interface SeedBox {
  name: BoxName;
  role: 'build' | 'deploy';
  pools: string[];
  netns: string;
  address: string;
  configFile: string;
  stateDir: string;
  /** Its agent's runner slice, the fleet's own (close() removes it). */
  slice: string;
  slots: number;
  agent: ResultPromise | null;
}

export interface SeedFleetOptions {
  prefix?: string;
  /** The build box's slots (default 2); the deploy box has one. */
  slots?: number;
  memoryMiB?: number;
  timeoutMinutes?: number;
  accel?: 'kvm' | 'tcg';
  /** The control's `reconcile` section, a YAML flow mapping (default RECONCILE_DEFAULTS). */
  reconcile?: string;
}

export interface SeedFleet {
  dir: string;
  image: TestImage;
  prefix: string;
  simUrl: string;
  /** The control's private listener as sidekick dials it (TLS). */
  controlUrl: string;
  /** The Redis URL sidekick dials (user and password its own). */
  redisUrl: string;
  controlConfig: string;
  operatorToken: string;
  boxes: Record<BoxName, SeedBox>;
  netns: { lan: string; internet: string; prod: string };
  addresses: { sidekick: string; cloudbox: string; router: string; lanWeb: string; metadata: string; sim: string; publicWeb: string; prod: string; wan: string };
  sockets: { redis: string; sim: string; dashboard: string };
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  dashboardApi(method: string, path: string): Promise<HttpReply>;
  /** The fleet's own Redis client (as the control's user, over its socket). */
  redis(): Redis;
  exec(netns: string, cmd: string, args: string[], o?: ExecOptions): Promise<ExecResult>;
  taps(box: BoxName): Promise<string[]>;
  startAgent(box: BoxName): Promise<void>;
  /**
   * Connections sidekick accepted on its uplink since the fleet started: the SYN-ACKs it sent, and
   * its UDP answers to flows that began outside (nft counters in its namespace); and `tried`, the
   * inbound SYNs and new UDP flows that reached it at all (source, protocol, port). A packet of one
   * of its own connections that conntrack picks up mid-stream (after a link outage) is neither.
   */
  inboundToSidekick(): Promise<number>;
  inboundTried(): Promise<string[]>;
  /** Connections to prod since the fleet started, by source address (nft counters in prod's namespace). */
  prodConnections(): Promise<{ fromCloudbox: number; fromElsewhere: number }>;
  /** Cuts the path between the boxes (the home router drops everything to and from the cloud box); GitHub stays reachable. */
  cutLink(): Promise<void>;
  restoreLink(): Promise<void>;
  logs(): string;
  close(): Promise<void>;
}

interface Parts { topology?: Topology; redis?: LocalRedis; procs?: Processes; client?: Redis; slices: string[] }

export async function startSeedFleet(o: SeedFleetOptions = {}): Promise<SeedFleet> {
  const image = await ensureTestImage();
  await removeStaleTopologies();
  await removeStaleSlices();
  removeStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), `hangar-fleet-${process.pid}-`));
  const parts: Parts = { slices: [] };
  const close = async () => {
    parts.client?.disconnect();
    await parts.procs?.stop();
    for (const s of parts.slices) await removeSlice(s);
    await parts.redis?.dispose();
    await parts.topology?.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    return await start(o, image, dir, parts, close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function start(o: SeedFleetOptions, image: TestImage, dir: string, parts: Parts, close: () => Promise<void>): Promise<SeedFleet> {
  await ensureVmUser();
  const topology = (parts.topology = await createTopology({ hosts: [{ name: 'sidekick' }, { name: 'cloudbox', site: 'cloud', prod: true }], homeNat: true }));
  const side = topology.host('sidekick');
  const cloud = topology.host('cloudbox');
  const prefix = o.prefix ?? 'hangar';
  const sockets = { redis: join(dir, 'redis.sock'), sim: join(dir, 'sim.sock'), dashboard: join(dir, 'dashboard.sock') };
  // Counters first, so they see everything: sidekick's new inbound connections, prod's by source.
  // sidekick: what tried to come in on its uplink (source, protocol, port) and, what matters, any
  // connection it accepted (a SYN-ACK out, or any answer to a new inbound flow's first packet).
  await topology.exec(side.netns, 'nft', ['-f', '-'], { input: `table inet hangar_fleet_watch {
 set tried { type ipv4_addr . inet_proto . inet_service; flags dynamic; }
 chain input { type filter hook input priority -50; iifname "eth0" ct state new tcp flags & (syn | ack) == syn add @tried { ip saddr . meta l4proto . th dport }; iifname "eth0" ct state new meta l4proto udp add @tried { ip saddr . meta l4proto . th dport }; }
 chain output { type filter hook output priority -50; oifname "eth0" tcp flags & (syn | ack) == (syn | ack) counter; oifname "eth0" ct direction reply meta l4proto udp counter; }
}
` });
  await topology.exec(cloud.prod!.netns, 'nft', ['-f', '-'], {
    input: `table inet hangar_fleet_watch {\n chain input { type filter hook input priority -50; ct state new ip saddr ${PROD.gateway} counter; ct state new ip saddr != ${PROD.gateway} counter; }\n}\n`,
  });

  // The cloud box's certificate (the control's private listener and Redis), for its internet address and its loopback.
  mkdirSync(join(dir, 'tls'), { mode: 0o700 });
  const ca = makeCa('Hangar seed fleet CA', join(dir, 'tls'));
  const cert = makeServerCert(ca, [`IP:${cloud.address}`, 'IP:127.0.0.1'], join(dir, 'tls'));
  // Redis on the cloud box: TLS only, on its loopback and its internet address, no user without a password.
  const redis = (parts.redis = await startLocalRedis({
    dir: join(dir, 'redis'), netns: cloud.netns, port: REDIS_PORT, socket: sockets.redis, bind: ['127.0.0.1', cloud.address], tls: { certFile: cert.certFile, keyFile: cert.keyFile },
  }));
  const controlPassword = randomBytes(24).toString('base64url');
  const creds = join(dir, 'creds');
  mkdirSync(creds, { mode: 0o700 });
  writeFileSync(join(creds, 'control.redis-password'), `${controlPassword}\n`, { mode: 0o600 });
  {
    const admin = new Redis({ path: sockets.redis });
    await admin.call('ACL', 'SETUSER', CONTROL_USER, 'on', `>${controlPassword}`, '~*', '&*', '+@all');
    // Off, and with a password nobody knows: Redis's protected mode (loopback only) is for a default user without one.
    await admin.call('ACL', 'SETUSER', 'default', 'off', 'resetpass', `>${randomBytes(24).toString('base64url')}`);
    admin.disconnect();
  }

  const operatorToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'operator-token'), operatorToken, { mode: 0o600 });
  const simUrl = `http://${INTERNET.sim}:${SIM_PORT}`;
  const controlConfig = join(dir, 'control.yaml');
  const controlYaml = `
github: {apiUrl: "${simUrl}", appId: 1, privateKeyFile: ${dir}/app.pem, webhookSecretFile: ${dir}/${WEBHOOK_SECRET_FILE}, writeSpacingMs: 0, rateBudget: {requestsPerHour: 36000, burst: 200}}
redis: {url: "rediss://${CONTROL_USER}@127.0.0.1:${REDIS_PORT}", prefix: ${prefix}, passwordFile: ${creds}/control.redis-password, tls: {caFile: ${ca.certFile}}}
control: {host: 0.0.0.0, port: ${WEBHOOK_PORT}, private: {listen: "0.0.0.0:${PRIVATE_PORT}", tls: {certFile: ${cert.certFile}, keyFile: ${cert.keyFile}}}}
reconcile: ${o.reconcile ?? RECONCILE_DEFAULTS}
policy: {repositories: ["acme/*"], cancelRefusedRuns: true}
dashboard: {listen: "127.0.0.1:${DASHBOARD_PORT}", tokenFile: ${dir}/operator-token}
${POOLS}
log: {level: info}
`;
  writeFileSync(controlConfig, controlYaml);

  // Enrolment as an operator does it, on the cloud box: a token and a Redis user per host.
  const procs = (parts.procs = new Processes(dir, topology));
  const hostsYaml: string[] = [];
  const boxes = {} as Record<BoxName, SeedBox>;
  for (const [name, role, pools, slots] of [['sidekick', 'build', ['build', 'large'], o.slots ?? 2], ['cloudbox', 'deploy', ['deploy'], 1]] as const) {
    const r = await topology.exec(cloud.netns, process.execPath, [CLI, 'host', 'add', name, '--role', role, '--pools', pools.join(','), '--config', controlConfig, '--out', creds]);
    const sha = /tokenSha256: ([0-9a-f]{64})/.exec(r.stdout)?.[1];
    if (!sha) throw new Error(`hangar host add ${name} printed no tokenSha256:\n${r.stdout}\n${r.stderr}`);
    hostsYaml.push(`  - {name: ${name}, role: ${role}, pools: [${pools.join(', ')}], tokenSha256: ${sha}}`);
    const stateDir = join(dir, `${name}-state`);
    boxes[name] = {
      name, role, pools: [...pools], slots, stateDir, agent: null,
      netns: topology.host(name).netns, address: topology.host(name).address,
      configFile: join(dir, `${name}.yaml`), slice: `${basename(dir)}-${name}.slice`,
    };
    parts.slices.push(boxes[name].slice);
  }
  writeFileSync(controlConfig, `${controlYaml}hosts:\n${hostsYaml.join('\n')}\n`);
  const controlUrl = `https://${cloud.address}:${PRIVATE_PORT}`;
  const redisUrl = `rediss://hangar-host-sidekick@${cloud.address}:${REDIS_PORT}`;
  for (const b of Object.values(boxes)) {
    // Each box's agent config holds what that box needs, nothing of the control's.
    const there = b.name === 'cloudbox' ? '127.0.0.1' : cloud.address;
    writeFileSync(b.configFile, `
redis: {url: "rediss://hangar-host-${b.name}@${there}:${REDIS_PORT}", prefix: ${prefix}, passwordFile: ${creds}/${b.name}.redis-password, tls: {caFile: ${ca.certFile}}}
${POOLS}
hosts:
${hostsYaml.join('\n')}
agent:
  host: ${b.name}
  slots: ${b.slots}
  controlUrl: https://${there}:${PRIVATE_PORT}
  controlCaFile: ${ca.certFile}
  tokenFile: ${creds}/${b.name}.token
  stateDir: ${b.stateDir}
  # Across a link (sidekick), a starting job waits out a link outage of up to 2 minutes at the gate.
  gateTimeoutSeconds: ${b.name === 'sidekick' ? 120 : 15}
  network: {dns: {upstreams: ["${INTERNET.dns}"]}${b.role === 'deploy' ? `, productionCidrs: [${PROD.server.replace(/\.\d+$/, '.0')}/24]` : ''}}
  vm: {accel: ${o.accel ?? 'tcg'}, image: ${image.dir}, memoryMiB: ${o.memoryMiB ?? 256}, vcpus: 1, timeoutMinutes: ${o.timeoutMinutes ?? 5}, runAs: ${VM_USER}}
  caps: {slice: ${b.slice}, cpuQuotaPercent: ${b.role === 'deploy' ? 100 : 180}, memoryMaxMiB: ${b.role === 'deploy' ? 1024 : 2048}, overheadMiB: 256}
log: {level: info}
`);
  }

  await procs.start('sim', topology.netns.internet, /sim listening/, [
    'sim', '--host', INTERNET.sim, '--port', String(SIM_PORT), '--socket', sockets.sim, '--app-id', '1', '--public-url', simUrl,
    '--app-key-file', join(dir, 'app.pem'), '--webhook-secret-file', join(dir, WEBHOOK_SECRET_FILE),
    '--webhook-url', `http://${cloud.address}:${WEBHOOK_PORT}/webhooks/github`,
  ]);
  await procs.start('control', cloud.netns, /control listening/, ['control', '--config', controlConfig], CONTROL_NODE_FLAGS);
  await startTool(topology, cloud.netns, 'bridge', [{ socket: sockets.dashboard, host: '127.0.0.1', port: DASHBOARD_PORT }]);

  const cut = `table inet hangar_fleet_cut {\n chain forward { type filter hook forward priority -50; ip daddr ${cloud.address} drop; ip saddr ${cloud.address} drop; }\n}\n`;
  const counters = async (netns: string): Promise<number[]> => {
    const { stdout } = await topology.exec(netns, 'nft', ['list', 'table', 'inet', 'hangar_fleet_watch']);
    return [...stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
  };
  const fleet: SeedFleet = {
    dir, image, prefix, simUrl, controlUrl, redisUrl, controlConfig, operatorToken, boxes,
    netns: { lan: topology.netns.lan, internet: topology.netns.internet, prod: cloud.prod!.netns },
    addresses: {
      sidekick: side.address, cloudbox: cloud.address, router: LAN.router, lanWeb: LAN.web, metadata: LAN.metadata,
      sim: INTERNET.sim, publicWeb: INTERNET.publicWeb, prod: PROD.server, wan: INTERNET.wan,
    },
    sockets,
    async api(method, path, body, headers = {}) {
      const json: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      const res = await requestOverSocket(sockets.sim, method, path, body === undefined ? undefined : JSON.stringify(body), { ...json, ...headers });
      if (res.status < 200 || res.status > 299) throw new Error(`sim ${method} ${path}: ${res.status} ${res.body}`);
      return (res.status === 204 || res.body === '' ? undefined : JSON.parse(res.body)) as never;
    },
    dashboardApi: (method, path) => requestOverSocket(sockets.dashboard, method, path, undefined, { authorization: `Bearer ${operatorToken}` }),
    redis() {
      parts.client ??= new Redis({ path: sockets.redis, username: CONTROL_USER, password: controlPassword });
      return parts.client;
    },
    exec: (netns, cmd, args, e) => topology.exec(netns, cmd, args, e),
    async taps(box) {
      const { stdout } = await topology.exec(boxes[box].netns, 'ip', ['-o', 'link', 'show']);
      return stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => n.startsWith('hg-'));
    },
    async startAgent(box) {
      const { proc } = await procs.start(`agent-${box}`, boxes[box].netns, /agent started/, ['agent', '--config', boxes[box].configFile]);
      boxes[box].agent = proc;
    },
    inboundToSidekick: async () => (await counters(side.netns)).reduce((a, b) => a + b, 0),
    async inboundTried() {
      const { stdout } = await topology.exec(side.netns, 'nft', ['list', 'set', 'inet', 'hangar_fleet_watch', 'tried']);
      return /elements = \{([^}]*)\}/.exec(stdout)?.[1]?.split(',').map((e) => e.trim()).filter(Boolean) ?? [];
    },
    async prodConnections() {
      const [fromCloudbox = NaN, fromElsewhere = NaN] = await counters(cloud.prod!.netns);
      return { fromCloudbox, fromElsewhere };
    },
    cutLink: async () => void (await topology.exec(topology.netns.lan, 'nft', ['-f', '-'], { input: cut })),
    restoreLink: async () => void (await topology.exec(topology.netns.lan, 'nft', ['delete', 'table', 'inet', 'hangar_fleet_cut'], { reject: false })),
    logs: () => procs.logs(),
    close,
  };
  return fleet;
}

/** The fleet's pools: both boxes' configs list them all (each agent serves its own). */
const POOLS = `pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: large, labels: [self-hosted, linux, x64, large]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}`;

/** What a box's agent left: VM state folders, VM cgroups under its slice, taps. */
export async function seedLeftovers(f: SeedFleet): Promise<string[]> {
  const found: string[] = [];
  for (const b of Object.values(f.boxes)) {
    const caps = await createCaps({ mode: 'auto', sliceName: b.slice, cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
    const vms = readdirSafe(join(b.stateDir, 'vms'));
    found.push(...vms.map((v) => `${b.name}: VM state ${v}`), ...(await caps.listVmCgroups()).map((c) => `${b.name}: cgroup ${c}`), ...(await f.taps(b.name)).map((t) => `${b.name}: tap ${t}`));
  }
  return found;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
