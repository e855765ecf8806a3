import type { AgentSideConfig } from '../config/agent-schema.js';
import type { ControlConfig } from '../config/control-schema.js';
import { configError, requireAgent, requireControl, type ConfigDocument } from '../config/load.js';
import { isRecord } from '../config/schema.js';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';

/** What `hangar up` runs with: the control's and the agent's config from one file, and whether it brings its own Redis. */
export interface UpConfig {
  control: ControlConfig;
  agent: AgentSideConfig;
  /** The file names no `redis.url` (nor does HANGAR_REDIS_URL): up starts a redis-server of its own. */
  embeddedRedis: boolean;
}

/**
 * Both schemas' problems and up's own, in one ConfigError. The file as written decides the
 * Redis, not the schema's default (redis://127.0.0.1:6379): a url that is there is used, none
 * means the embedded one.
 */
export function upConfig(doc: ConfigDocument): UpConfig {
  const problems: ConfigProblem[] = [];
  const attempt = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return undefined;
    }
  };
  const control = attempt(() => requireControl(doc));
  const agent = attempt(() => requireAgent(doc));
  const redis = isRecord(doc.input.redis) ? doc.input.redis : {};
  const embeddedRedis = redis.url === undefined;
  if (embeddedRedis && redis.passwordFile !== undefined) {
    problems.push({ path: 'redis.passwordFile', message: 'set without redis.url: the embedded Redis makes its own password; set redis.url to use a Redis of yours, or remove redis.passwordFile' });
  }
  if (!control || !agent || problems.length > 0) throw configError(doc, problems);
  return { control, agent, embeddedRedis };
}

/** The configs with the embedded Redis put in: its url and its password file, as if the file had named them. */
export function withRedis(c: UpConfig, redis: { url: string; passwordFile: string }): UpConfig {
  return {
    ...c,
    control: { ...c.control, redis: { ...c.control.redis, url: redis.url, passwordFile: redis.passwordFile } },
    agent: { ...c.agent, redis: { ...c.agent.redis, url: redis.url, passwordFile: redis.passwordFile } },
  };
}
