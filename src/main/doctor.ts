import { Redis } from 'ioredis';
import { join } from 'node:path';
import { configError, isAgentFile, isControlFile, loadConfig, type ConfigDocument } from '../config/load.js';
import { isRecord } from '../config/schema.js';
import { redisTarget } from '../config/secrets.js';
import { ConfigError } from '../domain/errors.js';
import { doctorExitCode, type CheckResult } from '../domain/doctor.js';
import { DEFAULT_PATHS, runChecks, type DoctorContext, type HostPaths } from '../doctor/check.js';
import { configValid } from '../doctor/config-checks.js';
import { checksFor, skippedForConfig } from '../doctor/plan.js';
import { renderJson, renderPlain } from '../doctor/render.js';
import { connectRedis } from '../queue/redis-connect.js';
import { checkConfig } from './config-check.js';
import { EMBEDDED_REDIS_DIR, runningEmbeddedRedis } from './embedded-redis.js';

/**
 * `hangar doctor --config FILE [--json]`: what is wrong on this host for the sections the file
 * has, each with its fix. Exit 0 when nothing failed (warnings allowed), 1 when something did,
 * 2 when the file cannot be read as a config at all (unreadable, not YAML, neither a control's
 * nor an agent's): then there is nothing to choose the checks by.
 */
export interface DoctorOptions {
  json?: boolean;
  /** What a test injects where the machine cannot safely be broken (see src/doctor/check.ts). */
  now?: () => number;
  paths?: Partial<HostPaths>;
  diskMarginBytes?: number;
  timeoutMs?: number;
  qemuBinary?: string;
  nftBinary?: string;
  env?: NodeJS.ProcessEnv;
}

export interface DoctorReport {
  code: 0 | 1 | 2;
  output: string;
  results: CheckResult[];
}

const MiB = 1024 * 1024;

export async function runDoctor(file: string, opts: DoctorOptions = {}): Promise<DoctorReport> {
  let doc: ConfigDocument;
  try {
    doc = loadConfig(file, opts.env ?? process.env);
  } catch (err) {
    if (err instanceof ConfigError) return { code: 2, output: `hangar: ${err.message}\n`, results: [] };
    throw err;
  }
  const unusable = unusableFile(doc);
  if (unusable) return { code: 2, output: `hangar: ${file}: ${unusable}\n`, results: [] };
  const sections = checkConfig(doc);
  const ctx = context(file, doc, sections, opts);
  try {
    let results: CheckResult[];
    if (sections.problems.length > 0) {
      results = [...(await runChecks([configValid], ctx)), ...skippedForConfig()];
    } else {
      results = await runChecks(checksFor(ctx), ctx);
    }
    return { code: doctorExitCode(results), output: opts.json ? renderJson(results) : renderPlain(results), results };
  } finally {
    ctx.close();
  }
}

/** The CLI: prints the report, sets the exit status. */
export async function doctor(file: string, opts: { json?: boolean }): Promise<void> {
  const r = await runDoctor(file, opts);
  (r.code === 2 ? process.stderr : process.stdout).write(r.output);
  process.exitCode = r.code;
}

/** Why a file is no config doctor can pick checks by: YAML that does not parse, or neither role's sections. */
function unusableFile(doc: ConfigDocument): string | null {
  const yaml = doc.problems.filter((p) => p.path === '' && (p.message.startsWith('YAML') || p.message.startsWith('expected a mapping')));
  if (yaml.length > 0) return `not a readable config:\n${yaml.map((p) => `  - ${p.message}`).join('\n')}`;
  if (!isControlFile(doc) && !isAgentFile(doc)) return 'neither a control (github, policy) nor an agent section: nothing to check';
  return null;
}

function context(file: string, doc: ConfigDocument, s: ReturnType<typeof checkConfig>, opts: DoctorOptions): DoctorContext & { close(): void } {
  const timeoutMs = opts.timeoutMs ?? 3000;
  let client: Promise<Redis> | undefined;
  let made: Redis | undefined;
  const redisSection = s.control?.redis ?? s.agent?.redis;
  // One box's file (`hangar up`: both sections, no redis.url): its Redis is the one up embeds.
  const embeddedRedisDir = s.control && s.agent && !(isRecord(doc.input.redis) && doc.input.redis.url !== undefined) ? join(s.agent.agent.stateDir, EMBEDDED_REDIS_DIR) : undefined;
  return {
    ...(embeddedRedisDir ? { embeddedRedisDir } : {}),
    file,
    input: doc.input,
    // With their lines, in the file's order, as `config check` says them.
    configProblems: s.problems.length > 0 ? configError(doc, s.problems).problems : [],
    ...(s.control ? { control: s.control } : {}),
    ...(s.agent ? { agent: s.agent } : {}),
    now: opts.now ?? Date.now,
    paths: { ...DEFAULT_PATHS, ...opts.paths },
    qemuBinary: opts.qemuBinary ?? 'qemu-system-x86_64',
    nftBinary: opts.nftBinary ?? 'nft',
    diskMarginBytes: opts.diskMarginBytes ?? 256 * MiB,
    timeoutMs,
    redis: () =>
      (client ??= (async () => {
        let section = redisSection!;
        if (embeddedRedisDir) {
          const running = runningEmbeddedRedis(s.agent!.agent.stateDir);
          if (!running) throw new Error(`no embedded Redis of \`hangar up\` runs under ${embeddedRedisDir} (the file names no redis.url)`);
          section = { ...section, url: running.url, passwordFile: running.passwordFile };
        }
        const target = redisTarget(section);
        made = new Redis(target.url, {
          ...target.options, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0,
          connectTimeout: timeoutMs, commandTimeout: timeoutMs, retryStrategy: () => null,
        });
        made.on('error', () => undefined);
        await connectRedis(made, target.url);
        return made;
      })()),
    close: () => made?.disconnect(),
  };
}
