import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { credential, verifyAppJwt } from './auth.js';
import type { SimContext } from './context.js';
import { DOCS, SimError, errorBody } from './errors.js';

/**
 * What every GitHub REST route of the sim shares: the headers api.github.com sends, the
 * secondary-rate-limit knob, authentication (App JWT or installation token) and error bodies.
 * Call inside a plugin scope so none of it touches the control API or the runner protocol.
 */
export function githubApiHooks(scope: FastifyInstance, ctx: SimContext): void {
  const rate = { used: 0, reset: Math.floor(Date.now() / 1000) + 3600 };

  scope.addHook('onRequest', async (req, reply) => {
    const now = Math.floor(Date.now() / 1000);
    if (now >= rate.reset) Object.assign(rate, { used: 0, reset: now + 3600 });
    const limit = ctx.knobs.get().rateLimitPerHour;
    const spent = rate.used >= limit;
    if (!spent) rate.used++;
    reply.headers({
      'content-type': 'application/json; charset=utf-8',
      'x-github-api-version-selected': '2022-11-28',
      'x-github-media-type': 'github.v3; format=json',
      'x-github-request-id': `${randomBytes(2).toString('hex').toUpperCase()}:${randomBytes(4).toString('hex').toUpperCase()}`,
      'x-ratelimit-limit': String(limit),
      'x-ratelimit-remaining': String(Math.max(0, limit - rate.used)),
      'x-ratelimit-reset': String(rate.reset),
      'x-ratelimit-used': String(rate.used),
      'x-ratelimit-resource': 'core',
    });
    if (spent) {
      // GitHub's answer once the hour's requests are spent: 403, remaining 0, until the reset.
      await reply.code(403).send({
        message: 'API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.',
        documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
        status: '403',
      });
      return reply;
    }
    const knobs = ctx.knobs.get();
    if (ctx.knobs.chance(knobs.rateLimitShare)) {
      const id = reply.getHeader('x-github-request-id');
      reply.header('retry-after', String(knobs.retryAfterSeconds));
      await reply.code(knobs.rateLimitStatus).send({
        message: `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${String(id)}.`,
        documentation_url: 'https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
        status: String(knobs.rateLimitStatus),
      });
      return reply;
    }
    authenticate(req, ctx);
  });

  // onResponse also sees answers sent from onRequest (rate limits, 401s).
  scope.addHook('onResponse', async (req, reply) => {
    // elapsedTime: since the request arrived, so the record says when it reached the sim.
    ctx.calls.record(req.method, req.routeOptions.url ?? req.url, reply.statusCode, Date.now() - reply.elapsedTime);
  });

  scope.setErrorHandler(async (err: unknown, _req, reply) => {
    if (err instanceof SimError) return reply.code(err.status).send(errorBody(err));
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 400 || status === 415) return reply.code(400).send({ message: 'Problems parsing JSON', documentation_url: DOCS, status: '400' });
    if (status === 413) return reply.code(413).send({ message: 'Payload Too Large', documentation_url: DOCS, status: '413' });
    ctx.logger.error({ err }, 'sim route failed');
    return reply.code(500).send({ message: 'Server Error', documentation_url: DOCS, status: '500' });
  });
}

/** Throws GitHub's 401 when the route's credential is missing, wrong or expired. */
function authenticate(req: FastifyRequest, ctx: SimContext): void {
  const want = req.routeOptions.config.auth;
  if (!want) return;
  const cred = credential(req.headers.authorization);
  if (!cred) throw new SimError(401, 'Requires authentication', DOCS);
  if (want === 'jwt') return verifyAppJwt(cred, ctx.app.publicKey, ctx.app.id);
  if (!ctx.tokens.valid(cred)) throw new SimError(401, 'Bad credentials', DOCS);
}

export interface PageQuery {
  per_page?: string | undefined;
  page?: string | undefined;
}

/** `per_page` (1..100, default 30) and `page` (from 1), with GitHub's 422 for nonsense. */
export function pageParams(q: PageQuery): { perPage: number; page: number } {
  const perPage = q.per_page === undefined ? 30 : Number(q.per_page);
  const page = q.page === undefined ? 1 : Number(q.page);
  if (!Number.isInteger(perPage) || !Number.isInteger(page) || page < 1 || perPage < 1) {
    throw new SimError(422, 'Invalid request.\n\nper_page and page must be positive integers.', DOCS);
  }
  return { perPage: Math.min(perPage, 100), page };
}

/** One page of `items` and GitHub's `Link` header (next, last, first, prev) when there is more than one page. */
export function paginate<T>(req: FastifyRequest, reply: FastifyReply, ctx: SimContext, items: T[]): T[] {
  const { perPage, page } = pageParams(req.query as PageQuery);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const url = new URL(req.url, ctx.urls().api);
  const at = (p: number) => {
    const u = new URL(url.pathname, ctx.urls().api);
    for (const [k, v] of url.searchParams) if (k !== 'page') u.searchParams.set(k, v);
    u.searchParams.set('per_page', String(perPage));
    u.searchParams.set('page', String(p));
    return u.toString();
  };
  const links: string[] = [];
  if (page > 1) links.push(`<${at(page - 1)}>; rel="prev"`);
  if (page < last) links.push(`<${at(page + 1)}>; rel="next"`, `<${at(last)}>; rel="last"`);
  if (page > 1) links.push(`<${at(1)}>; rel="first"`);
  if (links.length > 0) reply.header('link', links.join(', '));
  return items.slice((page - 1) * perPage, page * perPage);
}
