import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { parseConfig, requireControl } from '../../src/config/load.js';
import type { ControlConfig } from '../../src/config/schema.js';
import { readControlSecrets } from '../../src/config/secrets.js';
import { buildControl, type Control } from '../../src/main/control-app.js';

export const TEST_SECRET = 'test-webhook-secret-0123456789';

export interface TestControlOptions {
  redisUrl: string;
  prefix: string;
  secret?: string;
  previousSecret?: string;
  extraYaml?: string;
  logLevel?: string;
  /** The GitHub the control talks to (a sim's URL) and the App key it signs with. */
  apiUrl?: string;
  appKeyPem?: string;
  appId?: number;
  /** Hosts allowed to mint runners: name, role, pools, token. */
  hosts?: { name: string; role: 'build' | 'deploy'; pools: string[]; token: string }[];
  /** Extra pools (YAML flow mappings), after build and deploy. */
  pools?: string[];
  /** policy.cancelRefusedRuns (default true): off leaves the gate at job start alone. */
  cancelRefusedRuns?: boolean;
  /**
   * github.rateBudget. Default: generous (1000/s), so tests that are not about the budget are
   * not slowed by the production default of 4000 per hour.
   */
  rateBudget?: { requestsPerHour: number; burst: number };
  /** The control's root logger (default: silent), for tests that read its lines. */
  logger?: Logger;
  /**
   * The `reconcile` section as a YAML flow mapping (default `{enabled: false}`: a test that is not
   * about reconcile gets no loops acting behind its back, e.g. on hosts that send no heartbeat).
   */
  reconcile?: string;
  /** The `intake` section as a YAML flow mapping (default: push). */
  intake?: string;
  /**
   * The `dashboard` section as a YAML flow mapping (default `{enabled: false}`: a test that is not
   * about it opens no listener). `tokenFile` is filled in (OPERATOR_TOKEN) unless given.
   */
  dashboard?: string;
  /** `control.private` as a YAML flow mapping (default `{listen: "127.0.0.1:0"}`). */
  privateListener?: string;
}

/** The operator token every test config's dashboard.tokenFile holds. */
export const OPERATOR_TOKEN = 'test-operator-token-0123456789abcdef';

/** Writes a config and its secret files to a temp dir; returns the path and the parsed config. */
export function writeTestConfig(o: TestControlOptions): { file: string; dir: string; config: ControlConfig } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-test-'));
  writeFileSync(join(dir, 'secret'), o.secret ?? TEST_SECRET, { mode: 0o600 });
  if (o.previousSecret) writeFileSync(join(dir, 'secret.old'), o.previousSecret, { mode: 0o600 });
  const pem = o.appKeyPem ?? (generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, 'app.pem'), pem, { mode: 0o600 });
  writeFileSync(join(dir, 'operator-token'), `${OPERATOR_TOKEN}\n`, { mode: 0o600 });
  const dashboard = o.dashboard ?? '{enabled: false}';
  const withToken = /tokenFile/.test(dashboard) ? dashboard : dashboard.replace(/^\{/, `{tokenFile: ${dir}/operator-token, `).replace(', }', '}');
  const hosts = (o.hosts ?? []).map(
    (h) => `  - {name: ${h.name}, role: ${h.role}, pools: [${h.pools.join(', ')}], tokenSha256: ${createHash('sha256').update(h.token).digest('hex')}}`,
  );
  const yaml = `
github:
  apiUrl: ${o.apiUrl ?? 'http://127.0.0.1:1'}
  appId: ${o.appId ?? 1}
  writeSpacingMs: 0
  rateBudget: {requestsPerHour: ${o.rateBudget?.requestsPerHour ?? 3_600_000}, burst: ${o.rateBudget?.burst ?? 1000}}
  privateKeyFile: ${dir}/app.pem
  webhookSecretFile: ${dir}/secret
${o.previousSecret ? `  previousWebhookSecretFile: ${dir}/secret.old\n` : ''}
redis: {url: "${o.redisUrl}", prefix: ${o.prefix}}
control: {host: 127.0.0.1, port: 0, bodyLimitBytes: 65536, private: ${o.privateListener ?? '{listen: "127.0.0.1:0"}'}}
policy: {repositories: ["acme/*"], cancelRefusedRuns: ${o.cancelRefusedRuns ?? true}}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
${(o.pools ?? []).map((p) => `  - ${p}`).join('\n')}
${hosts.length ? `hosts:\n${hosts.join('\n')}` : ''}
log: {level: ${o.logLevel ?? 'warn'}}
${/^reconcile:/m.test(o.extraYaml ?? '') ? '' : `reconcile: ${o.reconcile ?? '{enabled: false}'}`}
${o.intake ? `intake: ${o.intake}` : ''}
${/^dashboard:/m.test(o.extraYaml ?? '') ? '' : `dashboard: ${withToken}`}
${o.extraYaml ?? ''}`;
  const file = join(dir, 'hangar.yaml');
  writeFileSync(file, yaml);
  return { file, dir, config: requireControl(parseConfig(yaml, file)) };
}

/** `url` is the private listener (the agents' API, /healthz, /metrics); `webhookUrl` the public one (null in pull mode). */
export interface TestControl extends Control {
  config: ControlConfig;
}

export async function startTestControl(o: TestControlOptions): Promise<TestControl> {
  const { config } = writeTestConfig(o);
  const control = await buildControl(config, readControlSecrets(config), o.logger ?? pino({ level: 'silent' }));
  return Object.assign(control, { config });
}
