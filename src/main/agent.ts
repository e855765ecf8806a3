import { loadConfig, requireAgent } from '../config/load.js';
import { agentUnits, requireRoot } from './agent-units.js';
import { compose } from './units.js';
import { createLogger } from './logger.js';
import { afterStart, onShutdown } from './shutdown.js';
import { warnAtStart } from './startup-warnings.js';

/** `hangar agent --config FILE`: take jobs for this host's pools until SIGTERM, then drain. */
export async function runAgent(configFile: string): Promise<void> {
  requireRoot('hangar agent');
  const doc = loadConfig(configFile);
  const config = requireAgent(doc);
  const logger = createLogger('hangar-agent', config.log.level).child({ host: config.agent.host });
  const starting = (async () => {
    await warnAtStart(logger, { input: doc.input, qemu: { runAs: config.agent.vm.runAs } });
    const units = compose(await agentUnits(config, configFile, logger), logger);
    // A unit that fails stops those started before it.
    await units.start();
    return units;
  })();
  // Set before anything is logged or started: a SIGTERM while the agent starts waits for the start, then stops its units.
  onShutdown(logger, afterStart(starting, (units) => units.stop()));
  await starting;
}
