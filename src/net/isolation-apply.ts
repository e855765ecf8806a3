/**
 * Loads the isolation table and its per-VM elements through nft(8), reads its counters and the
 * egress log. Every operation converges: apply twice is one table, adding a VM that is there is
 * success, removing one that is not (or from a host without the table) is success.
 */
import { NFT_FAMILY, NFT_TABLE } from './egress-ruleset.js';
import { enableForwarding } from './host-network.js';
import { checkHost, renderIsolationRuleset, type IsolationHost, type Verdict } from './isolation.js';
import {
  checkTapName,
  parseCounters,
  parseDenied,
  parseVmEntries,
  renderAllowAdd,
  renderDeniedRemove,
  renderEntriesRemove,
  renderVmAdd,
  type CounterValue,
  type DeniedAttempt,
  type VmElement,
  type VmEntries,
} from './isolation-elements.js';
import { run } from './run.js';

export interface IsolationOptions {
  /** Run nft inside this network namespace (tests); the host's own when absent. */
  netns?: string;
}

export interface Isolation {
  /**
   * Replaces `inet hangar` (masquerade included) in one transaction, with `vms` already in
   * it, then turns on ip_forward. Elements, counters and the log of the old table are gone:
   * pass the VMs that are still alive.
   */
  apply(host: IsolationHost, vms?: VmElement[]): Promise<void>;
  /** Deletes the table; absent is success. Leaves ip_forward alone (others may rely on it). */
  remove(): Promise<void>;
  /** Lets a VM's tap speak. Converges: an entry left for the same tap (another egress, a stale address) is replaced in the same transaction. */
  addVm(vm: VmElement): Promise<void>;
  /** Cuts a tap off: deletes whatever the table holds for it. Its log lines stay (read them with `denied`). */
  removeVm(tap: string): Promise<void>;
  listVms(): Promise<VmEntries[]>;
  /** Adds addresses to an allow set (the DNS forwarder does this itself in production). */
  allow(set: string, addrs: string[], timeoutSeconds?: number): Promise<void>;
  counters(): Promise<Record<Verdict, CounterValue>>;
  /** The egress log, all guests' or one tap's. */
  denied(tap?: string): Promise<DeniedAttempt[]>;
  /** Drops one tap's log lines (after the job's record has them). */
  clearDenied(tap: string): Promise<void>;
}

const T = [NFT_FAMILY, NFT_TABLE] as const;

export function createIsolation(opts: IsolationOptions = {}): Isolation {
  const ns = opts.netns;
  let host: IsolationHost | undefined;
  const nft = (args: string[], check = true) => run(ns, 'nft', args, { check });
  const loadText = async (text: string, check = true) => (text ? (await run(ns, 'nft', ['-f', '-'], { input: text, check })).ok : true);
  const tableExists = async () => (await nft(['list', 'table', ...T], false)).ok;
  /** `nft -j list …` of an object of the table; undefined when the table is not there. */
  const listJson = async (args: string[]) => {
    const r = await nft(['-j', 'list', ...args], false);
    if (r.ok) return r.stdout;
    if (!(await tableExists())) return undefined;
    return (await nft(['-j', 'list', ...args])).stdout; // throws with nft's own words
  };
  const listVms = async () => {
    const [g, gw, e] = await Promise.all([listJson(['set', ...T, 'guests']), listJson(['set', ...T, 'gateways']), listJson(['map', ...T, 'egress'])]);
    return g === undefined || gw === undefined || e === undefined ? [] : parseVmEntries(g, gw, e);
  };
  const entriesOf = async (tap: string) => (await listVms()).find((v) => v.tap === tap);
  const denied = async (tap?: string) => {
    const json = await listJson(['set', ...T, 'denied']);
    const lines = json === undefined ? [] : parseDenied(json);
    return tap === undefined ? lines : lines.filter((l) => l.tap === tap);
  };

  return {
    async apply(h, vms = []) {
      const checked = checkHost(h);
      const text = renderIsolationRuleset(checked) + vms.map((vm) => renderVmAdd(vm, checked)).join('');
      await loadText(text);
      host = checked;
      // After the table: forwarding never runs a moment without the rules.
      await enableForwarding(ns);
    },

    async remove() {
      if (await tableExists()) await nft(['delete', 'table', ...T]);
      host = undefined;
    },

    async addVm(vm) {
      const add = renderVmAdd(vm, host);
      if (await loadText(add, false)) return;
      // Something else is there for this tap (an old egress mode, a stale address): swap it in one transaction.
      const old = await entriesOf(vm.tap);
      await loadText((old ? renderEntriesRemove(old) : '') + add);
    },

    async removeVm(tap) {
      checkTapName(tap);
      const old = await entriesOf(tap);
      if (old) await loadText(renderEntriesRemove(old));
    },

    listVms,

    async allow(set, addrs, timeoutSeconds) {
      await loadText(renderAllowAdd(set, addrs, timeoutSeconds));
    },

    async counters() {
      return parseCounters((await listJson(['counters', 'table', ...T])) ?? '{"nftables":[]}');
    },

    denied,

    async clearDenied(tap) {
      checkTapName(tap);
      const lines = await denied(tap);
      if (await loadText(renderDeniedRemove(lines), false)) return;
      // A line timed out between listing and deleting fails the whole batch: go one by one.
      for (const line of lines) await loadText(renderDeniedRemove([line]), false);
    },
  };
}
