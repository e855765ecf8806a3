import { readFileSync } from 'node:fs';
import { createAppAuth } from '@octokit/auth-app';
import { fail, judgeClockSkew, ok, skip } from '../domain/doctor.js';
import type { Check, DoctorContext } from './check.js';
import { askControl, networkReason } from './control-checks.js';

/**
 * The GitHub App's credentials as GitHub (or `hangar sim`) judges them: an App JWT made from
 * github.privateKeyFile and `GET /app`. The JWT and the key stay in this process; only the
 * answer's status and message are reported.
 */
export const githubApp: Check = {
  id: 'github-app',
  title: "the GitHub App's credentials accepted",
  async run(ctx) {
    const g = ctx.control!.github;
    let jwt: string;
    try {
      const key = readFileSync(g.privateKeyFile, 'utf8');
      jwt = (await createAppAuth({ appId: g.appId, privateKey: key })({ type: 'app' })).token;
    } catch {
      // Never the library's message: it may quote the key.
      return fail(`cannot make an App JWT from github.privateKeyFile ${g.privateKeyFile}: not a usable RSA private key`, "put the App's private key (PEM, from the App's settings) in github.privateKeyFile");
    }
    let res: Response;
    try {
      res = await fetch(new URL('/app', withSlash(g.apiUrl)), { headers: { authorization: `Bearer ${jwt}`, accept: 'application/vnd.github+json', 'user-agent': 'hangar-doctor' }, signal: AbortSignal.timeout(ctx.timeoutMs) });
    } catch (err) {
      return fail(`cannot reach github.apiUrl ${g.apiUrl}: ${networkReason(err)}`, 'check this machine\'s route and DNS to GitHub, or correct github.apiUrl');
    }
    const body = (await res.json().catch(() => ({}))) as { id?: unknown; slug?: unknown; message?: unknown };
    if (res.status === 200) return ok(`${g.apiUrl} accepts App ${g.appId}${typeof body.slug === 'string' ? ` (${body.slug})` : ''}`);
    const why = typeof body.message === 'string' ? body.message : '';
    return fail(
      `${g.apiUrl} refused App ${g.appId}'s JWT (${res.status}${why ? `: ${why}` : ''})`,
      `check github.appId (${g.appId}) and that github.privateKeyFile holds a current private key of that App (GitHub → the App's settings → Private keys); a clock off by over a minute does this too (see clock-skew)`,
    );
  },
};

/** The API's path may have a prefix (GHES: /api/v3): keep it when resolving /app. */
const withSlash = (u: string) => (u.endsWith('/') ? u : `${u}/`);

export const clockSkew: Check = {
  id: 'clock-skew',
  title: 'clock within a minute of GitHub (or the control)',
  async run(ctx) {
    if (ctx.control) {
      const api = ctx.control.github.apiUrl;
      const res = await fetch(api, { method: 'GET', headers: { 'user-agent': 'hangar-doctor' }, signal: AbortSignal.timeout(ctx.timeoutMs) }).catch(() => null);
      if (!res) return skip(`github.apiUrl ${api} is unreachable (see github-app)`);
      await res.body?.cancel();
      return judgeClockSkew(ctx.now(), res.headers.get('date') ?? undefined, `GitHub (${api})`);
    }
    return skewAgainstControl(ctx);
  },
};

async function skewAgainstControl(ctx: DoctorContext) {
  const reply = await askControl(ctx, '/healthz').catch(() => null);
  if (!reply) return skip('the control is unreachable (see control-reachable)');
  return judgeClockSkew(ctx.now(), reply.date, `the control (${ctx.agent!.agent.controlUrl})`);
}
