import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isOurRedis } from '../../src/main/embedded-redis.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { testPrefix } from '../helpers/redis.js';
import { processesWith } from '../vm/helpers.js';

/**
 * `hangar up` end to end: one process runs the control and the agent, with the Redis it embeds
 * (the fleet's config names no redis.url), in the fleet's build host; `hangar sim` is GitHub.
 * One job runs through a microVM, then one SIGTERM stops it all, and afterwards nothing it
 * started is left: not its redis-server, not QEMU, not any other child.
 */
let fleet: Fleet;
/** Every process seen under `hangar up` while it ran: pid → its command line (to tell a reused pid apart). */
const seen = new Map<number, string>();
let sampling: NodeJS.Timeout | undefined;

interface SimJob { id: number; status: string; conclusion: string | null; output: string }
const job = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const readOr = (file: string) => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};
const pids = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
/** Alive and still the process we saw (not a zombie, not a pid given to another since). */
const stillThere = (pid: number, cmdline: string) => {
  const stat = readOr(`/proc/${pid}/stat`);
  return stat !== '' && !/^\d+ \(.*\) Z/.test(stat) && readOr(`/proc/${pid}/cmdline`) === cmdline;
};

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of pids()) {
    // stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const ppid = Number(readOr(`/proc/${pid}/stat`).replace(/^.*\) /s, '').split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: number[] = [];
  const walk = (p: number) => (children.get(p) ?? []).forEach((c) => (out.push(c), walk(c)));
  walk(root);
  return out;
}

beforeAll(async () => {
  fleet = await startFleet({ up: true, prefix: testPrefix(), slots: 1, timeoutMinutes: 1 });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
}, 300_000);

afterAll(async () => {
  clearInterval(sampling);
  await fleet?.close();
}, 120_000);

describe('hangar up', () => {
  test('with no redis.url: its own Redis, one job through a microVM, then SIGTERM leaves no process behind', async () => {
    expect(readFileSync(fleet.configFile, 'utf8')).not.toMatch(/url: "redis/);
    await fleet.startUp();
    const up = fleet.up!;
    const upPid = up.pid!;
    seen.set(upPid, readOr(`/proc/${upPid}/cmdline`));
    sampling = setInterval(() => {
      for (const pid of descendants(upPid)) {
        // An empty command line: gone (or a zombie) before it could be read; nothing to tell it by.
        const cmd = readOr(`/proc/${pid}/cmdline`);
        if (!seen.has(pid) && cmd !== '') seen.set(pid, cmd);
      }
    }, 100);

    // The embedded Redis: a child of up, in the state dir, named in its pidfile.
    const redisDir = join(fleet.stateDir, 'redis');
    const redisPid = Number(readFileSync(join(redisDir, 'redis.pid'), 'utf8'));
    expect(isOurRedis(redisPid, redisDir)).toBe(true);
    expect(descendants(upPid)).toContain(redisPid);
    expect(fleet.logs()).toMatch(/embedded redis started/);

    const { jobs } = await fleet.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', {
      repo: 'acme/app', jobs: [{ name: 'one box', labels: ['self-hosted', 'build'], steps: ['echo HANGAR-UP-$((40 + 2))'] }],
    });
    const id = jobs[0]!.id;
    await expect.poll(async () => (await job(id)).status, { timeout: 240_000, interval: 500 }).toBe('completed');
    const done = await job(id);
    expect(done.conclusion).toBe('success');
    expect(done.output).toContain('HANGAR-UP-42');
    // The job ran in a VM that up started (QEMU among its descendants).
    expect([...seen.values()].some((c) => c.includes('qemu'))).toBe(true);

    up.kill('SIGTERM');
    const exit = await up;
    clearInterval(sampling);
    expect(exit.exitCode).toBe(0);
    // Stopped in order: the agent drained first, then the control, then the embedded Redis.
    const stops = [...fleet.logs().matchAll(/"unit":"([a-z-]+)"[^\n]*"msg":"unit stopped"/g)].map((m) => m[1]);
    const at = (name: string) => stops.lastIndexOf(name);
    expect(at('agent')).toBeGreaterThanOrEqual(0);
    expect(at('agent')).toBeLessThan(at('control'));
    expect(at('control')).toBeLessThan(at('embedded-redis'));

    // Nothing left: no process seen under up, none with the state dir on its command line or as its working directory.
    await expect.poll(() => [...seen].filter(([pid, cmd]) => stillThere(pid, cmd)).map(([pid, cmd]) => `${pid} ${cmd.replace(/\0/g, ' ')}`), { timeout: 10_000 }).toEqual([]);
    expect(seen.size).toBeGreaterThanOrEqual(3); // up, its redis-server, QEMU at least
    expect(await processesWith(fleet.stateDir)).toEqual([]);
    const inStateDir = pids().filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`).startsWith(fleet.stateDir);
      } catch {
        return false;
      }
    });
    expect(inStateDir).toEqual([]);
    expect(existsSync(join(redisDir, 'redis.pid'))).toBe(false);
    // The secret stayed in its file: on no command line up or its children had.
    const password = readFileSync(join(redisDir, 'password'), 'utf8').trim();
    expect([...seen.values()].filter((c) => c.includes(password))).toEqual([]);
    expect(fleet.logs()).not.toContain(password);
  }, 360_000);
});
