// The bench's own little world, made of network namespaces it creates and deletes
// (`hangar-be-<random>-…`); nothing of it exists in the machine's own namespace, and no
// address of it is routed anywhere else:
//
//   guest VM ─ tap hg-… ┐
//                       ├ host ─ up0 ──── inet0 ─ inet
//   vguest ─ eth0 ═ hg-…┘  (table inet hangar,      198.51.100.20   the "internet" server
//                           203.0.113.1)            192.168.77.10   a private address (a LAN stand-in)
//                                                   203.0.113.254
//
// `host` holds the tap (made per VM by the measuring child) and Hangar's table; `vguest` is a
// "guest" without QEMU, on a veth named like a tap, for the rules at kernel speed. The private
// address sits in `inet` beside the server, so that with masquerade only it answers and the
// isolation check can tell "refused" from "never reachable".
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** The VM range, as the agent's default: the VM gets its slot-0 /30, the veth guest slot 1's. */
export const RANGE = '10.213.0.0/16';
export const SERVER_IP = '198.51.100.20';
export const PRIVATE_IP = '192.168.77.10';
export const UPLINK = 'up0';
export const UPLINK_IP = '203.0.113.1';
const INET_IP = '203.0.113.254';

const sh = (cmd, args, input) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined ? { input } : {}) });

/**
 * Makes the namespaces and their links. `veth` is the veth guest's link ({ dev, hostIp, guestIp,
 * prefixLen }, a /30 of the VM range), or null for none. Returns the names and `dispose()`.
 */
export function createTopology({ veth }) {
  const prefix = `hangar-be-${randomBytes(3).toString('hex')}`;
  const made = [];
  const ns = (role) => {
    const name = `${prefix}-${role}`;
    sh('ip', ['netns', 'add', name]);
    made.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  };
  const ip = (name, ...args) => sh('ip', ['-n', name, ...args]);
  const topo = {
    prefix,
    made,
    host: null,
    inet: null,
    vguest: null,
    /** Every process in one of our namespaces (ours by construction): pids, for the clean-up. */
    pids() {
      return made.flatMap((n) => {
        try {
          return sh('ip', ['netns', 'pids', n]).split('\n').filter(Boolean).map(Number);
        } catch {
          return [];
        }
      });
    },
    /** Deletes every namespace made (their links, taps and nft tables go with them); returns those left. */
    dispose() {
      const left = [];
      for (const name of made.splice(0).reverse()) {
        try {
          sh('ip', ['netns', 'del', name]);
        } catch {
          left.push(name);
        }
      }
      return left;
    },
  };
  try {
    topo.host = ns('host');
    topo.inet = ns('inet');
    // Created inside the namespaces: no end of a link ever exists in the machine's own.
    ip(topo.host, 'link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', 'inet0', 'netns', topo.inet);
    ip(topo.host, 'addr', 'add', `${UPLINK_IP}/24`, 'dev', UPLINK);
    for (const a of [`${INET_IP}/24`, `${SERVER_IP}/24`, `${PRIVATE_IP}/24`]) ip(topo.inet, 'addr', 'add', a, 'dev', 'inet0');
    ip(topo.host, 'link', 'set', UPLINK, 'up');
    ip(topo.inet, 'link', 'set', 'inet0', 'up');
    // The host's way out; `inet` needs none: masqueraded traffic comes from 203.0.113.1, on-link.
    ip(topo.host, 'route', 'add', 'default', 'via', INET_IP);
    if (veth) {
      topo.vguest = ns('vguest');
      ip(topo.host, 'link', 'add', veth.dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', topo.vguest);
      ip(topo.host, 'addr', 'add', `${veth.hostIp}/${veth.prefixLen}`, 'dev', veth.dev);
      ip(topo.vguest, 'addr', 'add', `${veth.guestIp}/${veth.prefixLen}`, 'dev', 'eth0');
      ip(topo.host, 'link', 'set', veth.dev, 'up');
      ip(topo.vguest, 'link', 'set', 'eth0', 'up');
      ip(topo.vguest, 'route', 'add', 'default', 'via', veth.hostIp);
    }
  } catch (err) {
    topo.dispose();
    throw err;
  }
  return topo;
}

/** Namespaces of earlier runs of this bench still on the machine (a run that was kill -9ed). */
export function leftoverNamespaces() {
  try {
    return sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter((n) => n?.startsWith('hangar-be-'));
  } catch {
    return [];
  }
}
