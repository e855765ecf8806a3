import { loadConfig, requireControl } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';
import { buildControl } from './control-app.js';
import { createLogger } from './logger.js';
import { onShutdown } from './shutdown.js';
import { warnAtStart } from './startup-warnings.js';

/** `hangar control --config FILE`: listen until SIGTERM/SIGINT, then drain and exit. */
export async function runControl(configFile: string): Promise<void> {
  const doc = loadConfig(configFile);
  const config = requireControl(doc);
  const secrets = readControlSecrets(config);
  const logger = createLogger('hangar-control', config.log.level);
  await warnAtStart(logger, { input: doc.input });
  const control = await buildControl(config, secrets, logger);
  logger.info({ pools: config.pools.map((p) => p.name) }, 'control started');
  onShutdown(logger, () => control.close());
}
