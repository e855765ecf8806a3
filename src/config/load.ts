import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import { configSchema, type AgentConfig, type Config, type ControlConfig } from './schema.js';

/** Environment variables that override a key of the file (handy for tests and containers). */
const ENV_OVERRIDES: ReadonlyArray<[string, (raw: Record<string, any>, v: string) => void]> = [
  ['HANGAR_REDIS_URL', (raw, v) => ((raw.redis ??= {}).url = v)],
  ['HANGAR_REDIS_PREFIX', (raw, v) => ((raw.redis ??= {}).prefix = v)],
  ['HANGAR_CONTROL_PORT', (raw, v) => ((raw.control ??= {}).port = Number(v))],
];

/** Reads, parses and validates a config file; throws one ConfigError listing every problem. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` }]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = {}): Config {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: '', message: `YAML ${e.code} at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}` })),
    );
  }
  const raw = (doc.toJS() ?? {}) as Record<string, any>;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'expected a mapping at the top level' }]);
  }
  for (const [name, apply] of ENV_OVERRIDES) {
    const v = env[name];
    if (v !== undefined && v !== '') apply(raw, v);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, [...toProblems(result.error), ...pairedSections(raw)]);
  return result.data;
}

/**
 * zod skips cross-field checks while a field is invalid; the pairing of the control's sections
 * is checked here too, so a broken file still gets every problem in one go.
 */
function pairedSections(raw: Record<string, unknown>): ConfigProblem[] {
  if (raw.github !== undefined && raw.policy === undefined) return [{ path: 'policy', message: 'required with github (hangar control)' }];
  if (raw.policy !== undefined && raw.github === undefined) return [{ path: 'github', message: 'required with policy (hangar control)' }];
  return [];
}

export function toProblems(error: z.ZodError): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: [...issue.path, key].join('.'), message: 'unknown key' });
    } else {
      problems.push({ path: issue.path.join('.'), message: issue.message });
    }
  }
  return problems;
}

/** Narrows a config to what `hangar control` needs, naming each missing section. */
export function requireControl(config: Config, source: string): ControlConfig {
  const problems: ConfigProblem[] = [];
  if (!config.github) problems.push({ path: 'github', message: 'required for hangar control' });
  if (!config.policy) problems.push({ path: 'policy', message: 'required for hangar control' });
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config as ControlConfig;
}

/** Narrows a config to what `hangar agent` needs. */
export function requireAgent(config: Config, source: string): Config & { agent: AgentConfig } {
  if (!config.agent) throw new ConfigError(source, [{ path: 'agent', message: 'required for hangar agent' }]);
  return config as Config & { agent: AgentConfig };
}
