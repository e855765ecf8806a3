import { checkSections, configError, isAgentFile, isControlFile, loadConfig, type ConfigDocument, type Sections } from '../config/load.js';
import { checkAgentFiles, checkSecretFiles } from '../config/secrets.js';
import { checkAgentTlsFiles, checkControlTlsFiles, checkRedisTlsFiles } from '../config/tls-files.js';

/**
 * `hangar config check FILE`: exit 0 and a summary, or exit 1 and every problem in one pass:
 * YAML, each section against the schema of the process that reads it, and the files the
 * sections name (the control's secrets, the agent's token and image, the CA a rediss:// Redis is
 * trusted by, which both processes read).
 */
export async function configCheck(file: string): Promise<void> {
  const doc = loadConfig(file);
  const { control, agent, problems } = checkConfig(doc);
  if (problems.length > 0) throw configError(doc, problems);
  const roles: string[] = [];
  if (control) roles.push('control');
  if (agent) roles.push(`agent ${agent.agent.host} (${agent.agent.role}, ${agent.agent.slots} slots)`);
  const pools = (control ?? agent)!.pools;
  const names = pools.map((p) => `${p.name}${p.deploy ? ' (deploy)' : ''}`).join(', ');
  process.stdout.write(`${file}: ok: ${roles.join(', ')}; ${pools.length} pool(s): ${names}\n`);
}

/** The sections validated and the files they name checked: what `config check` and `hangar doctor` both report. */
export function checkConfig(doc: ConfigDocument): Sections {
  const sections = checkSections(doc);
  const problems = [...sections.problems];
  if (isControlFile(doc)) problems.push(...checkSecretFiles(doc.input), ...checkControlTlsFiles(doc.input));
  if (isAgentFile(doc)) problems.push(...checkAgentFiles(doc.input), ...checkAgentTlsFiles(doc.input));
  problems.push(...checkRedisTlsFiles(doc.input));
  if (!isControlFile(doc) && !isAgentFile(doc)) {
    problems.push({ path: '', message: 'neither a control (github, policy) nor an agent section' });
  }
  return { ...sections, problems };
}
