import { loadConfig, requireControl } from '../config/load.js';
import { splitListen } from '../config/control-schema.js';
import { readOperatorTokenFile } from '../config/secrets.js';
import { HangarError } from '../domain/errors.js';
import type { Overview } from '../dashboard/api-types.js';
import { formatOverview } from './status-format.js';

/**
 * `hangar status [--json] --config FILE [--url URL]`: the dashboard's overview in a terminal,
 * read from the running control's dashboard API with the operator token (bearer), never from
 * Redis: what the page shows, the terminal shows. `--json` prints the API's JSON as it came.
 */
export async function status(configFile: string, opts: { json: boolean; url?: string }): Promise<void> {
  const config = requireControl(loadConfig(configFile));
  const token = readOperatorTokenFile(config);
  const base = opts.url ?? dashboardUrl(config.dashboard.listen);
  const url = new URL('/api/v1/overview', base).toString();
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
    const cause = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (err as Error).name;
    throw new HangarError('control-unreachable', `the control's dashboard at ${base} did not answer (${cause}): is hangar control running with the dashboard enabled, and is dashboard.listen (or --url) where it listens?`);
  }
  const text = await res.text();
  if (res.status === 401) throw new HangarError('token-refused', `the dashboard at ${base} refused the operator token in dashboard.tokenFile (${config.dashboard.tokenFile}): is it the file this control reads?`);
  if (res.status !== 200) throw new HangarError('dashboard-error', `the dashboard at ${base} answered ${res.status} to GET /api/v1/overview`);
  if (opts.json) return void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  process.stdout.write(formatOverview(JSON.parse(text) as Overview));
}

/** Where a client on this machine reaches `dashboard.listen` (a wildcard address means this machine). */
export function dashboardUrl(listen: string): string {
  const { host, port } = splitListen(listen);
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}
