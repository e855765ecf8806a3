import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AgentConfig, PoolConfig } from '../config/schema.js';
import { expandAllowlist } from '../config/egress.js';
import { parseDnsUpstream } from '../config/network-checks.js';
import { openDnsForwarder, type DnsForwarder } from '../net/dns-forwarder.js';
import { EgressLog, type EgressLogJSON } from '../net/egress-log.js';
import type { Isolation } from '../net/isolation-apply.js';
import type { Egress, VmElement } from '../net/isolation-elements.js';
import type { IsolationHost, Verdict } from '../net/isolation.js';
import type { Tap } from '../net/host-network.js';

/**
 * The host's guest isolation, as the agent uses it: the one nft table (applied at start,
 * removed at a clean stop), and per VM its elements in that table, its DNS forwarder on the
 * gateway (the guest's only resolver) and its egress log (denied connections from the table,
 * names asked from the forwarder). Nothing here trusts the guest: the log is read from the
 * host's own table and sockets.
 */
export interface EgressRecord {
  /** Every denied attempt: destination, protocol, port, packets, first and last time seen. */
  denied: DeniedLine[];
  /** Denied lines beyond the bound, only counted. */
  deniedOverflow: number;
  dns: EgressLogJSON['dns'];
}

export interface DeniedLine {
  daddr: string;
  proto: string;
  dport: number;
  packets: number;
  firstAt: number;
  lastAt: number;
}

export interface AttachedVm {
  /** Stops the forwarder, takes the egress log, cuts the tap off. Never throws. */
  detach(): Promise<EgressRecord>;
}

const DENIED_LINES = 200;
const POLL_MS = 2000;

/** `allow_<pool>` as nft wants it: a-z 0-9 _, at most 24 after the prefix (long names get a hash). */
export function allowSetName(pool: string): string {
  const base = pool.replace(/-/g, '_');
  if (base.length <= 24) return `allow_${base}`;
  return `allow_${base.slice(0, 17)}_${createHash('sha256').update(pool).digest('hex').slice(0, 6)}`;
}

export function isolationHost(agent: AgentConfig, pools: readonly PoolConfig[], dnsPort: number): IsolationHost {
  const served = pools.filter((p) => agent.pools.includes(p.name));
  return {
    range: agent.network.range,
    metadataPort: agent.network.metadataPort,
    dnsPort,
    role: agent.role,
    productionCidrs: agent.network.productionCidrs,
    allowSets: served.filter((p) => p.egress.mode === 'allowlist').map((p) => allowSetName(p.name)),
  };
}

export class GuestNetwork {
  private readonly upstreams: { host: string; port: number }[];

  constructor(
    private readonly isolation: Isolation,
    private readonly host: IsolationHost,
    upstreams: readonly string[],
    private readonly logger: Logger,
  ) {
    this.upstreams = upstreams.map((u) => {
      const p = parseDnsUpstream(u);
      if (!p.ok) throw new TypeError(`agent.network.dns.upstreams: ${p.message}`);
      return { host: p.address, port: p.port };
    });
  }

  /** The table, in one transaction, with no VM in it (the agent removed every VM of an earlier run). */
  start(): Promise<void> {
    return this.isolation.apply(this.host, []);
  }

  stop(): Promise<void> {
    return this.isolation.remove();
  }

  counters(): Promise<Record<Verdict, { packets: number; bytes: number }>> {
    return this.isolation.counters();
  }

  async attach(vmId: string, link: Tap, pool: PoolConfig): Promise<AttachedVm> {
    const log = this.logger.child({ vmId, tap: link.tap });
    const allowSet = pool.egress.mode === 'allowlist' ? allowSetName(pool.name) : null;
    const egress: Egress = allowSet ? { allowSet } : 'internet';
    const vm: VmElement = { tap: link.tap, guestIp: link.guestIp, gatewayIp: link.hostIp, egress };
    await this.isolation.addVm(vm);
    const dnsLog = new EgressLog();
    let forwarder: DnsForwarder;
    try {
      forwarder = await openDnsForwarder({
        hostIp: link.hostIp, guestIp: link.guestIp, port: this.host.dnsPort ?? 53, upstreams: this.upstreams,
        egress: pool.egress.mode === 'allowlist' ? { mode: 'allowlist', allow: expandAllowlist(pool.egress.allow) } : { mode: 'internet' },
        logger: log,
        onQuery: (e) => dnsLog.addDns(e),
        allowAddresses: (ips, ttl) => this.isolation.allow(allowSet!, ips, ttl),
      });
    } catch (err) {
      await this.isolation.removeVm(link.tap).catch(() => undefined);
      throw err;
    }
    const denied = new DeniedBook();
    const poll = setInterval(() => void this.isolation.denied(link.tap).then((d) => denied.add(d), () => undefined), POLL_MS);
    return {
      detach: async () => {
        clearInterval(poll);
        await forwarder.close().catch(() => undefined);
        // Read last, then cut off: nothing the guest did after the read can reach anything.
        await this.isolation.denied(link.tap).then((d) => denied.add(d), (err: Error) => log.warn({ err: err.message }, 'egress log could not be read'));
        await this.isolation.removeVm(link.tap).catch((err: Error) => log.error({ err: err.message }, 'vm could not be removed from the isolation table'));
        await this.isolation.clearDenied(link.tap).catch(() => undefined);
        return { ...denied.toJSON(), dns: dnsLog.toJSON().dns };
      },
    };
  }
}

/** Denied lines of one tap as polled: the table knows when each was last seen; the first poll that saw it is its first time. */
class DeniedBook {
  private readonly lines = new Map<string, DeniedLine>();
  private readonly beyond = new Set<string>();

  add(attempts: readonly { daddr: string; proto: string; dport: number; packets: number; lastSeenSecondsAgo: number }[]): void {
    const now = Date.now();
    for (const a of attempts) {
      const key = `${a.daddr}|${a.proto}|${a.dport}`;
      const lastAt = now - a.lastSeenSecondsAgo * 1000;
      const seen = this.lines.get(key);
      if (seen) {
        seen.packets = Math.max(seen.packets, a.packets);
        seen.lastAt = Math.max(seen.lastAt, lastAt);
      } else if (this.lines.size < DENIED_LINES) {
        this.lines.set(key, { daddr: a.daddr, proto: a.proto, dport: a.dport, packets: a.packets, firstAt: lastAt, lastAt });
      } else if (this.beyond.size < 100_000) this.beyond.add(key);
    }
  }

  toJSON(): { denied: DeniedLine[]; deniedOverflow: number } {
    return { denied: [...this.lines.values()].sort((a, b) => a.firstAt - b.firstAt), deniedOverflow: this.beyond.size };
  }
}
