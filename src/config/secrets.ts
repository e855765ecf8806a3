import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import type { ControlConfig } from './schema.js';

/** The control's secrets, read from the files the config names. Never logged, never stored. */
export interface ControlSecrets {
  /** Current webhook secret first, then the previous one during a rotation. */
  webhookSecrets: string[];
  appPrivateKey: string;
}

/** Reads every secret file; one ConfigError names each key whose file is unusable (not its content). */
export function readControlSecrets(config: ControlConfig): ControlSecrets {
  const problems: ConfigProblem[] = [];
  const read = (path: string, key: string): string => {
    try {
      const value = readFileSync(path, 'utf8').trim();
      if (value === '') problems.push({ path: key, message: `file ${path} is empty` });
      return value;
    } catch (err) {
      problems.push({ path: key, message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` });
      return '';
    }
  };
  const current = read(config.github.webhookSecretFile, 'github.webhookSecretFile');
  const previous = config.github.previousWebhookSecretFile
    ? read(config.github.previousWebhookSecretFile, 'github.previousWebhookSecretFile')
    : undefined;
  const appPrivateKey = read(config.github.privateKeyFile, 'github.privateKeyFile');
  if (appPrivateKey && !appPrivateKey.includes('PRIVATE KEY-----')) {
    problems.push({ path: 'github.privateKeyFile', message: 'is not a PEM private key' });
  }
  if (problems.length > 0) throw new ConfigError('secrets', problems);
  return { webhookSecrets: previous ? [current, previous] : [current], appPrivateKey };
}
