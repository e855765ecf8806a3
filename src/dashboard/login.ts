import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { DashboardAuth } from './auth.js';

/**
 * `GET /login` (a form, no script), `POST /login` (form body `token`, compared in constant
 * time; failures limited per address) and `POST /logout`. Nothing the operator typed is echoed.
 */
export interface LoginDeps {
  auth: DashboardAuth;
  secure: boolean;
  logger: Logger;
}

const page = (message: string | null) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Hangar: log in</title></head>
<body><main><h1>Hangar</h1>
${message ? `<p role="alert">${message}</p>` : ''}
<form method="post" action="/login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<p>The token is the content of the file <code>dashboard.tokenFile</code> names in the control's config.</p>
</main></body></html>`;

const html = (reply: FastifyReply, status: number, message: string | null) => reply.code(status).type('text/html; charset=utf-8').send(page(message));

export function loginRoutes(app: FastifyInstance, d: LoginDeps): void {
  app.get('/login', async (_req, reply) => html(reply, 200, null));

  app.post<{ Body: Record<string, string> | undefined }>('/login', async (req, reply) => {
    if (!d.auth.allowed(req.ip)) {
      void reply.header('retry-after', String(d.auth.retryAfter(req.ip)));
      return html(reply, 429, 'Too many failed tries from this address. Wait a minute and try again.');
    }
    const token = typeof req.body?.token === 'string' ? req.body.token.trim() : '';
    const session = token === '' ? null : await d.auth.login(token);
    if (!session) {
      d.auth.failed(req.ip);
      d.logger.warn({ address: req.ip }, 'dashboard login refused');
      return html(reply, 401, 'That is not the operator token.');
    }
    d.logger.info({ address: req.ip }, 'dashboard login');
    void reply.header('set-cookie', d.auth.cookie(session.id, d.secure));
    return reply.redirect('/', 303);
  });

  // SameSite=Strict keeps other sites from posting here with the cookie; no CSRF token needed to leave.
  app.post('/logout', async (req, reply) => {
    const c = await d.auth.caller(req);
    if (c.via === 'cookie') await d.auth.logout(c.idHash);
    void reply.header('set-cookie', d.auth.cookie(null, d.secure));
    return reply.redirect('/login', 303);
  });
}
