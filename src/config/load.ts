import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import { AGENT_SECTIONS, agentSchema, movedAgentKey, type AgentConfig, type AgentSideConfig } from './agent-schema.js';
import { CONTROL_ONLY_SECTIONS, CONTROL_SECTIONS, controlSchema, type ControlConfig } from './control-schema.js';
import { resolveCredentials, type CredentialRef } from './credentials.js';
import { toProblems, unknownKey, type MovedKey } from './problems.js';
import { checkPoolsAndHosts, isRecord, sharedShape, toPath, withChecks } from './schema.js';

/**
 * `hangar.yaml` as read: what is there, before any schema. `requireControl` and `requireAgent`
 * validate it with their process's schema (one file may hold both); `checkSections` with every
 * schema whose sections it has, for `hangar config check`. Every problem is found in one pass
 * and reported with its dotted path and the line it is on.
 */
export interface ConfigDocument {
  source: string;
  /** The top-level mapping as parsed (what parsed, when the YAML has errors), with environment overrides. */
  input: Record<string, unknown>;
  /** The top-level keys the file itself has (an environment override makes no section a process's). */
  sections: readonly string[];
  /** YAML errors and unknown top-level keys, found before any schema. */
  problems: ConfigProblem[];
  /** The `credential:NAME` paths the file has, each already resolved in `input` (credentials.ts). */
  credentials: readonly CredentialRef[];
  /** The line of a dotted path's key (or of the nearest part of it that is in the file). */
  lineOf(path: string): number | undefined;
}

/** Environment variables that override a key of the file (handy for tests and containers). */
const ENV_OVERRIDES: ReadonlyArray<[string, (raw: Record<string, any>, v: string) => void]> = [
  ['HANGAR_REDIS_URL', (raw, v) => ((raw.redis ??= {}).url = v)],
  ['HANGAR_REDIS_PREFIX', (raw, v) => ((raw.redis ??= {}).prefix = v)],
  ['HANGAR_CONTROL_PORT', (raw, v) => ((raw.control ??= {}).port = Number(v))],
  ['HANGAR_CONTROL_PRIVATE_LISTEN', (raw, v) => (((raw.control ??= {}).private ??= {}).listen = v)],
];

const KNOWN_SECTIONS = [...new Set([...CONTROL_SECTIONS, ...AGENT_SECTIONS])];

/** Reads and parses a config file; throws a ConfigError only when it cannot be read. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): ConfigDocument {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}` }]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = {}): ConfigDocument {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  const problems: ConfigProblem[] = doc.errors.map((e) => {
    const { line, col } = lines.linePos(e.pos[0]);
    return { path: '', message: `YAML ${e.code} at line ${line}, column ${col}: ${e.message.split('\n')[0]}` };
  });
  // The yaml package keeps what parsed around an error, so the schema still checks the rest.
  const parsed: unknown = doc.toJS() ?? {};
  const input = isRecord(parsed) ? parsed : {};
  if (!isRecord(parsed)) problems.push({ path: '', message: 'expected a mapping at the top level' });
  for (const key of Object.keys(input)) {
    if (!KNOWN_SECTIONS.includes(key)) problems.push({ path: key, message: unknownKey(key, KNOWN_SECTIONS) });
  }
  const sections = Object.keys(input);
  for (const [name, apply] of ENV_OVERRIDES) {
    const v = env[name];
    if (v !== undefined && v !== '') apply(input, v);
  }
  const creds = resolveCredentials(input, env);
  problems.push(...creds.problems);
  return { source, input, sections, problems, credentials: creds.refs, lineOf: (path) => lineOf(doc, lines, path) };
}

/** The config `hangar control` runs with: every problem of its sections, or one ConfigError. */
export function requireControl(doc: ConfigDocument): ControlConfig {
  const r = validate(doc, controlSchema, CONTROL_SECTIONS);
  if (!r.value || doc.problems.length > 0) throw configError(doc, [...doc.problems, ...r.problems]);
  return r.value;
}

/** The config `hangar agent` runs with, its host's role and pools filled from its hosts[] entry. */
export function requireAgent(doc: ConfigDocument): AgentSideConfig {
  const r = validate(doc, agentSchema, AGENT_SECTIONS, movedAgentKey);
  if (!r.value || doc.problems.length > 0) throw configError(doc, [...doc.problems, ...r.problems]);
  return r.value;
}

const sharedSchema = withChecks(z.strictObject(sharedShape), checkPoolsAndHosts);

/** What a file holds, each section validated by the schema of the process that reads it. */
export type Config = z.output<typeof sharedSchema> & Partial<Pick<ControlConfig, (typeof CONTROL_ONLY_SECTIONS)[number]>> & { agent?: AgentConfig };

export interface Sections {
  control?: ControlConfig;
  agent?: AgentSideConfig;
  /** Every problem of every schema the file's sections call for, without repeats. */
  problems: ConfigProblem[];
}

/** Validates the file with the control's schema if it has a control section, the agent's if it has one, the shared one if neither. */
export function checkSections(doc: ConfigDocument): Sections {
  const problems = [...doc.problems];
  const out: Sections = { problems };
  const hasControl = isControlFile(doc);
  if (hasControl) {
    const r = validate(doc, controlSchema, CONTROL_SECTIONS);
    problems.push(...r.problems);
    if (r.value) out.control = r.value;
  }
  if (isAgentFile(doc)) {
    const r = validate(doc, agentSchema, AGENT_SECTIONS, movedAgentKey);
    problems.push(...r.problems);
    if (r.value) out.agent = r.value;
  }
  if (!hasControl && !isAgentFile(doc)) problems.push(...validate(doc, sharedSchema, Object.keys(sharedShape)).problems);
  return { ...out, problems: unique(problems) };
}

/** Whether the file has a section of the control's own, or the agent's. */
export const isControlFile = (doc: ConfigDocument) => CONTROL_ONLY_SECTIONS.some((k) => doc.sections.includes(k));
export const isAgentFile = (doc: ConfigDocument) => doc.sections.includes('agent');

/** Every section that is there, validated; one ConfigError naming every problem otherwise. */
export function validateConfig(doc: ConfigDocument): Config {
  const s = checkSections(doc);
  if (s.problems.length > 0) throw configError(doc, s.problems);
  const shared = s.control ?? s.agent ?? validate(doc, sharedSchema, Object.keys(sharedShape)).value!;
  const c = s.control;
  return { ...shared, ...(c ? { github: c.github, policy: c.policy, control: c.control } : {}), ...(s.agent ? { agent: s.agent.agent } : {}) };
}

/** One ConfigError for a file's problems, each once and with its line, in the file's order (the file's own problems first). */
export function configError(doc: ConfigDocument, problems: ConfigProblem[]): ConfigError {
  const located = unique(problems).map((p) => {
    const line = p.path === '' ? undefined : doc.lineOf(p.path);
    return line === undefined ? p : { ...p, line };
  });
  return new ConfigError(doc.source, located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
}

function validate<T>(doc: ConfigDocument, schema: z.ZodType<T>, keys: readonly string[], moved?: MovedKey): { value?: T; problems: ConfigProblem[] } {
  const picked = Object.fromEntries(Object.entries(doc.input).filter(([k]) => keys.includes(k)));
  const r = schema.safeParse(picked);
  return r.success ? { value: r.data, problems: [] } : { problems: toProblems(r.error, schema, picked, moved) };
}

const unique = (problems: ConfigProblem[]) => {
  const seen = new Set<string>();
  return problems.filter((p) => !seen.has(`${p.path}\n${p.message}`) && Boolean(seen.add(`${p.path}\n${p.message}`)));
};

function lineOf(doc: Document, lines: LineCounter, path: string): number | undefined {
  let node: unknown = doc.contents;
  let at: number | undefined;
  for (const seg of toPath(path)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) break;
      at = (pair.key as { range?: [number] } | null)?.range?.[0] ?? at;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      node = node.items[seg];
      at = (node as { range?: [number] }).range?.[0] ?? at;
    } else break;
  }
  return at === undefined ? undefined : lines.linePos(at).line;
}
