import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PageContext } from './server.js';

/**
 * The dashboard page's routes on the dashboard listener (the `pageRoutes` hook of server.ts):
 * - `GET /`: the page (index.html), behind the session (`ctx.requireSession` sends anyone
 *   without one to /login);
 * - `GET /assets/<file>`: its browser modules, their source maps, its stylesheet and icon (also
 *   at `/favicon.ico`, which browsers ask for by themselves);
 * - `GET /vendor/uplot/uPlot.esm.js`, `uPlot.min.css`: the chart library, from node_modules
 *   (npm `uplot`), so the page needs no CDN and works offline.
 * Assets and vendor files are code the same for everyone, with no data in them: they are served
 * without a session, so the login form can use the stylesheet too. Every file is read once, at
 * registration, into memory, and looked up by exact name: no path from a request reaches the
 * file system. The listener's onSend hook adds the CSP and the other security headers.
 *
 * The page is built by `npm run build` into dist/dashboard/page/. Run from the sources (tests),
 * this module finds it there too; not built, `/` answers 503 saying so, and the rest of the
 * control runs on.
 */
interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

/** Where the built page is: beside this module in dist/, or dist/ seen from src/. */
export function builtPageDir(): string | null {
  for (const dir of [here('./page/'), here('../../dist/dashboard/page/')]) {
    if (existsSync(join(dir, 'main.js')) && existsSync(join(dir, 'index.html'))) return dir;
  }
  return null;
}

function load(path: string): StaticFile {
  const body = readFileSync(path);
  const ext = path.slice(path.lastIndexOf('.'));
  return { body, type: TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function send(req: FastifyRequest, reply: FastifyReply, f: StaticFile): FastifyReply {
  // Revalidated every time (an upgraded control shows its new page at once), answered 304 when unchanged.
  void reply.header('cache-control', 'no-cache').header('etag', f.etag).type(f.type);
  if (req.headers['if-none-match'] === f.etag) return reply.code(304).send();
  return reply.send(f.body);
}

export const UPLOT_FILES = { 'uPlot.esm.js': 'uplot/dist/uPlot.esm.js', 'uPlot.min.css': 'uplot/dist/uPlot.min.css' } as const;

/** The page's routes (server.ts `PageRoutes`). */
export function pageRoutes(app: FastifyInstance, ctx: PageContext): void {
  const dir = builtPageDir();
  const assets = new Map<string, StaticFile>();
  let index: StaticFile | null = null;
  if (dir) {
    index = load(join(dir, 'index.html'));
    for (const name of readdirSync(dir)) if (/^[\w.-]+\.(js|js\.map|css|svg)$/.test(name)) assets.set(name, load(join(dir, name)));
  }
  const require = createRequire(import.meta.url);
  const vendor = new Map(Object.entries(UPLOT_FILES).map(([name, spec]) => [name, load(require.resolve(spec))]));

  app.get('/', { preHandler: ctx.requireSession }, async (req, reply) => {
    if (!index) return reply.code(503).type('text/plain; charset=utf-8').send('The dashboard page is not built: run `npm run build`.\n');
    return send(req, reply, index);
  });
  // Browsers ask for it by themselves, on the login page too.
  app.get('/favicon.ico', async (req, reply) => {
    const f = assets.get('favicon.svg');
    if (!f) return reply.code(404).send({ error: 'not-found', message: 'no such file' });
    return send(req, reply, f);
  });
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    const f = assets.get(req.params.file);
    if (!f) return reply.code(404).send({ error: 'not-found', message: 'no such file' });
    return send(req, reply, f);
  });
  app.get<{ Params: { file: string } }>('/vendor/uplot/:file', async (req, reply) => {
    const f = vendor.get(req.params.file);
    if (!f) return reply.code(404).send({ error: 'not-found', message: 'no such file' });
    return send(req, reply, f);
  });
}
