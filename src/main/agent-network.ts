import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { GuestNetwork, isolationHost } from '../agent/guest-network.js';
import type { AgentConfig, PoolConfig } from '../config/schema.js';
import { checkRangeAgainstHost } from '../config/network-checks.js';
import { ConfigError } from '../domain/errors.js';
import { createIsolation } from '../net/isolation-apply.js';
import { VERDICTS } from '../net/isolation.js';
import { run } from '../net/run.js';

/**
 * The agent's guest network at start: refuse a VM range that overlaps one of the host's own
 * networks, put Hangar's isolation table in place (or, with isolation off, masquerade only,
 * loudly), and serve the table's counters on the agent's metrics listener.
 */
export async function startGuestNetwork(a: AgentConfig, pools: readonly PoolConfig[], configFile: string, logger: Logger): Promise<GuestNetwork | undefined> {
  const problems = checkRangeAgainstHost(a.network.range, await hostNetworks());
  if (problems.length > 0) throw new ConfigError(configFile, problems);
  if (!a.network.isolation) {
    logger.warn('agent.network.isolation is false: guests reach whatever this host routes to (masquerade only)');
    return undefined;
  }
  const guestNet = new GuestNetwork(createIsolation(), isolationHost(a, pools, 53), a.network.dns.upstreams, logger.child({ unit: 'guest-net' }));
  await guestNet.start();
  return guestNet;
}

/** The host's own IPv4 networks, but Hangar's taps (they are in the range by design). */
async function hostNetworks(): Promise<string[]> {
  const { stdout } = await run(undefined, 'ip', ['-j', '-4', 'addr', 'show']);
  const links = JSON.parse(stdout || '[]') as Array<{ ifname: string; addr_info?: Array<{ local: string; prefixlen: number; scope?: string }> }>;
  return links
    .filter((l) => !l.ifname.startsWith('hg-') && l.ifname !== 'lo')
    .flatMap((l) => (l.addr_info ?? []).map((x) => `${x.local}/${x.prefixlen}`));
}

/**
 * `GET /metrics` on agent.metricsListen: the isolation table's counters, per verdict, beside
 * whatever is in `registry` already (the agent's VMs, slots, boots and slice: metrics/agent-metrics.ts).
 */
export async function serveAgentMetrics(listen: string, guestNet: GuestNetwork | undefined, logger: Logger, registry = new Registry()): Promise<Server> {
  const packets = new Counter({ name: 'hangar_egress_packets_total', help: 'Guest packets by the isolation table\'s verdict', labelNames: ['verdict'], registers: [registry] });
  const read = async () => {
    if (!guestNet) return;
    const c = await guestNet.counters();
    packets.reset();
    for (const v of VERDICTS) packets.inc({ verdict: v }, c[v]?.packets ?? 0);
  };
  const [host, port] = splitListen(listen);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    read()
      .then(() => registry.metrics())
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((err: Error) => {
        logger.warn({ err: err.message }, 'metrics: the isolation counters could not be read');
        res.writeHead(500).end();
      });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  return server;
}

function splitListen(listen: string): [string, number] {
  const i = listen.lastIndexOf(':');
  return [listen.slice(0, i), Number(listen.slice(i + 1))];
}
