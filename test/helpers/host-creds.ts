import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { redisTarget } from '../../src/config/secrets.js';

/** The real CLI, as an operator runs it (built: dist/). */
export const hangar = (args: string[]) => execa('node', ['dist/main/cli.js', ...args], { reject: false, timeout: 20_000 });

/** A host's two credentials as `hangar host add` made them, and what it printed. */
export interface EnrolledHost {
  name: string;
  /** Its Redis ACL user. */
  user: string;
  added: Awaited<ReturnType<typeof hangar>>;
  token(): string;
  password(): string;
  /** A connection as its Redis user, the way the printed agent config says (url with the user, password from its file). */
  redis(opts?: { maxRetriesPerRequest?: number | null }): Redis;
}

export async function enrolHost(o: { name: string; role: 'build' | 'deploy'; pools: string[]; configFile: string; out: string }): Promise<EnrolledHost> {
  const added = await hangar(['host', 'add', o.name, '--role', o.role, '--pools', o.pools.join(','), '--config', o.configFile, '--out', o.out]);
  if (added.exitCode !== 0) throw new Error(`hangar host add ${o.name} failed: ${added.stderr}`);
  const read = (f: string) => readFileSync(join(o.out, f), 'utf8').trim();
  return {
    name: o.name,
    user: `hangar-host-${o.name}`,
    added,
    token: () => read(`${o.name}.token`),
    password: () => read(`${o.name}.redis-password`),
    redis(opts = {}) {
      const url = /^ {2}url: (\S+)$/m.exec(added.stdout)![1]!;
      const passwordFile = /^ {2}passwordFile: (\S+)$/m.exec(added.stdout)![1]!;
      const target = redisTarget({ url, passwordFile });
      const r = new Redis(target.url, { ...target.options, maxRetriesPerRequest: opts.maxRetriesPerRequest === undefined ? 1 : opts.maxRetriesPerRequest, retryStrategy: () => null });
      r.on('error', () => undefined);
      return r;
    },
  };
}

/** Redis's ACL LOG (its refusals, with user, reason and object), as records. */
export async function aclLog(admin: Redis): Promise<Record<string, unknown>[]> {
  const log = (await admin.call('ACL', 'LOG', '128')) as unknown[][];
  return log.map((e) => Object.fromEntries(Array.from({ length: e.length / 2 }, (_, i) => [String(e[2 * i]), e[2 * i + 1]])));
}
