import type { ConfigProblem } from '../domain/errors.js';
import { isRecord } from './schema.js';

/**
 * Secret files handed over by systemd's LoadCredential=: a config path written `credential:NAME`
 * is read from `$CREDENTIALS_DIRECTORY/NAME` (what systemd sets for a unit with credentials), and
 * from `/etc/hangar/credentials/NAME` when that is unset (the operator's own `hangar doctor` or
 * `config check`, as root: the file systemd copies from). `hangar units render` hands each
 * service the credentials its sections name, so the config is the one place they are listed.
 */
export const CREDENTIALS_DIR = '/etc/hangar/credentials';
const PREFIX = 'credential:';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface CredentialRef {
  /** The dotted path of the key (`github.privateKeyFile`). */
  path: string;
  name: string;
  /** Written as `/run/credentials/UNIT/NAME`: that unit's credential, whichever section the key is in. */
  unit?: string;
}

const RUN_PATH = /^\/run\/credentials\/([A-Za-z0-9@_.-]+\.service)\/([A-Za-z0-9][A-Za-z0-9_.-]*)$/;

/**
 * Rewrites every `credential:NAME` string value of `input` in place to its file path; returns
 * the references found and a problem for each name that is not one.
 */
export function resolveCredentials(input: Record<string, unknown>, env: NodeJS.ProcessEnv): { refs: CredentialRef[]; problems: ConfigProblem[] } {
  const dir = env.CREDENTIALS_DIRECTORY || CREDENTIALS_DIR;
  const refs: CredentialRef[] = [];
  const problems: ConfigProblem[] = [];
  const walk = (node: Record<string, unknown> | unknown[], at: string) => {
    for (const [key, value] of Object.entries(node)) {
      const path = at === '' ? key : `${at}.${key}`;
      if (typeof value === 'string' && value.startsWith(PREFIX)) {
        const name = value.slice(PREFIX.length);
        if (!NAME.test(name)) {
          problems.push({ path, message: `"${value}": a credential's name is letters, digits, '.', '_' and '-' (credential:github-app-key)` });
          continue;
        }
        refs.push({ path, name });
        (node as Record<string, unknown>)[key] = `${dir}/${name}`;
      } else if (typeof value === 'string' && RUN_PATH.test(value)) {
        const [, unit, name] = RUN_PATH.exec(value)!;
        refs.push({ path, name: name!, unit: unit! });
      } else if (Array.isArray(value) || isRecord(value)) {
        walk(value, path);
      }
    }
  };
  walk(input, '');
  return { refs, problems };
}

/** Which service reads a key: the agent's own section, the control's, or both (the shared sections). */
export function credentialUnits(ref: CredentialRef): readonly ('control' | 'agent')[] {
  if (ref.unit === 'hangar-control.service') return ['control'];
  if (ref.unit === 'hangar-agent.service') return ['agent'];
  if (ref.unit) return [];
  const section = ref.path.split('.')[0];
  if (section === 'agent') return ['agent'];
  if (section === 'redis' || section === 'hosts' || section === 'pools' || section === 'log') return ['control', 'agent'];
  return ['control'];
}
