import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SimContext } from './context.js';
import { SimError } from './errors.js';
import { paginate } from './github-api.js';
import type { Delivery } from './hookshot.js';
import { isoNow } from './model.js';
import { clientIdOf } from './app.js';
import { installationJson, repoFields, userJson } from './shapes.js';

/**
 * The App's own routes, all with the App JWT: installation tokens, finding the installation of a
 * repository or organization, and the App's webhook deliveries (App JWT); and the repositories
 * the installation reaches (installation token). The sim has one installation, on every account
 * it knows (`repository_selection: all`), so that list holds every repository of every account.
 */

const DOCS_TOKEN = 'https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app';
const DOCS_REPO_INSTALLATION = 'https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app';
const DOCS_ORG_INSTALLATION = 'https://docs.github.com/rest/apps/apps#get-an-organization-installation-for-the-authenticated-app';
const DOCS_DELIVERIES = 'https://docs.github.com/rest/apps/webhooks#list-deliveries-for-an-app-webhook';
const jwt = { config: { auth: 'jwt' as const } };
const installationAuth = { config: { auth: 'installation' as const } };

function deliveryJson(d: Delivery): Record<string, unknown> {
  return {
    id: d.id, guid: d.guid, delivered_at: d.deliveredAt, redelivery: d.redelivery, duration: d.duration,
    status: d.status, status_code: d.statusCode, event: d.event, action: d.action, installation_id: d.installationId,
    repository_id: d.repositoryId, throttled_at: null,
  };
}

/** `integration`, as `GET /app` returns it: the sim's one App, as it was started or made from a manifest. */
export function appJson(ctx: SimContext): Record<string, unknown> {
  const a = ctx.app;
  return {
    id: a.id, slug: a.slug, node_id: `A_kwHO${String(a.id).padStart(8, '0')}`, client_id: clientIdOf(a.id),
    owner: userJson(a.owner, ctx.urls()), name: a.name, description: a.description, external_url: a.externalUrl,
    html_url: `${ctx.urls().html}/apps/${a.slug}`, created_at: a.createdAt, updated_at: a.createdAt,
    permissions: a.permissions, events: a.events, installations_count: 1,
  };
}

export function appRoutes(scope: FastifyInstance, ctx: SimContext): void {
  const createdAt = isoNow();
  // Read at each request: a converted manifest replaces the App, and the installation is then its.
  const installation = () => ({ id: ctx.installationId, createdAt, app: ctx.app });

  // The App itself, with its JWT: what `hangar doctor` asks to learn whether GitHub accepts the App's key.
  scope.get('/app', jwt, async () => appJson(ctx));

  // GitHub answers 404 for an account or repository the App is not installed on, and for one that does not exist.
  scope.get<{ Params: { owner: string; repo: string } }>('/repos/:owner/:repo/installation', jwt, async (req) => {
    const repo = ctx.store.repo(`${req.params.owner}/${req.params.repo}`);
    if (!repo) throw new SimError(404, 'Not Found', DOCS_REPO_INSTALLATION);
    return installationJson(installation(), repo.owner, ctx.urls());
  });

  scope.get<{ Params: { org: string } }>('/orgs/:org/installation', jwt, async (req) => {
    const org = ctx.store.orgExists(req.params.org);
    if (!org) throw new SimError(404, 'Not Found', DOCS_ORG_INSTALLATION);
    return installationJson(installation(), org, ctx.urls());
  });

  // https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-app-installation
  scope.get('/installation/repositories', installationAuth, async (req, reply) => {
    const repos = ctx.store.allRepos();
    const page = paginate(req, reply, ctx, repos).map((r) => repoFields(r, ctx.urls()));
    return { total_count: repos.length, repositories: page, repository_selection: 'all' };
  });

  scope.post<{ Params: { installation_id: string } }>('/app/installations/:installation_id/access_tokens', jwt, async (req, reply) => {
    if (Number(req.params.installation_id) !== ctx.installationId) throw new SimError(404, 'Not Found', DOCS_TOKEN);
    const t = ctx.tokens.issue(ctx.knobs.get().tokenTtlSeconds);
    return reply.code(201).send({
      token: t.token,
      expires_at: t.expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      permissions: ctx.app.permissions,
      repository_selection: 'all',
    });
  });

  scope.get<{ Querystring: { per_page?: string; cursor?: string; status?: string } }>('/app/hook/deliveries', jwt, async (req, reply) => {
    const q = req.query;
    const perPage = Math.min(100, q.per_page === undefined ? 30 : Number(q.per_page));
    if (!Number.isInteger(perPage) || perPage < 1) throw new SimError(422, 'Invalid request.\n\nper_page must be a positive integer.', DOCS_DELIVERIES);
    if (q.status !== undefined && q.status !== 'success' && q.status !== 'failure') {
      throw new SimError(422, 'Invalid request.\n\nstatus must be success or failure.', DOCS_DELIVERIES);
    }
    const before = q.cursor === undefined ? Infinity : Number(/^v1_(\d+)$/.exec(q.cursor)?.[1] ?? NaN);
    if (Number.isNaN(before)) throw new SimError(400, 'Bad Request', DOCS_DELIVERIES);
    const ok = (d: Delivery) => d.statusCode >= 200 && d.statusCode < 300;
    const all = ctx.hookshot
      .list()
      .filter((d) => !d.duplicate && d.id < before && (q.status === undefined || (q.status === 'success') === ok(d)))
      .sort((a, b) => b.id - a.id);
    const page = all.slice(0, perPage);
    const lastOnPage = page[page.length - 1];
    if (all.length > perPage && lastOnPage) {
      const next = new URL('/app/hook/deliveries', ctx.urls().api);
      next.searchParams.set('per_page', String(perPage));
      if (q.status) next.searchParams.set('status', q.status);
      next.searchParams.set('cursor', `v1_${lastOnPage.id}`);
      reply.header('link', `<${next.toString()}>; rel="next"`);
    }
    return page.map(deliveryJson);
  });

  const find = (req: FastifyRequest<{ Params: { delivery_id: string } }>) => {
    const d = ctx.hookshot.get(Number(req.params.delivery_id));
    if (!d) throw new SimError(404, 'Not Found', DOCS_DELIVERIES);
    return d;
  };

  scope.get<{ Params: { delivery_id: string } }>('/app/hook/deliveries/:delivery_id', jwt, async (req) => {
    const d = find(req);
    return {
      ...deliveryJson(d),
      url: ctx.hookshot.target().url ?? '',
      request: { headers: d.requestHeaders, payload: JSON.parse(d.body) as unknown },
      response: { headers: d.responseHeaders, payload: d.responseBody },
    };
  });

  scope.post<{ Params: { delivery_id: string } }>('/app/hook/deliveries/:delivery_id/attempts', jwt, async (req, reply: FastifyReply) => {
    ctx.hookshot.redeliver(find(req).id);
    return reply.code(202).send({});
  });
}
