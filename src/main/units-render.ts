import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_UNIT_SETTINGS, SLICE_UNIT, renderHangarUnits, sliceQuotasFromConfig, type UnitCredential, type UnitName, type UnitSettings } from '../caps/units.js';
import { CREDENTIALS_DIR, credentialUnits, type CredentialRef } from '../config/credentials.js';
import { isAgentFile, isControlFile, loadConfig, requireAgent, requireControl, type ConfigDocument } from '../config/load.js';
import { ConfigError, HangarError } from '../domain/errors.js';

/**
 * `hangar units render --config FILE [--out DIR]`: the systemd units for the sections the file
 * has: `hangar-control.service` for a control section (github, policy or control), and
 * `hangar-agent.service` with `hangar-runners.slice` for an agent section (the slice's caps are
 * `agent.caps`, the agent's TimeoutStopSec follows `agent.drainTimeoutSeconds`). ExecStart names
 * the file by its absolute path; each service gets LoadCredential= for the `credential:NAME`
 * paths its sections have. A file already there with other text is left alone unless `force`.
 */
export interface RenderOptions {
  out: string;
  hangarBin?: string;
  force?: boolean;
}

export interface RenderResult {
  /** Each unit the config calls for, and what was done with it. */
  /** `differs`: already there with other text; then nothing is written (`skipped`: would have been). */
  files: { name: UnitName; path: string; action: 'wrote' | 'unchanged' | 'differs' | 'skipped' }[];
}

export function unitSettingsFor(doc: ConfigDocument, configFile: string, hangarBin?: string): { names: UnitName[]; settings: UnitSettings } {
  const control = isControlFile(doc);
  const agent = isAgentFile(doc) ? requireAgent(doc) : undefined;
  if (control) requireControl(doc);
  if (!control && !agent) {
    throw new ConfigError(doc.source, [{ path: '', message: 'neither a control section (github, policy, control) nor an agent section: no unit to render' }]);
  }
  if (agent && agent.agent.caps.slice !== SLICE_UNIT) {
    throw new ConfigError(doc.source, [{ path: 'agent.caps.slice', message: `the rendered units put the agent in ${SLICE_UNIT}; leave agent.caps.slice at its default under systemd` }]);
  }
  const names: UnitName[] = [...(control ? ['hangar-control.service' as const] : []), ...(agent ? (['hangar-agent.service', SLICE_UNIT] as const) : [])];
  const settings: UnitSettings = {
    ...DEFAULT_UNIT_SETTINGS,
    hangarBin: hangarBin ?? DEFAULT_UNIT_SETTINGS.hangarBin,
    configFile: resolve(configFile),
    credentialsDir: CREDENTIALS_DIR,
    credentials: { control: credentialsOf(doc.credentials, 'control'), agent: credentialsOf(doc.credentials, 'agent') },
    ...(agent ? { drainTimeoutSeconds: agent.agent.drainTimeoutSeconds, slice: sliceQuotasFromConfig(agent.agent.caps) } : {}),
  };
  return { names, settings };
}

function credentialsOf(refs: readonly CredentialRef[], service: 'control' | 'agent'): UnitCredential[] {
  const names = [...new Set(refs.filter((r) => credentialUnits(r).includes(service)).map((r) => r.name))];
  return names.map((name) => ({ name }));
}

export function renderUnitsTo(configFile: string, o: RenderOptions): RenderResult {
  const { names, settings } = unitSettingsFor(loadConfig(configFile), configFile, o.hangarBin);
  const texts = renderHangarUnits(settings);
  mkdirSync(o.out, { recursive: true });
  const planned = names.map((name) => {
    const path = join(o.out, name);
    const old = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    return { name, path, text: texts[name], action: old === texts[name] ? ('unchanged' as const) : old === undefined || o.force ? ('wrote' as const) : ('differs' as const) };
  });
  // One differing file without --force: none is written (a half-updated set is worse than none).
  const refused = planned.some((f) => f.action === 'differs');
  for (const f of planned) {
    if (refused || f.action !== 'wrote') continue;
    // Whole or not at all: systemd never reads half a unit.
    writeFileSync(`${f.path}.tmp`, f.text, { mode: 0o644 });
    renameSync(`${f.path}.tmp`, f.path);
  }
  const files = planned.map(({ name, path, action }) => ({ name, path, action: refused && action === 'wrote' ? ('skipped' as const) : action }));
  return { files };
}

/** The CLI: one line per unit; a differing file without --force is exit 1 with what to do. */
export async function unitsRender(configFile: string, o: RenderOptions): Promise<void> {
  const { files } = renderUnitsTo(configFile, o);
  const said = { wrote: 'wrote', unchanged: 'unchanged', differs: 'kept (differs)', skipped: 'not written' } as const;
  for (const f of files) process.stdout.write(`${said[f.action]} ${f.path}\n`);
  const differs = files.filter((f) => f.action === 'differs');
  if (differs.length > 0) {
    throw new HangarError('units-differ', `${differs.map((f) => f.path).join(', ')} already there with other text: compare, then run again with --force to replace`);
  }
  if (files.some((f) => f.action === 'wrote')) process.stdout.write(`then: systemctl daemon-reload && systemctl enable --now ${files.filter((f) => f.name !== SLICE_UNIT).map((f) => f.name).join(' ')}\n`);
}
