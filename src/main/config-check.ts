import { loadConfig } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';

/** `hangar config check FILE`: exit 0 and a summary, or exit 1 and every problem. */
export async function configCheck(file: string): Promise<void> {
  const config = loadConfig(file);
  readControlSecrets(config);
  const pools = config.pools.map((p) => `${p.name}${p.deploy ? ' (deploy)' : ''}`).join(', ');
  process.stdout.write(`${file}: ok: ${config.pools.length} pool(s): ${pools}\n`);
}
