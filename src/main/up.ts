import { loadConfig } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';
import { agentUnits, requireRoot } from './agent-units.js';
import { buildControl, type Control } from './control-app.js';
import { startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';
import { createLogger } from './logger.js';
import { afterStart, onShutdown } from './shutdown.js';
import { compose, unit, type Composed, type Unit } from './units.js';
import { upConfig, withRedis } from './up-config.js';
import { warnAtStart } from './startup-warnings.js';

/**
 * `hangar up --config FILE`: a one-box installation in one process — the control, this host's
 * agent, and a Redis of its own when the file names none (embedded-redis.ts). One SIGTERM or
 * SIGINT stops them in reverse: the agent drains its jobs first, then the control, then the
 * embedded Redis (its AOF flushed).
 */
export async function runUp(configFile: string): Promise<void> {
  requireRoot('hangar up');
  const doc = loadConfig(configFile);
  const read = upConfig(doc);
  const logger = createLogger('hangar-up', read.control.log.level);
  // Before the embedded Redis writes its own password file (0600): the operator's files only.
  await warnAtStart(logger, { input: doc.input, qemu: { runAs: read.agent.agent.vm.runAs } });
  // Started before the units are made: the agent's and the control's connections are made with its url and password.
  let units: Composed | undefined;
  let redis: EmbeddedRedis | null = null;
  const starting = (async () => {
    redis = read.embeddedRedis ? await startEmbeddedRedis(read.agent.agent.stateDir, logger) : null;
    try {
      const config = redis ? withRedis(read, redis) : read;
      const secrets = readControlSecrets(config.control);
      let control: Control | undefined;
      const parts: Unit[] = [
        ...(redis ? [embedded(redis)] : []),
        unit('control', async () => void (control = await buildControl(config.control, secrets, logger)), () => control!.close()),
        ...(await agentUnits(config.agent, configFile, logger.child({ host: config.agent.agent.host }))),
      ];
      units = compose(parts, logger);
      // A unit that fails stops those before it, the embedded Redis included.
      await units.start();
    } catch (err) {
      await redis?.stop();
      throw err;
    }
  })();
  // A SIGTERM while up starts waits for the start (a failed one stopped what it had started), then stops it all.
  onShutdown(logger, afterStart(starting, async () => units?.stop()));
  await starting;
  logger.info({ pools: read.agent.agent.pools, host: read.agent.agent.host, embeddedRedis: read.embeddedRedis }, 'up started');
}

/** The embedded Redis as the first unit (started already, above), so it is the last to stop. */
const embedded = (redis: EmbeddedRedis): Unit => unit('embedded-redis', async () => undefined, () => redis.stop());
