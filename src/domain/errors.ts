/**
 * The few error classes Hangar raises on purpose. Each carries a stable `code`; callers branch
 * on the class or the code, never on the message. HTTP mapping lives in one place (intake).
 */

export class HangarError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

export interface ConfigProblem {
  /** Dotted path of the offending key, e.g. `pools.1.labels`; empty for the whole file. */
  path: string;
  message: string;
  /** The line of the file it is on, when the file has the key (or a part of its path). */
  line?: number;
}

/** A config file that cannot be used. Lists every problem at once, each with its path (and line). */
export class ConfigError extends HangarError {
  readonly problems: ConfigProblem[];
  constructor(source: string, problems: ConfigProblem[]) {
    const lines = problems.map((p) => `  - ${p.path || '(file)'}${p.line === undefined ? '' : ` (line ${p.line})`}: ${p.message}`);
    super('config-invalid', `${source}: ${problems.length} problem(s)\n${lines.join('\n')}`);
    this.problems = problems;
  }
}

/** A webhook whose signature does not verify. Never says which secret was tried. */
export class SignatureError extends HangarError {
  constructor(message: string) {
    super('signature-invalid', message);
  }
}

/** A signed webhook whose payload is not what GitHub sends. `field` names the bad field. */
export class PayloadError extends HangarError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('payload-invalid', `${field}: ${message}`);
    this.field = field;
  }
}

/** Redis is missing, misconfigured or unreachable, or its TLS certificate is not the one trusted (store-untrusted). */
export class StoreError extends HangarError {
  constructor(code: 'store-unavailable' | 'store-misconfigured' | 'store-untrusted', message: string) {
    super(code, message);
  }
}

/** A GitHub API call failed with an HTTP status. */
export class GitHubError extends HangarError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('github', message);
    this.status = status;
  }
}
