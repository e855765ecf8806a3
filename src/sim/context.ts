import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { TokenBook } from './auth.js';
import type { CallLog } from './calls.js';
import type { Hookshot } from './hookshot.js';
import type { KnobBox } from './knobs.js';
import type { Urls } from './shapes.js';
import type { SimStore } from './store.js';

/** What every route of the sim shares. One per sim; no globals, so tests can run several sims. */
export interface SimContext {
  store: SimStore;
  hookshot: Hookshot;
  knobs: KnobBox;
  tokens: TokenBook;
  /** What the GitHub REST face was asked (GET /_sim/calls). */
  calls: CallLog;
  appId: number;
  installationId: number;
  appPublicKey: KeyObject;
  logger: Logger;
  /** URLs as clients should see them: the public URL when given, else where the sim listens. */
  urls(): Urls;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which credential a GitHub REST route wants: the App JWT or an installation token. */
    auth?: 'jwt' | 'installation';
  }
}
