/**
 * One job's egress log, in memory and bounded: what the job's VM asked the DNS forwarder (each
 * name, how often, when first and last, whether it was allowed) — facts seen by the host from the
 * VM's own socket, nothing the guest reports. A guest that asks for endless distinct names
 * cannot grow it: past `names` distinct names, further queries for new names only count in
 * `overflow`. Kept with the job's record through `toJSON()`; denied connection attempts (from the
 * nftables log) belong here too, in a section of their own, when that part lands.
 */
export type DnsVerdict = 'allowed' | 'denied' | 'failed';

/** One query as the forwarder saw it: `at` in epoch ms, `answers` the answer's IPv4 addresses. */
export interface DnsQueryEntry {
  at: number;
  name: string;
  type: string;
  decision: DnsVerdict;
  answers: string[];
}

export interface DnsNameRecord {
  name: string;
  count: number;
  allowed: number;
  denied: number;
  failed: number;
  firstAt: number;
  lastAt: number;
  /** Query types asked for this name (at most `typesPerName`). */
  types: string[];
  /** Distinct addresses answered for this name (at most `answersPerName`). */
  answers: string[];
}

export interface EgressLogJSON {
  dns: {
    names: DnsNameRecord[];
    /** Every query recorded, kept or not. */
    queries: number;
    /** Queries for names beyond the cap of distinct names: counted, not kept. */
    overflow: number;
  };
}

export interface EgressLogLimits {
  names: number;
  typesPerName: number;
  answersPerName: number;
}

export const EGRESS_LOG_LIMITS: EgressLogLimits = { names: 500, typesPerName: 8, answersPerName: 16 };

/** Longest name kept as asked; a valid DNS name is at most 253 characters. */
const NAME_CHARS = 253;

export class EgressLog {
  private readonly limits: EgressLogLimits;
  private readonly names = new Map<string, DnsNameRecord>();
  private queries = 0;
  private overflow = 0;

  constructor(limits: Partial<EgressLogLimits> = {}) {
    this.limits = { ...EGRESS_LOG_LIMITS, ...limits };
  }

  /** Takes a forwarder's `onQuery` entry; never throws. */
  addDns(e: DnsQueryEntry): void {
    this.queries++;
    const name = e.name.slice(0, NAME_CHARS);
    let r = this.names.get(name);
    if (!r) {
      if (this.names.size >= this.limits.names) {
        this.overflow++;
        return;
      }
      r = { name, count: 0, allowed: 0, denied: 0, failed: 0, firstAt: e.at, lastAt: e.at, types: [], answers: [] };
      this.names.set(name, r);
    }
    r.count++;
    r[e.decision]++;
    r.firstAt = Math.min(r.firstAt, e.at);
    r.lastAt = Math.max(r.lastAt, e.at);
    addBounded(r.types, e.type, this.limits.typesPerName);
    for (const a of e.answers) addBounded(r.answers, a, this.limits.answersPerName);
  }

  toJSON(): EgressLogJSON {
    const names = [...this.names.values()].map((r) => ({ ...r, types: [...r.types], answers: [...r.answers] }));
    return { dns: { names, queries: this.queries, overflow: this.overflow } };
  }
}

function addBounded(list: string[], value: string, cap: number): void {
  if (list.length < cap && !list.includes(value)) list.push(value);
}
