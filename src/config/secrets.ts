import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import type { ControlConfig } from './control-schema.js';
import { hostEntry, isRecord } from './schema.js';
import { readCaFile } from './tls-files.js';
import { redisTlsOptions, type RedisTrust } from '../queue/redis-tls.js';

/** The control's secrets, read from the files the config names. Never logged, never stored. */
export interface ControlSecrets {
  /** Current webhook secret first, then the previous one during a rotation. */
  webhookSecrets: string[];
  appPrivateKey: string;
  /** The dashboard's operator token (dashboard.tokenFile); null while the dashboard is off. */
  operatorToken: string | null;
}

const SECRET_KEYS = ['webhookSecretFile', 'previousWebhookSecretFile', 'privateKeyFile'] as const;

/** Reads every secret file; one ConfigError names each key whose file is unusable (not its content). */
export function readControlSecrets(config: ControlConfig): ControlSecrets {
  const { values, problems } = readSecretFiles(config.github);
  const operator = config.dashboard.enabled ? readOperatorToken(config.dashboard) : { problems: [] };
  problems.push(...operator.problems);
  if (problems.length > 0) throw new ConfigError('secrets', problems);
  const previous = values.previousWebhookSecretFile;
  return {
    webhookSecrets: previous ? [values.webhookSecretFile!, previous] : [values.webhookSecretFile!],
    appPrivateKey: values.privateKeyFile!,
    operatorToken: operator.token ?? null,
  };
}

/**
 * The control's secret files as `hangar config check` sees them: read from the `github`
 * section as written, so a file with other mistakes still hears about these.
 */
export function checkSecretFiles(input: Record<string, unknown>): ConfigProblem[] {
  const github = isRecord(input.github) ? readSecretFiles(input.github).problems : [];
  const d = isRecord(input.dashboard) ? input.dashboard : {};
  return [...github, ...(d.enabled === false ? [] : readOperatorToken(d).problems)];
}

/** The operator token for a client of the dashboard (`hangar status`): ConfigError naming the key when it is unusable. */
export function readOperatorTokenFile(config: ControlConfig): string {
  const r = readOperatorToken(config.dashboard);
  if (r.token) return r.token;
  throw new ConfigError('secrets', r.problems.length > 0 ? r.problems : [{ path: 'dashboard.tokenFile', message: 'not set: the dashboard has no operator token' }]);
}

/** The operator token: readable and long enough to be one. Never says what it is. */
function readOperatorToken(d: Record<string, unknown>): { token?: string; problems: ConfigProblem[] } {
  const file = d.tokenFile;
  if (typeof file !== 'string' || file === '') return { problems: [] };
  const r = readFile(file);
  if (!r.ok) return { problems: [{ path: 'dashboard.tokenFile', message: r.message }] };
  if (r.text.length < 16) return { problems: [{ path: 'dashboard.tokenFile', message: `${file} holds no token (at least 16 characters)` }] };
  return { token: r.text, problems: [] };
}

function readSecretFiles(github: Record<string, unknown>): { values: Partial<Record<(typeof SECRET_KEYS)[number], string>>; problems: ConfigProblem[] } {
  const values: Partial<Record<(typeof SECRET_KEYS)[number], string>> = {};
  const problems: ConfigProblem[] = [];
  for (const key of SECRET_KEYS) {
    const file = github[key];
    if (typeof file !== 'string' || file === '') continue;
    const path = `github.${key}`;
    const r = readFile(file);
    if (!r.ok) problems.push({ path, message: r.message });
    else if (r.text === '') problems.push({ path, message: `file ${file} is empty` });
    else if (key === 'privateKeyFile' && !r.text.includes('PRIVATE KEY-----')) problems.push({ path, message: `${file} is not a PEM private key` });
    else values[key] = r.text;
  }
  return { values, problems };
}

/**
 * The agent's files: its token (readable, a token, and the one its hosts[] entry's tokenSha256
 * is of, or the control would refuse it), its Redis password file and its image folder. Never says what the token is.
 */
export function checkAgentFiles(input: Record<string, unknown>): ConfigProblem[] {
  const a = isRecord(input.agent) ? input.agent : {};
  const problems: ConfigProblem[] = [];
  if (typeof a.tokenFile === 'string' && a.tokenFile !== '') {
    const r = readFile(a.tokenFile);
    const entry = hostEntry(input, a.host);
    const want = entry?.[0].tokenSha256;
    if (!r.ok) problems.push({ path: 'agent.tokenFile', message: r.message });
    else if (r.text.length < 16) problems.push({ path: 'agent.tokenFile', message: `${a.tokenFile} holds no token (at least 16 characters)` });
    else if (typeof want === 'string' && /^[0-9a-f]{64}$/.test(want) && createHash('sha256').update(r.text).digest('hex') !== want) {
      problems.push({ path: 'agent.tokenFile', message: `the token in ${a.tokenFile} is not the one hosts.${entry![1]}.tokenSha256 is the sha256 of: the control would refuse this host` });
    }
  }
  const redis = isRecord(input.redis) ? input.redis : {};
  if (typeof redis.passwordFile === 'string' && redis.passwordFile !== '') {
    const r = readFile(redis.passwordFile);
    if (!r.ok) problems.push({ path: 'redis.passwordFile', message: r.message });
    else if (r.text === '') problems.push({ path: 'redis.passwordFile', message: `${redis.passwordFile} is empty` });
  }
  const image = isRecord(a.vm) ? a.vm.image : undefined;
  if (typeof image === 'string' && image !== '') {
    try {
      accessSync(image, constants.R_OK);
    } catch (err) {
      problems.push({ path: 'agent.vm.image', message: `cannot read ${image}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` });
    }
  }
  return problems;
}

/**
 * Where and as whom to connect to Redis, and how its certificate is trusted: with
 * `redis.passwordFile`, the url's user and the file's password as ioredis options, the url
 * without them (ioredis lets a url's empty password win over the options' one); with
 * rediss://, the TLS options that check every connection's certificate against `redis.tls`
 * (queue/redis-tls.ts). A ConfigError naming the key when a file cannot be read.
 */
export interface RedisTarget {
  url: string;
  /** ioredis options beside the url: the user and password (from passwordFile), and the TLS check. Never logged. */
  options: RedisAuth & Partial<ReturnType<typeof redisTlsOptions>>;
  /** The user and password alone, as plain data (for a worker thread, which cannot be handed the TLS check). */
  auth: RedisAuth;
  /** With rediss://: the trust as plain data (redisTlsOptions(url, trust) rebuilds the check in a thread). */
  trust: RedisTrust | null;
}

export interface RedisAuth {
  username?: string;
  password?: string;
}

export function redisTarget(redis: { url: string; passwordFile?: string | undefined; tls?: RedisTlsConfig | undefined }): RedisTarget {
  const { url, auth } = redisAuth(redis);
  const trust = url.startsWith('rediss://') ? readRedisTrust(redis.tls ?? {}) : null;
  return { url, auth, trust, options: { ...auth, ...(trust ? redisTlsOptions(url, trust) : {}) } };
}

export interface RedisTlsConfig {
  caFile?: string | undefined;
  certSha256?: string | undefined;
  serverName?: string | undefined;
}

function redisAuth(redis: { url: string; passwordFile?: string | undefined }): { url: string; auth: RedisAuth } {
  if (!redis.passwordFile) return { url: redis.url, auth: {} };
  const r = readFile(redis.passwordFile);
  if (!r.ok) throw new ConfigError('secrets', [{ path: 'redis.passwordFile', message: r.message }]);
  if (r.text === '') throw new ConfigError('secrets', [{ path: 'redis.passwordFile', message: `${redis.passwordFile} is empty` }]);
  const u = new URL(redis.url);
  const username = decodeURIComponent(u.username);
  u.username = '';
  u.password = '';
  return { url: u.toString(), auth: { ...(username ? { username } : {}), password: r.text } };
}

function readRedisTrust(tls: RedisTlsConfig): RedisTrust {
  return {
    ...(tls.caFile ? { ca: readCaFile(tls.caFile, 'redis.tls.caFile') } : {}),
    ...(tls.certSha256 ? { certSha256: tls.certSha256 } : {}),
    ...(tls.serverName ? { serverName: tls.serverName } : {}),
  };
}

function readFile(file: string): { ok: true; text: string } | { ok: false; message: string } {
  try {
    return { ok: true, text: readFileSync(file, 'utf8').trim() };
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
}
