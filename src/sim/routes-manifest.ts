import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { clientIdOf, slugOf, type SimApp } from './app.js';
import { generateAppKey, publicKeyOf } from './auth.js';
import type { SimContext } from './context.js';
import { SimError } from './errors.js';
import { ManifestSchema, type PendingManifest } from './manifests.js';
import { isoNow } from './model.js';
import { SENDER, userJson } from './shapes.js';

/**
 * GitHub's App-manifest flow. The web face: a form POST of `manifest` (JSON) to
 * `/settings/apps/new` (the user's account, octocat) or `/organizations/{org}/settings/apps/new`,
 * `state` in the query; GitHub shows a page where the owner names the App and confirms; then it
 * redirects to the manifest's `redirect_url?code=...&state=...`. The sim's page is a plain form
 * (`POST /settings/apps/new/confirm`, fields `page` and `name`), so a test confirms with one POST
 * and no browser. The REST face: `POST /app-manifests/{code}/conversions`, no authentication.
 */

const DOCS_CONVERSION = 'https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8')
    .send(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`);
}

type Form = Record<string, string | undefined>;

/** The pages, in a scope of their own: HTML and form bodies, none of the REST face's headers or auth. */
export function manifestPageRoutes(scope: FastifyInstance, ctx: SimContext): void {
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  const newApp = (owner: PendingManifest['owner'], form: Form | undefined, state: string | undefined, reply: FastifyReply) => {
    let json: unknown;
    try {
      json = JSON.parse(form?.manifest ?? '');
    } catch {
      return page(reply, 422, 'Invalid GitHub App manifest', '<p>The manifest is not JSON.</p>');
    }
    const parsed = ManifestSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `<li>${esc(i.path.join('.') || 'manifest')}: ${esc(i.message)}</li>`).join('');
      return page(reply, 422, 'Invalid GitHub App manifest', `<ul>${problems}</ul>`);
    }
    const id = ctx.manifests.post({ manifest: parsed.data, owner, state });
    const perms = Object.entries(parsed.data.default_permissions ?? {}).map(([k, v]) => `<li>${esc(k)}: ${esc(v)}</li>`).join('');
    return page(reply, 200, `Create GitHub App for ${owner.login}`, `<form method="post" action="/settings/apps/new/confirm">
<input type="hidden" name="page" value="${id}">
<label>GitHub App name <input type="text" name="name" value="${esc(parsed.data.name ?? '')}"></label>
<ul>${perms}</ul><p>Events: ${esc((parsed.data.default_events ?? []).join(', '))}</p>
<button type="submit">Create GitHub App for ${esc(owner.login)}</button></form>`);
  };

  scope.post<{ Querystring: { state?: string }; Body: Form }>('/settings/apps/new', async (req, reply) =>
    newApp({ ...SENDER }, req.body, req.query.state, reply));

  scope.post<{ Params: { org: string }; Querystring: { state?: string }; Body: Form }>('/organizations/:org/settings/apps/new', async (req, reply) => {
    const org = ctx.store.orgExists(req.params.org);
    if (!org) return page(reply, 404, 'Not Found', '<p>No such organization.</p>');
    return newApp({ login: org.login, id: org.id, nodeId: org.nodeId, type: 'Organization' }, req.body, req.query.state, reply);
  });

  scope.post<{ Body: Form }>('/settings/apps/new/confirm', async (req, reply) => {
    const name = req.body?.name?.trim() ?? '';
    const done = name === '' ? undefined : ctx.manifests.confirm(req.body?.page ?? '', name);
    if (!done) return page(reply, 422, 'Could not create the GitHub App', '<p>Name the App, from a page that has not been used.</p>');
    const to = new URL(done.pending.manifest.redirect_url);
    to.searchParams.set('code', done.code);
    if (done.pending.state !== undefined) to.searchParams.set('state', done.pending.state);
    return reply.redirect(to.toString(), 302);
  });
}

/** `POST /app-manifests/{code}/conversions`: the App is made, and becomes the sim's one App. */
export function manifestConversionRoute(scope: FastifyInstance, ctx: SimContext): void {
  scope.post<{ Params: { code: string } }>('/app-manifests/:code/conversions', async (req, reply) => {
    const taken = ctx.manifests.take(req.params.code);
    if (!taken) throw new SimError(404, 'Not Found', DOCS_CONVERSION);
    const { manifest, owner } = taken.pending;
    const id = ctx.store.ids.take('app');
    const privateKeyPem = await generateAppKey();
    const app: SimApp = {
      id, slug: slugOf(taken.name), name: taken.name, description: manifest.description ?? '', externalUrl: manifest.url, owner,
      permissions: { metadata: 'read', ...manifest.default_permissions }, events: manifest.default_events ?? [],
      createdAt: isoNow(), privateKeyPem, publicKey: publicKeyOf(privateKeyPem),
    };
    const webhookSecret = randomBytes(20).toString('hex');
    const clientSecret = randomBytes(20).toString('hex');
    ctx.app = app;
    const hook = manifest.hook_attributes;
    ctx.hookshot.setTarget(hook && hook.active !== false ? hook.url : undefined, webhookSecret);
    ctx.logger.info({ appId: id, slug: app.slug, owner: owner.login }, 'app created from a manifest');
    return reply.code(201).send({
      id, slug: app.slug, node_id: Buffer.from(`03:App${id}`).toString('base64'), client_id: clientIdOf(id),
      owner: userJson(owner, ctx.urls()), name: app.name, description: app.description, external_url: app.externalUrl,
      html_url: `${ctx.urls().html}/apps/${app.slug}`, created_at: app.createdAt, updated_at: app.createdAt,
      permissions: app.permissions, events: app.events, installations_count: 0,
      client_secret: clientSecret, webhook_secret: webhookSecret, pem: privateKeyPem,
    });
  });
}
