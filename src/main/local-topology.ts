/**
 * The local fleet's network: namespaces of its own, so no part of the demo or the end-to-end
 * tests lives in the machine's namespace and nothing they do can reach past them.
 *
 *   host netns (one per host; Redis, control, agent, the VMs' taps)
 *     eth0 192.168.77.10+i/24, default via the router
 *     [prod] 10.77.0.1/24 ── prod netns: 10.77.0.10 (only for a host given `prod`)
 *   lan netns: bridge br0 with the router 192.168.77.1, a web server 192.168.77.20 and
 *     169.254.169.254; ip_forward on; wan 203.0.113.1/24, default via 203.0.113.254
 *   internet netns: 203.0.113.254 (the "ISP"), the sim 203.0.113.10, a public web server
 *     198.51.100.20; a route back to the LAN and none further, so anything else dies there
 *
 * With `homeNat` (the seed's two boxes), the LAN is a home behind carrier-grade NAT: the router
 * masquerades what leaves on its wan and the internet has no route back, so nothing on the
 * internet can open a connection to a LAN host. A host with `site: 'cloud'` is not on the LAN
 * but on the internet itself (203.0.113.20+i, a /32 behind the "ISP"), as a rented box is:
 *
 *   cloud host netns: eth0 203.0.113.20+i/32, default via 203.0.113.254 (the internet netns)
 *     [prod] 10.77.0.1/24 ── prod netns: 10.77.0.10
 *
 * Every veth is made inside the namespaces it joins (`ip -n A link add … peer … netns B`).
 * Names are `hangar-fleet-<pid>-<random>-<role>`: the pid of the process that made them, so a
 * later start removes what a crashed run left (its pid is gone) and never a live fleet's.
 * Routed, not NATed, at the router: the internet's route back stands in for the tunnel or port
 * forward that lets GitHub's webhooks reach the control at the host's LAN address.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

export const FLEET_NETNS_PREFIX = 'hangar-fleet-';

export const LAN = { subnet: '192.168.77.0/24', router: '192.168.77.1', web: '192.168.77.20', metadata: '169.254.169.254' } as const;
export const INTERNET = {
  gateway: '203.0.113.254', wan: '203.0.113.1', sim: '203.0.113.10', publicWeb: '198.51.100.20',
  /** A second public web server, the name of none the allowlist lets out. */
  publicWeb2: '198.51.100.30',
  /** The DNS server the guests' forwarders ask (agent.network.dns.upstreams). */
  dns: '203.0.113.53',
} as const;
/** The names that DNS server knows. */
export const DNS_NAMES: Readonly<Record<string, string>> = {
  'sim.example': INTERNET.sim, 'allowed.example': INTERNET.publicWeb, 'other.example': INTERNET.publicWeb2,
};
export const PROD = { gateway: '10.77.0.1', server: '10.77.0.10' } as const;
const hostAddress = (i: number) => `192.168.77.${10 + i}`;
const cloudAddress = (i: number) => `203.0.113.${20 + i}`;

/** What each of the topology's HTTP servers answers (200, this text): tests tell them apart by it. */
export const WEB_REPLIES = { router: 'router', lanWeb: 'lan-web', metadata: 'metadata', publicWeb: 'public-web', publicWeb2: 'public-web-2', prod: 'prod' } as const;

export interface TopologyHostSpec {
  /** Short role-like name (`build`, `deploy`): part of the namespace's name. */
  name: string;
  /** Give this host a production network of its own, reachable from it alone. */
  prod?: boolean;
  /** `lan` (default): behind the home router; `cloud`: an address of its own on the internet. */
  site?: 'lan' | 'cloud';
}

export interface TopologyHost {
  name: string;
  netns: string;
  /** Its address (eth0): on the LAN, or on the internet for a cloud host. */
  address: string;
  site: 'lan' | 'cloud';
  prod?: { netns: string; gateway: string; server: string };
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  /** Throw when the command fails (default true). */
  reject?: boolean;
  timeoutMs?: number;
}

export interface Topology {
  readonly id: string;
  readonly netns: { lan: string; internet: string };
  readonly hosts: readonly TopologyHost[];
  host(name: string): TopologyHost;
  /** Every namespace it made, in the order made. */
  names(): string[];
  /** Runs a command inside one of its namespaces (nsenter: /sys and the cgroups stay visible). */
  exec(netns: string, cmd: string, args: string[], o?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running command inside one of its namespaces; dispose() stops it. */
  spawn(netns: string, cmd: string, args: string[]): ResultPromise<{ reject: false; all: true; buffer: false; forceKillAfterDelay: false }>;
  /** Stops what it started and deletes every namespace; safe to call twice. */
  dispose(): Promise<void>;
}

const NETNS_TOOL = fileURLToPath(new URL('../../dist/main/netns-tool.js', import.meta.url));
const ROLE = /^[a-z][a-z0-9]{0,15}$/;

export const enterArgs = (netns: string): string[] => [`--net=/run/netns/${netns}`];

export interface TopologyOptions {
  hosts: TopologyHostSpec[];
  /** The home LAN behind carrier-grade NAT: masqueraded out, no route in (default: routed, as a port forward would be). */
  homeNat?: boolean;
}

export async function createTopology(o: TopologyOptions): Promise<Topology> {
  const names = o.hosts.map((h) => h.name);
  for (const n of names) if (!ROLE.test(n) || n === 'lan' || n === 'internet') throw new TypeError(`bad topology host name: ${n}`);
  if (new Set(names).size !== names.length || names.length === 0 || names.length > 100) throw new TypeError(`topology hosts must be 1..100 distinct names: ${names.join(', ')}`);
  await removeStaleTopologies();
  const id = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const made: string[] = [];
  const servers: ResultPromise[] = [];
  const ns = (role: string) => `${FLEET_NETNS_PREFIX}${id}-${role}`;
  let lanCount = 0, cloudCount = 0;
  const hosts: TopologyHost[] = o.hosts.map((h) => ({
    name: h.name, netns: ns(h.name), site: h.site ?? 'lan', address: h.site === 'cloud' ? cloudAddress(cloudCount++) : hostAddress(lanCount++),
    ...(h.prod ? { prod: { netns: ns(`${h.name}prod`), gateway: PROD.gateway, server: PROD.server } } : {}),
  }));

  const own = (netns: string) => {
    if (!made.includes(netns)) throw new TypeError(`${netns} is not one of this topology's namespaces`);
    return netns;
  };
  const topology: Topology = {
    id,
    netns: { lan: ns('lan'), internet: ns('internet') },
    hosts,
    host(name) {
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new TypeError(`no host ${name} in this topology`);
      return h;
    },
    names: () => [...made],
    async exec(netns, cmd, args, e = {}) {
      const r = await execa('nsenter', [...enterArgs(own(netns)), cmd, ...args], {
        reject: false, ...(e.input !== undefined ? { input: e.input } : {}), ...(e.timeoutMs ? { timeout: e.timeoutMs } : {}),
      });
      const out = { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
      if ((e.reject ?? true) && out.exitCode !== 0) throw new Error(`in ${netns}: ${cmd} ${args.join(' ')} exited ${out.exitCode}: ${out.stderr.slice(-500)}`);
      return out;
    },
    spawn(netns, cmd, args) {
      const proc = execa('nsenter', [...enterArgs(own(netns)), cmd, ...args], { reject: false, all: true, buffer: false, forceKillAfterDelay: false, cleanup: true });
      servers.push(proc);
      return proc;
    },
    async dispose() {
      for (const p of servers.splice(0)) p.kill('SIGTERM');
      await Promise.allSettled(servers);
      for (const name of made.splice(0).reverse()) await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
  try {
    await build(topology, made, hosts, o.homeNat ?? false);
    return topology;
  } catch (err) {
    await topology.dispose();
    throw err;
  }
}

async function build(t: Topology, made: string[], hosts: TopologyHost[], homeNat: boolean): Promise<void> {
  const ip = (netns: string, ...args: string[]) => execa('ip', ['-n', netns, ...args]);
  const add = async (name: string) => {
    await execa('ip', ['netns', 'add', name]);
    made.push(name);
    await ip(name, 'link', 'set', 'lo', 'up');
  };
  /** A veth from `a` to `b`, made inside them; each end addressed and up. */
  const veth = async (a: string, devA: string, addrsA: string[], b: string, devB: string, addrsB: string[]) => {
    await ip(a, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', b);
    for (const [n, dev, addrs] of [[a, devA, addrsA], [b, devB, addrsB]] as const) {
      for (const addr of addrs) await ip(n, 'addr', 'add', addr, 'dev', dev);
      await ip(n, 'link', 'set', dev, 'up');
    }
  };
  const { lan, internet } = t.netns;
  await add(lan);
  await add(internet);
  await ip(lan, 'link', 'add', 'br0', 'type', 'bridge');
  for (const addr of [`${LAN.router}/24`, `${LAN.web}/24`, `${LAN.metadata}/32`]) await ip(lan, 'addr', 'add', addr, 'dev', 'br0');
  await ip(lan, 'link', 'set', 'br0', 'up');
  await t.exec(lan, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  await veth(lan, 'wan', [`${INTERNET.wan}/24`], internet, 'eth0', [`${INTERNET.gateway}/24`, `${INTERNET.sim}/24`, `${INTERNET.publicWeb}/24`, `${INTERNET.publicWeb2}/24`, `${INTERNET.dns}/24`]);
  await ip(lan, 'route', 'add', 'default', 'via', INTERNET.gateway);
  if (homeNat) {
    // Carrier-grade NAT: out through the router's wan address, and no way in.
    await t.exec(lan, 'nft', ['-f', '-'], { input: 'table ip hangar_fleet_nat {\n chain post { type nat hook postrouting priority 100; oifname "wan" masquerade; }\n}\n' });
  } else {
    await ip(internet, 'route', 'add', LAN.subnet, 'via', INTERNET.wan);
  }
  if (hosts.some((h) => h.site === 'cloud')) await t.exec(internet, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  for (const [i, h] of hosts.entries()) {
    await add(h.netns);
    if (h.site === 'cloud') {
      // A /32 behind the internet's gateway: every packet goes through the internet netns, which routes it.
      await veth(internet, `c${i}`, [], h.netns, 'eth0', [`${h.address}/32`]);
      await ip(h.netns, 'route', 'add', INTERNET.gateway, 'dev', 'eth0');
      await ip(h.netns, 'route', 'add', 'default', 'via', INTERNET.gateway);
      await ip(internet, 'route', 'add', `${h.address}/32`, 'dev', `c${i}`);
      // The router's wan sees 203.0.113.0/24 on-link: the cloud host is behind the gateway.
      await ip(lan, 'route', 'add', `${h.address}/32`, 'via', INTERNET.gateway);
    } else {
      await veth(lan, `h${i}`, [], h.netns, 'eth0', [`${h.address}/24`]);
      await ip(lan, 'link', 'set', `h${i}`, 'master', 'br0');
      await ip(h.netns, 'route', 'add', 'default', 'via', LAN.router);
    }
    if (h.prod) {
      await add(h.prod.netns);
      await veth(h.netns, 'prod', [`${h.prod.gateway}/24`], h.prod.netns, 'eth0', [`${h.prod.server}/24`]);
    }
  }
  const web = [
    serve(t, lan, [
      { host: LAN.router, port: 80, reply: WEB_REPLIES.router },
      { host: LAN.web, port: 80, reply: WEB_REPLIES.lanWeb },
      { host: LAN.metadata, port: 80, reply: WEB_REPLIES.metadata },
    ]),
    serve(t, internet, [{ host: INTERNET.publicWeb, port: 80, reply: WEB_REPLIES.publicWeb }, { host: INTERNET.publicWeb2, port: 80, reply: WEB_REPLIES.publicWeb2 }]),
    startTool(t, internet, 'dns', [{ host: INTERNET.dns, port: 53, names: DNS_NAMES }]),
    ...hosts.flatMap((h) => (h.prod ? [serve(t, h.prod.netns, [{ host: h.prod.server, port: 80, reply: WEB_REPLIES.prod }])] : [])),
  ];
  await Promise.all(web);
}

/** The namespace's HTTP servers (netns-tool.js serve), once they listen. */
async function serve(t: Topology, netns: string, specs: { host: string; port: number; reply: string }[]): Promise<void> {
  await startTool(t, netns, 'serve', specs);
}

/** Runs netns-tool.js MODE SPECS inside `netns` and resolves once it prints `ready`. */
export async function startTool(t: Topology, netns: string, mode: 'serve' | 'bridge' | 'dns' | 'faults', specs: unknown): Promise<void> {
  const proc = t.spawn(netns, process.execPath, [NETNS_TOOL, mode, JSON.stringify(specs)]);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`netns-tool ${mode} in ${netns}: not ready after 10 s: ${out}`)), 10_000);
    proc.all.on('data', (d: Buffer) => {
      out += String(d);
      if (/^ready$/m.test(out)) (clearTimeout(timer), resolve());
    });
    void proc.then((r) => (clearTimeout(timer), reject(new Error(`netns-tool ${mode} in ${netns} exited ${r.exitCode}: ${out.slice(-500)}`))));
  });
}

/**
 * Deletes namespaces a crashed earlier run left: ours by name, and the pid in the name gone.
 * Whatever still runs inside one (a redis-server, a QEMU of that run) is killed first.
 */
export async function removeStaleTopologies(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  const stale = stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(FLEET_NETNS_PREFIX) && !pidAlive(Number(n.slice(FLEET_NETNS_PREFIX.length).split('-')[0])));
  for (const name of stale) {
    const pids = (await execa('ip', ['netns', 'pids', name], { reject: false })).stdout.split('\n').filter((p) => /^\d+$/.test(p));
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await execa('ip', ['netns', 'del', name], { reject: false });
  }
  return stale;
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
