import type { KeyObject } from 'node:crypto';
import { publicKeyOf } from './auth.js';
import { isoNow } from './model.js';
import { SENDER } from './shapes.js';

/**
 * The sim's one GitHub App: who it is, what it may do, the public half of its key. It starts as
 * the App the sim was started with (`--app-id`, `--app-key-file`) and is replaced, whole, when a
 * manifest is converted (`POST /app-manifests/{code}/conversions`, routes-manifest.ts): the sim
 * holds one App at a time, installed on every account it knows.
 */
export interface SimApp {
  id: number;
  slug: string;
  name: string;
  description: string;
  externalUrl: string;
  owner: { login: string; id: number; nodeId: string; type: 'User' | 'Organization' };
  permissions: Record<string, string>;
  events: string[];
  createdAt: string;
  /** Secret: the sim made it, or was given it; kept so tests can sign App JWTs (`sim.appPrivateKeyPem`). */
  privateKeyPem: string;
  publicKey: KeyObject;
}

/** What the sim's starting App may do: what Hangar's App asks for (`actions: write` to cancel a refused run). */
export const DEFAULT_PERMISSIONS: Readonly<Record<string, string>> = {
  actions: 'write', administration: 'write', metadata: 'read', organization_self_hosted_runners: 'write',
};

export function startingApp(id: number, privateKeyPem: string, htmlUrl: string): SimApp {
  return {
    id, slug: 'hangar', name: 'Hangar', description: 'Self-hosted runners, one microVM per job', externalUrl: htmlUrl,
    owner: { ...SENDER }, permissions: { ...DEFAULT_PERMISSIONS }, events: ['workflow_job'], createdAt: isoNow(),
    privateKeyPem, publicKey: publicKeyOf(privateKeyPem),
  };
}

/** `client_id` of a GitHub App made today: `Iv23li` and 14 more characters. */
export const clientIdOf = (appId: number): string => `Iv23li${String(appId).padStart(14, '0')}`;

/** GitHub's slug: the name lower-cased, every run of other characters one dash. */
export const slugOf = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'app';
