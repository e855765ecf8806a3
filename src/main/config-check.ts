import { accessSync, constants } from 'node:fs';
import { loadConfig, requireControl } from '../config/load.js';
import { readControlSecrets } from '../config/secrets.js';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';

/**
 * `hangar config check FILE`: exit 0 and a summary, or exit 1 and every problem. Checks the
 * sections this file has: the control's (with its secret files) and the agent's.
 */
export async function configCheck(file: string): Promise<void> {
  const config = loadConfig(file);
  const roles: string[] = [];
  if (config.github || config.policy) {
    readControlSecrets(requireControl(config, file));
    roles.push('control');
  }
  if (config.agent) {
    const problems: ConfigProblem[] = [];
    for (const [path, value] of [['agent.tokenFile', config.agent.tokenFile], ['agent.vm.image', config.agent.vm.image]] as const) {
      try {
        accessSync(value, constants.R_OK);
      } catch (err) {
        problems.push({ path, message: `cannot read ${value}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` });
      }
    }
    if (problems.length) throw new ConfigError(file, problems);
    roles.push(`agent ${config.agent.host} (${config.agent.role}, ${config.agent.slots} slots)`);
  }
  if (roles.length === 0) throw new ConfigError(file, [{ path: '', message: 'neither a control (github, policy) nor an agent section' }]);
  const pools = config.pools.map((p) => `${p.name}${p.deploy ? ' (deploy)' : ''}`).join(', ');
  process.stdout.write(`${file}: ok: ${roles.join(', ')}; ${config.pools.length} pool(s): ${pools}\n`);
}
