import { join } from 'node:path';
import { execa } from 'execa';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { testPrefix } from '../helpers/redis.js';
import { processesWith } from '../vm/helpers.js';

/**
 * Outbound only, end to end: `hangar agent` in a build (then a deploy) host's namespace, real
 * microVMs whose jobs try everything a hostile job would, a LAN with a router, a web server and
 * 169.254.169.254, a prod network, and an "internet" of documentation addresses with the sim, a
 * public web server and a DNS server. No packet leaves the namespaces the fleet made.
 */
interface SimJob { id: number; status: string; conclusion: string | null; output: string }
interface EgressRecord { denied: { daddr: string; proto: string; dport: number; packets: number; firstAt: number; lastAt: number }[]; dns: { names: { name: string; allowed: number; denied: number }[] } }

// The guest's probes: busybox sh. A connection that opens prints OPEN, one refused or timed out SHUT.
const PROBES = `
tcp() { if timeout 6 nc -w 2 "$1" "$2" </dev/null >/dev/null 2>&1; then echo "OPEN $1:$2"; else echo "SHUT $1:$2"; fi; }
dns() { if timeout 6 nslookup "$1" $2 >/tmp/ns 2>&1 && grep -q "Address.*[0-9]" /tmp/ns && ! grep -qi "can't\\|NXDOMAIN\\|REFUSED" /tmp/ns; then echo "RESOLVED $1 $(grep -o '[0-9]*\\.[0-9]*\\.[0-9]*\\.[0-9]*' /tmp/ns | tail -n 1)"; else echo "UNRESOLVED $1"; fi; }
GW=$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p' | head -n 1)
ME=$(ip -4 -o addr show scope global | sed -n 's/.* inet \\([0-9.]*\\)\\/.*/\\1/p' | head -n 1)
echo "GW=$GW ME=$ME"
`;

async function startIsolated(role: 'build' | 'deploy', prefix: string): Promise<Fleet> {
  const fleet = await startFleet({ prefix, slots: 2, timeoutMinutes: 2, role, simByName: true });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'site', visibility: 'private' });
  await fleet.startAgent();
  return fleet;
}

function helpers(f: () => Fleet) {
  const job = (id: number) => f().api<SimJob>('GET', `/_sim/jobs/${id}`);
  const run = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
    f().api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, jobs, ...extra }).then((r) => r.jobs.map((j) => j.id));
  const done = async (ids: number[]) => {
    await expect.poll(async () => (await Promise.all(ids.map(job))).every((j) => j.status === 'completed'), { timeout: 240_000, interval: 500 }).toBe(true);
    return Promise.all(ids.map(job));
  };
  const egress = async (redis: Redis, prefix: string, id: number): Promise<EgressRecord> => {
    let raw: string | null = null;
    await expect.poll(async () => (raw = await redis.hget(`${prefix}:job:${id}`, 'egress')), { timeout: 30_000 }).toBeTruthy();
    return JSON.parse(raw!) as EgressRecord;
  };
  const counters = async (): Promise<Record<string, number>> => {
    const r = await f().exec(f().netns.host, 'curl', ['-s', 'http://127.0.0.1:9169/metrics']);
    const out: Record<string, number> = {};
    for (const m of r.stdout.matchAll(/^hangar_egress_packets_total\{verdict="(\w+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  };
  const lines = (j: SimJob, word: string) => [...j.output.matchAll(new RegExp(`^${word} (\\S+)`, 'gm'))].map((m) => m[1]);
  return { job, run, done, egress, counters, lines };
}

for (const role of ['build', 'deploy'] as const) {
  describe(`a guest on the ${role} host`, () => {
    let fleet: Fleet;
    let redis: Redis;
    const prefix = testPrefix();
    const h = helpers(() => fleet);

    beforeAll(async () => {
      fleet = await startIsolated(role, prefix);
      redis = fleet.redis();
    }, 300_000);
    afterAll(async () => fleet?.close(), 120_000);

    test('reaches the internet and nothing of the house; every refusal is counted and in the job\'s egress log', async () => {
      const a = fleet.addresses;
      const steps = [
        `${PROBES}
tcp ${a.publicWeb} 80; tcp ${a.sim} 80; tcp $GW 8169
tcp ${a.lanWeb} 80; tcp ${a.router} 80; tcp ${a.metadata} 80; tcp ${a.prod} 80
tcp $GW 6379; tcp $GW 8080; tcp $GW 9169; tcp ${a.host} 6379; tcp ${a.host} 8080; tcp ${a.host} 8169
dns allowed.example; dns allowed.example ${a.dns}
wget -q -O - http://${a.publicWeb}/ && echo`,
      ];
      const [id] = await h.run('acme/app', [{ name: 'probe', labels: ['self-hosted', 'build'], steps }]);
      const before = await h.counters();
      const [j] = await h.done([id!]);
      expect(j!.conclusion, j!.output).toBe('success');
      const open = h.lines(j!, 'OPEN');
      const shut = h.lines(j!, 'SHUT');
      expect(open).toEqual(expect.arrayContaining([`${a.publicWeb}:80`, `${a.sim}:80`]));
      expect(open.some((x) => x?.endsWith(':8169')), j!.output).toBe(true); // its own gateway's metadata endpoint
      const mustBeShut = [`${a.lanWeb}:80`, `${a.router}:80`, `${a.metadata}:80`, `${a.host}:6379`, `${a.host}:8080`, `${a.host}:8169`];
      if (role === 'build') mustBeShut.push(`${a.prod}:80`);
      expect(shut).toEqual(expect.arrayContaining(mustBeShut));
      expect(shut.filter((x) => /:(6379|8080|9169)$/.test(x!) && !x!.startsWith(a.host)).length).toBe(3); // the gateway's other ports
      if (role === 'deploy') expect(open).toContain(`${a.prod}:80`);
      // DNS only through the forwarder.
      expect(j!.output).toMatch(/^RESOLVED allowed\.example /m);
      expect(j!.output).toMatch(/^UNRESOLVED allowed\.example$/m);
      expect(j!.output).toContain('public-web');
      // Counted, and in the job's egress log with its destination, protocol and port.
      const after = await h.counters();
      expect((after.drop_private ?? 0) - (before.drop_private ?? 0)).toBeGreaterThan(0);
      expect((after.drop_host ?? 0) - (before.drop_host ?? 0)).toBeGreaterThan(0);
      expect((after.drop_dns ?? 0) - (before.drop_dns ?? 0)).toBeGreaterThan(0);
      const log = await h.egress(redis, prefix, id!);
      const logged = log.denied.map((d) => `${d.daddr}:${d.dport}`);
      // Every attempt the guest saw refused is in the log, and the DNS query it sent past the forwarder.
      for (const t of [...shut, `${a.dns}:53`]) expect(logged, JSON.stringify(log.denied)).toContain(t);
      for (const d of log.denied) expect(d.lastAt).toBeGreaterThanOrEqual(d.firstAt);
      expect(log.dns.names.map((n) => n.name)).toContain('allowed.example');
      // The operator's view of the same log.
      const cli = await fleet.exec(fleet.netns.host, process.execPath, ['dist/main/cli.js', 'egress', String(id), '--config', fleet.configFile]);
      expect(cli.stdout).toMatch(new RegExp(`refused\\s+tcp\\s+${a.metadata.replace(/\./g, '\\.')}:80`));
      expect(cli.stdout).toMatch(/allowed\s+allowed\.example/);
    }, 300_000);

    test('another guest and the LAN cannot connect in', async () => {
      // The listener listens until every probe has been made: then this test serves PROBES-DONE
      // on the internet, which it asks for each second (at most 120 s), rather than a fixed 40 s.
      const a = fleet.addresses;
      const listen = `${PROBES}\necho "LISTENING $ME"; nc -l -p 9000 >/dev/null 2>&1 & NC=$!
i=0; until nc -w 2 ${a.publicWeb} 8000 </dev/null 2>/dev/null | grep -q PROBES-DONE || [ $i -ge 120 ]; do sleep 1; i=$((i + 1)); done
if kill -0 $NC 2>/dev/null; then kill $NC; echo NOBODY-CAME; else echo CONNECTED-IN; fi`;
      const [listener, prober] = await h.run('acme/app', [
        { name: 'listen', labels: ['self-hosted', 'build'], steps: [listen] },
        { name: 'probe-guest', labels: ['self-hosted', 'build'], steps: [`${PROBES}\nsleep 10; for ip in 10.213.0.2 10.213.0.6; do [ "$ip" = "$ME" ] || tcp $ip 9000; done`] },
      ]);
      // From the LAN, with a route to the VM range through the host: still nothing gets in.
      await fleet.exec(fleet.netns.lan, 'ip', ['route', 'replace', '10.213.0.0/16', 'via', fleet.addresses.host]);
      let lanProbe = '';
      await expect.poll(async () => (await h.job(listener!)).status, { timeout: 120_000 }).toBe('in_progress');
      await new Promise((r) => setTimeout(r, 8000));
      for (const ip of ['10.213.0.2', '10.213.0.6']) {
        const r = await fleet.exec(fleet.netns.lan, 'node', [join(process.cwd(), 'test/helpers/netns-node.mjs'), 'probe', JSON.stringify([{ kind: 'tcp', host: ip, port: 9000, timeoutMs: 3000 }])], { reject: false });
        lanProbe += r.stdout;
      }
      await h.done([prober!]);
      const probesDone = execa('nsenter', [`--net=/run/netns/${fleet.netns.internet}`, process.execPath, join(process.cwd(), 'test/helpers/netns-node.mjs'),
        'serve', JSON.stringify([{ proto: 'tcp', host: a.publicWeb, port: 8000, reply: 'PROBES-DONE' }])], { reject: false });
      try {
        const [l, p] = await h.done([listener!, prober!]);
        expect(l!.output).toContain('NOBODY-CAME');
        expect(p!.output).toMatch(/^SHUT 10\.213\.0\.\d:9000$/m);
        expect(p!.output).not.toMatch(/^OPEN 10\.213/m);
        expect(lanProbe).not.toContain('"open"');
      } finally {
        probesDone.kill();
        await probesDone;
      }
    }, 300_000);

    if (role === 'build') {
      test('allowlist pool: a listed name works over HTTP and raw TCP; an unlisted name does not resolve; an unlisted address is refused; all logged', async () => {
        const a = fleet.addresses;
        const steps = [`${PROBES}
dns allowed.example; dns other.example
wget -q -O - http://allowed.example/ && echo
tcp allowed.example 80
tcp ${a.publicWeb2} 80`];
        const [id] = await h.run('acme/app', [{ name: 'locked', labels: ['self-hosted', 'locked'], steps }]);
        const [j] = await h.done([id!]);
        expect(j!.conclusion, j!.output).toBe('success');
        expect(j!.output).toMatch(/^RESOLVED allowed\.example /m);
        expect(j!.output).toMatch(/^UNRESOLVED other\.example$/m);
        expect(j!.output).toContain('public-web');
        expect(j!.output).toMatch(/^OPEN allowed\.example:80$/m);
        expect(j!.output).toMatch(new RegExp(`^SHUT ${a.publicWeb2.replace(/\./g, '\\.')}:80$`, 'm'));
        const log = await h.egress(redis, prefix, id!);
        expect(log.dns.names.find((n) => n.name === 'allowed.example')?.allowed).toBeGreaterThan(0);
        expect(log.dns.names.find((n) => n.name === 'other.example')?.denied).toBeGreaterThan(0);
        expect(log.denied.map((d) => `${d.daddr}:${d.dport}`)).toContain(`${a.publicWeb2}:80`);
      }, 300_000);

      test('the agent stopped, or killed and restarted: nothing remains in nftables, taps or the forwarder', async () => {
        const host = fleet.netns.host;
        const tables = async () => (await fleet.exec(host, 'nft', ['list', 'tables'])).stdout;
        expect(await tables()).toContain('inet hangar');
        fleet.agent!.kill('SIGKILL');
        await fleet.agent;
        await fleet.startAgent();
        // Converged: one table, the same chains as a fresh start.
        expect((await tables()).match(/inet hangar/g)).toHaveLength(1);
        fleet.agent!.kill('SIGTERM');
        expect((await fleet.agent)!.exitCode).toBe(0);
        expect(await tables()).not.toContain('inet hangar');
        expect(await fleet.taps()).toEqual([]);
        const sockets = (await fleet.exec(host, 'ss', ['-Hlnu', 'sport = :53'])).stdout;
        expect(sockets.trim()).toBe('');
        expect(await processesWith(fleet.stateDir)).toEqual([]);
      }, 300_000);
    }
  });
}
