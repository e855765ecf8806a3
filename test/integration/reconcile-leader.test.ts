import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { writeTestConfig } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * Two real `hangar control` processes on one Redis: one leads reconcile at a time; `kill -9` of
 * the leader (no clean release) hands over once its lock lapses, with the next fencing token.
 * And `hangar reconcile --once --dry-run` prints a plan while a control leads, changing nothing.
 */
const TTL_SECONDS = 3;

let sim: Sim;
let redis: Redis;
let prefix: string;
const procs: ResultPromise[] = [];

beforeAll(async () => {
  redis = new Redis(redisUrl());
  prefix = testPrefix();
  sim = await createSim({ appId: 9, installationId: 3 });
});

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.allSettled(procs);
  await sim.close();
  await dropPrefix(redisUrl(), prefix);
  redis.disconnect();
});

interface Replica {
  proc: ResultPromise;
  out: () => string;
  /** Each "leading reconcile" line: the time it was logged and its token. */
  leads: () => { time: number | string; fencingToken: number; replica: string }[];
}

function startReplica(file: string): Replica {
  const proc = execa('node', ['dist/main/cli.js', 'control', '--config', file], { reject: false });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return {
    proc,
    out: () => out,
    leads: () =>
      out
        .split('\n')
        .filter((l) => l.includes('"msg":"leading reconcile"'))
        .map((l) => JSON.parse(l) as { time: number | string; fencingToken: number; replica: string }),
  };
}

test('two control replicas: one leader at a time; killing the leader hands over within one lock TTL', async () => {
  const apiUrl = await sim.listen(0, '127.0.0.1');
  const { file } = writeTestConfig({
    redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, logLevel: 'info',
    reconcile: `{enabled: true, leaderTtlSeconds: ${TTL_SECONDS}}`,
  });
  const a = startReplica(file);
  const b = startReplica(file);
  const k = keys(prefix);
  await expect.poll(() => redis.get(k.leader), { timeout: 20_000 }).toMatch(/^\d+\|/);
  // Several renewals later, still exactly one replica has ever led.
  await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000));
  const leaders = [a, b].filter((r) => r.leads().length > 0);
  expect(leaders).toHaveLength(1);
  const [leader] = leaders;
  const follower = leader === a ? b : a;
  const first = leader!.leads()[0]!;
  expect(await redis.get(k.leader)).toBe(`${first.fencingToken}|${first.replica}`);

  const killedAt = Date.now();
  leader!.proc.kill('SIGKILL');
  await expect.poll(() => follower.leads().length, { timeout: TTL_SECONDS * 4000 }).toBe(1);
  const next = follower.leads()[0]!;
  // The next leadership has the next fencing token: the dead leader's writes would be refused.
  expect(next.fencingToken).toBe(first.fencingToken + 1);
  // Handed over within one TTL of the lock's last renewal: at most TTL after the kill, plus the
  // follower's asking interval (a sixth of it), plus slack for a loaded machine.
  const handover = new Date(next.time).getTime() - killedAt;
  expect(handover).toBeLessThanOrEqual(TTL_SECONDS * 1000 * (1 + 1 / 6) + 1500);
  console.log(`reconcile leader handover after kill -9: ${handover} ms (lock TTL ${TTL_SECONDS * 1000} ms)`);

  // The CLI, while a control leads: a dry run prints the plan; a real pass is refused (exit 3).
  const dry = await execa('node', ['dist/main/cli.js', 'reconcile', '--once', '--dry-run', '--config', file], { reject: false });
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toMatch(/^hosts: /m);
  expect(dry.stdout).toMatch(/^runners: /m);
  const real = await execa('node', ['dist/main/cli.js', 'reconcile', '--once', '--config', file], { reject: false });
  expect(real.exitCode).toBe(3);
  expect(real.stderr).toContain('another control leads reconcile');
  expect(await redis.get(k.leader)).toBe(`${next.fencingToken}|${next.replica}`);
  const noOnce = await execa('node', ['dist/main/cli.js', 'reconcile', '--config', file], { reject: false });
  expect(noOnce.exitCode).toBe(2);
});
