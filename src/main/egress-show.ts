import { Redis } from 'ioredis';
import type { EgressRecord } from '../agent/guest-network.js';
import { loadConfig, validateConfig } from '../config/load.js';
import { redisTarget } from '../config/secrets.js';
import { HangarError } from '../domain/errors.js';
import { readJobRecord } from '../jobs/record.js';
import { keys } from '../queue/keys.js';
import { connectRedis } from '../queue/redis-connect.js';

/**
 * `hangar egress WORKFLOW_JOB_ID --config FILE [--json]`: what a job's VM tried to reach and was
 * refused, and the names it asked for, as the agent recorded them from the host's own table and
 * DNS forwarder (nothing the guest said).
 */
export async function egressShow(id: string, configFile: string, json: boolean): Promise<void> {
  const config = validateConfig(loadConfig(configFile));
  const target = redisTarget(config.redis);
  const redis = new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1, ...target.options });
  try {
    await connectRedis(redis, config.redis.url);
    const record = /^\d+$/.test(id) ? await readJobRecord(redis, keys(config.redis.prefix), Number(id)) : null;
    if (!record?.egress) throw new HangarError('not-found', `job ${id}: no egress log (unknown job, not run yet, or run with isolation off)`);
    const log = record.egress as EgressRecord;
    if (json) return void process.stdout.write(`${JSON.stringify(log)}\n`);
    const at = (ms: number) => new Date(ms).toISOString().slice(11, 19);
    const lines = [`job ${id}: ${log.denied.length} refused destination(s)${log.deniedOverflow ? ` (+${log.deniedOverflow} not kept)` : ''}`];
    for (const d of log.denied) lines.push(`  refused  ${d.proto.padEnd(4)} ${`${d.daddr}${d.dport ? `:${d.dport}` : ''}`.padEnd(22)} ${String(d.packets).padStart(5)} pkt  ${at(d.firstAt)}–${at(d.lastAt)}`);
    lines.push(`names asked: ${log.dns.names.length}${log.dns.overflow ? ` (+${log.dns.overflow} not kept)` : ''}`);
    for (const n of log.dns.names) {
      const how = n.denied > 0 ? 'refused' : n.failed > 0 && n.allowed === 0 ? 'failed ' : 'allowed';
      lines.push(`  ${how}  ${n.name.padEnd(40)} ×${n.count}  ${n.answers.join(' ')}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    redis.disconnect();
  }
}
