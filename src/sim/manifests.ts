import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { SimApp } from './app.js';

/**
 * GitHub's App-manifest flow, as data: a posted manifest waits on its confirmation page; the
 * confirmation makes a temporary code (one hour, single use, as GitHub's) that
 * `POST /app-manifests/{code}/conversions` turns into an App.
 * https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
 */

const url = z.string().url();
/** The manifest's parameters GitHub documents; others are ignored, as GitHub does. */
export const ManifestSchema = z.object({
  name: z.string().min(1).max(34).optional(),
  url,
  hook_attributes: z.object({ url, active: z.boolean().optional() }).optional(),
  redirect_url: url,
  callback_urls: z.array(url).max(10).optional(),
  setup_url: url.optional(),
  description: z.string().optional(),
  public: z.boolean().optional(),
  default_events: z.array(z.string().min(1)).optional(),
  default_permissions: z.record(z.string(), z.enum(['read', 'write', 'admin'])).optional(),
  request_oauth_on_install: z.boolean().optional(),
  setup_on_update: z.boolean().optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export interface PendingManifest {
  manifest: Manifest;
  owner: SimApp['owner'];
  state: string | undefined;
}

const CODE_TTL_MS = 3_600_000;

export class ManifestBook {
  /** Posted manifests awaiting the owner's click on the page, by the page's form id. */
  private readonly pages = new Map<string, PendingManifest>();
  private readonly codes = new Map<string, { pending: PendingManifest; name: string; expiresAt: number }>();

  /** A manifest posted to the new-App page; the id the page's form carries. */
  post(pending: PendingManifest): string {
    const id = randomBytes(16).toString('hex');
    this.pages.set(id, pending);
    return id;
  }

  /** The owner clicked "Create GitHub App" (under `name`): the code for the redirect. */
  confirm(pageId: string, name: string, now = Date.now()): { code: string; pending: PendingManifest } | undefined {
    const pending = this.pages.get(pageId);
    if (!pending) return undefined;
    this.pages.delete(pageId);
    const code = randomBytes(20).toString('hex');
    this.codes.set(code, { pending, name, expiresAt: now + CODE_TTL_MS });
    return { code, pending };
  }

  /** Single use: a code is gone once asked for, and worthless after its hour. */
  take(code: string, now = Date.now()): { pending: PendingManifest; name: string } | undefined {
    const entry = this.codes.get(code);
    if (!entry) return undefined;
    this.codes.delete(code);
    return entry.expiresAt > now ? entry : undefined;
  }
}
