/**
 * The local fleet's network (src/main/local-topology.ts), as root: who answers whom, nothing of
 * it in the machine's own namespace, nothing left after dispose, and a crashed run's namespaces
 * removed at the next start (a live run's never). Needs dist/ (its servers run netns-tool.js).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTopology, FLEET_NETNS_PREFIX, INTERNET, LAN, PROD, startTool, WEB_REPLIES, type Topology } from '../../src/main/local-topology.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const machine = () => ({ links: sh('ip', ['-o', 'link']), addrs: sh('ip', ['-o', 'addr']), routes: sh('ip', ['route']) });
const ours = () => sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(FLEET_NETNS_PREFIX));

let t: Topology;
let before: ReturnType<typeof machine>;
// A namespace "left" by a run whose pid no longer exists (above any pid_max), and one of a live process (pid 1).
const DEAD = `${FLEET_NETNS_PREFIX}4194999-dead-lan`;
const LIVE = `${FLEET_NETNS_PREFIX}1-live-lan`;

beforeAll(async () => {
  before = machine();
  for (const n of [DEAD, LIVE]) sh('ip', ['netns', 'add', n]);
  t = await createTopology({ hosts: [{ name: 'build' }, { name: 'deploy', prod: true }] });
}, 60_000);

afterAll(async () => {
  await t?.dispose();
  sh('ip', ['netns', 'del', LIVE]);
});

const get = async (netns: string, address: string) => {
  const r = await t.exec(netns, 'curl', ['-s', '-m', '2', `http://${address}/`], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : `curl exit ${r.exitCode}`;
};

test('a crashed run\'s namespaces are removed at start; a live process\'s are not', () => {
  expect(ours()).not.toContain(DEAD);
  expect(ours()).toContain(LIVE);
});

test('the hosts reach the LAN and the internet; only the deploy host reaches prod', async () => {
  for (const h of t.hosts) {
    expect(await get(h.netns, LAN.router)).toBe(WEB_REPLIES.router);
    expect(await get(h.netns, LAN.web)).toBe(WEB_REPLIES.lanWeb);
    expect(await get(h.netns, LAN.metadata)).toBe(WEB_REPLIES.metadata);
    expect(await get(h.netns, INTERNET.publicWeb)).toBe(WEB_REPLIES.publicWeb);
  }
  expect(await get(t.host('deploy').netns, PROD.server)).toBe(WEB_REPLIES.prod);
  expect(await get(t.host('build').netns, PROD.server)).toMatch(/^curl exit/);
  // The machine's own address is nowhere in the fleet's world.
  const own = /inet (\d+\.\d+\.\d+\.\d+)\/\d+ .*scope global/.exec(before.addrs)?.[1];
  if (own) expect(await get(t.host('build').netns, own)).toMatch(/^curl exit/);
});

test('the internet routes back to the LAN (webhooks reach the control at a host\'s LAN address)', async () => {
  const route = await t.exec(t.netns.internet, 'ip', ['route', 'get', t.host('build').address]);
  expect(route.stdout).toContain(`via ${INTERNET.wan}`);
  const none = await t.exec(t.netns.internet, 'ip', ['route', 'get', '192.0.2.99'], { reject: false });
  expect(none.exitCode).not.toBe(0);
});

test('exec refuses a namespace that is not the topology\'s', async () => {
  await expect(t.exec(LIVE, 'true', [])).rejects.toThrow(/not one of this topology's namespaces/);
});

test('nothing of it is in the machine\'s namespace, and dispose leaves nothing', async () => {
  expect(machine()).toEqual(before);
  const names = t.names();
  expect(names).toHaveLength(5);
  await t.dispose();
  await t.dispose();
  expect(ours().filter((n) => names.includes(n))).toEqual([]);
  expect(machine()).toEqual(before);
});

describe('the seed\'s two boxes: a home LAN behind carrier-grade NAT, a cloud box on the internet', () => {
  let s: Topology;
  beforeAll(async () => {
    s = await createTopology({ hosts: [{ name: 'sidekick' }, { name: 'cloudbox', site: 'cloud', prod: true }], homeNat: true });
    await startTool(s, s.host('cloudbox').netns, 'serve', [{ host: s.host('cloudbox').address, port: 80, reply: 'cloudbox' }]);
    await startTool(s, s.host('sidekick').netns, 'serve', [{ host: s.host('sidekick').address, port: 80, reply: 'sidekick' }]);
  }, 60_000);
  afterAll(async () => s?.dispose());
  const sget = async (netns: string, address: string) => {
    const r = await s.exec(netns, 'curl', ['-s', '-m', '2', `http://${address}/`], { reject: false });
    return r.exitCode === 0 ? r.stdout.trim() : `curl exit ${r.exitCode}`;
  };

  test('the cloud box has an internet address; the home box dials out to it (seen from the router\'s wan address) and to GitHub', async () => {
    const side = s.host('sidekick'), cloud = s.host('cloudbox');
    expect(cloud.address).toBe('203.0.113.20');
    expect(side.address).toMatch(/^192\.168\.77\./);
    expect(await sget(side.netns, cloud.address)).toBe('cloudbox');
    expect(await sget(side.netns, INTERNET.publicWeb)).toBe(WEB_REPLIES.publicWeb);
    expect(await sget(cloud.netns, INTERNET.publicWeb)).toBe(WEB_REPLIES.publicWeb);
    // Masqueraded: the cloud box has no route to the LAN, so its answers can only go to the router's wan address.
    expect((await s.exec(cloud.netns, 'ip', ['route', 'get', side.address])).stdout).toContain(`via ${INTERNET.gateway}`);
  });

  test('nothing reaches the home box from outside: not from the cloud box, not from the internet; the house LAN still does', async () => {
    const side = s.host('sidekick'), cloud = s.host('cloudbox');
    expect(await sget(cloud.netns, side.address)).toMatch(/^curl exit/);
    expect(await sget(s.netns.internet, side.address)).toMatch(/^curl exit/);
    expect(await sget(s.netns.internet, INTERNET.wan)).toMatch(/^curl exit/);
    expect((await s.exec(s.netns.internet, 'ip', ['route', 'get', side.address], { reject: false })).exitCode).not.toBe(0);
    expect(await sget(s.netns.lan, side.address)).toBe('sidekick');
  });

  test('only the cloud box reaches prod', async () => {
    expect(await sget(s.host('cloudbox').netns, PROD.server)).toBe(WEB_REPLIES.prod);
    expect(await sget(s.host('sidekick').netns, PROD.server)).toMatch(/^curl exit/);
    expect(await sget(s.netns.internet, PROD.server)).toMatch(/^curl exit/);
  });
});
