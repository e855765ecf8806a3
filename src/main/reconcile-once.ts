import { pino } from 'pino';
import { loadConfig, requireControl } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';
import { createGitHubClient } from '../github/index.js';
import { JobStore } from '../jobs/intake-record.js';
import { keys } from '../queue/keys.js';
import { RedisRateBudget } from '../queue/rate-budget.js';
import { RedisRunFacts } from '../queue/run-facts.js';
import { createLoops, loopDeps } from '../reconcile/loops.js';
import { Reconciler } from '../reconcile/reconciler.js';
import type { PassReport } from '../reconcile/loop.js';
import { controlRedis } from './control-redis.js';
import { createLogger } from './logger.js';

/**
 * `hangar reconcile --once [--dry-run]`: one pass of every reconcile loop, printed as the plan
 * (one line per action) and, without --dry-run, applied. A dry run takes no lock and writes
 * nothing; a real pass needs the leader lock, so it waits for nobody: with a control leading, it
 * says so and exits 3 (the running control reconciles on its own).
 */
export async function reconcileOnce(configFile: string, opts: { dryRun: boolean; json: boolean }): Promise<void> {
  const config = requireControl(loadConfig(configFile));
  const secrets = readControlSecrets(config);
  const logger = opts.json ? pino({ level: 'silent' }) : createLogger('hangar-reconcile', config.log.level === 'info' ? 'warn' : config.log.level);
  const k = keys(config.redis.prefix);
  const conns = controlRedis(config, logger);
  await conns.start();
  try {
    const github = createGitHubClient({
      apiUrl: config.github.apiUrl, appId: config.github.appId, privateKey: secrets.appPrivateKey,
      logger, throttle: { writeSpacingMs: config.github.writeSpacingMs },
      // The same budget the controls draw from: a one-off pass is one more replica.
      budget: new RedisRateBudget(conns.redis, k.rateBudget, config.github.rateBudget),
      runFacts: new RedisRunFacts(conns.redis, k.runFacts),
    });
    const store = new JobStore(conns.redis, k, { deliveryTtlSeconds: config.control.deliveryTtlHours * 3600 });
    const reconciler = new Reconciler({
      redis: conns.redis, lockKey: k.leader, tokenKey: k.leaderToken, leaderTtlMs: config.reconcile.leaderTtlSeconds * 1000,
      loops: createLoops(loopDeps({ config, redis: conns.redis, keys: k, github, store, logger, queues: conns.queues })), logger, replica: 'cli',
    });
    const reports = await reconciler.runOnce({ dryRun: opts.dryRun });
    if (reports === null) {
      const who = await reconciler.lock.leader();
      process.stderr.write(`hangar: another control leads reconcile (${who ? `replica ${who.replica}, token ${who.token}` : 'just now'}); it reconciles on its own. --dry-run shows the plan without the lock.\n`);
      process.exitCode = 3;
      return;
    }
    process.stdout.write(opts.json ? `${JSON.stringify(reports, null, 2)}\n` : render(reports, opts.dryRun));
    if (reports.some((r) => r.error)) process.exitCode = 1;
  } finally {
    await conns.stop();
  }
}

export function render(reports: readonly PassReport[], dryRun: boolean): string {
  const lines: string[] = [];
  for (const r of reports) {
    const head = r.error ? `${r.loop}: failed: ${r.error}` : `${r.loop}: ${r.actions.length === 0 ? 'nothing to do' : `${r.actions.length} to do${dryRun ? ' (dry run: not applied)' : ''}`}`;
    lines.push(head, ...r.actions.map((a) => `  ${a}`));
    if (r.applied) lines.push(`  applied: ${Object.entries(r.applied).filter(([, n]) => n > 0).map(([a, n]) => `${a} ${n}`).join(', ') || 'none'}`);
  }
  return `${lines.join('\n')}\n`;
}
