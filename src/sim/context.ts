import type { Logger } from 'pino';
import type { SimApp } from './app.js';
import type { TokenBook } from './auth.js';
import type { CallLog } from './calls.js';
import type { Hookshot } from './hookshot.js';
import type { KnobBox } from './knobs.js';
import type { ManifestBook } from './manifests.js';
import type { Urls } from './shapes.js';
import type { SimStore } from './store.js';

/** What every route of the sim shares. One per sim; no globals, so tests can run several sims. */
export interface SimContext {
  store: SimStore;
  hookshot: Hookshot;
  knobs: KnobBox;
  tokens: TokenBook;
  /** App manifests posted and codes handed out (routes-manifest.ts). */
  manifests: ManifestBook;
  /** What the GitHub REST face was asked (GET /_sim/calls). */
  calls: CallLog;
  /** The one App; replaced whole when a manifest is converted, so read it at the time of use. */
  app: SimApp;
  installationId: number;
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
