import { loadConfig, requireControl } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';
import { buildControl } from './control-app.js';
import { createLogger } from './logger.js';
import { afterStart, onShutdown } from './shutdown.js';
import { warnAtStart } from './startup-warnings.js';

/** `hangar control --config FILE`: listen until SIGTERM/SIGINT, then drain and exit. */
export async function runControl(configFile: string): Promise<void> {
  const doc = loadConfig(configFile);
  const config = requireControl(doc);
  const secrets = readControlSecrets(config);
  const logger = createLogger('hangar-control', config.log.level);
  const building = (async () => {
    await warnAtStart(logger, { input: doc.input });
    return buildControl(config, secrets, logger);
  })();
  // Set before anything is logged or opened: a SIGTERM while the control starts waits for the
  // start, then closes what it opened (and exits 0), instead of killing it half made.
  onShutdown(logger, afterStart(building, (c) => c.close()));
  await building;
  logger.info({ pools: config.pools.map((p) => p.name) }, 'control started');
}
