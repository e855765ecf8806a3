import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/main/local-redis.js';

/**
 * A real Prometheus (Debian's `prometheus`, test/setup.sh) scraping targets every second, with
 * its own data dir under a temp dir and a listener on a free loopback port. Its scrape config
 * carries the relabelling the README documents for ARC's Grafana dashboard (pool → the
 * `actions_github_com_scale_set_name` label Kubernetes would have added), so a test can ask the
 * dashboard's own queries.
 */
export interface Target {
  job: string;
  /** `host:port` */
  address: string;
  metricsPath?: string;
  /** Extra text under the job (e.g. `scheme`, `tls_config`), indented by two spaces. */
  extra?: string;
}

export interface Prometheus {
  url: string;
  /** An instant query's vector: each series' labels and value. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** The one value of an instant query that must return one series (null when it returns none). */
  value(expr: string): Promise<number | null>;
  close(): Promise<void>;
}

export const PROMETHEUS_BIN = process.env.HANGAR_PROMETHEUS ?? 'prometheus';

/** The relabelling the README documents: ARC's dashboard filters on labels Kubernetes adds. */
export const ARC_RELABEL = `    metric_relabel_configs:
      - {source_labels: [__name__, name], regex: 'gha_.+;(.+)', target_label: actions_github_com_scale_set_name, replacement: '$1'}
      - {source_labels: [__name__, namespace], regex: 'gha_.+;(.+)', target_label: actions_github_com_scale_set_namespace, replacement: '$1'}`;

export interface PrometheusOptions {
  /** Run it inside this network namespace (`/run/netns/NAME`, entered with nsenter), beside what it scrapes. */
  netns?: string;
  /** How to GET its HTTP API (default fetch; inside a namespace, e.g. curl run there). */
  get?: (url: string) => Promise<{ ok: boolean; text: string }>;
}

const fetchText = (url: string) => fetch(url).then(async (r) => ({ ok: r.ok, text: await r.text() }));

export async function startPrometheus(targets: readonly Target[], o: PrometheusOptions = {}): Promise<Prometheus> {
  const get = o.get ?? fetchText;
  const dir = mkdtempSync(join(tmpdir(), 'hangar-prometheus-'));
  const port = await freePort();
  const jobs = targets.map((t) => `  - job_name: ${t.job}
    metrics_path: ${t.metricsPath ?? '/metrics'}
    static_configs: [{targets: ['${t.address}']}]
${ARC_RELABEL}
${t.extra ? t.extra.replace(/^/gm, '    ') : ''}`);
  writeFileSync(join(dir, 'prometheus.yml'), `global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}\nscrape_configs:\n${jobs.join('\n')}\n`);
  const args = [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ];
  const [cmd, argv] = o.netns ? ['nsenter', [`--net=${o.netns}`, PROMETHEUS_BIN, ...args]] : [PROMETHEUS_BIN, args];
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await ready(url, get, proc, exited, () => stderr);
  const query = async (expr: string) => {
    const res = await get(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = JSON.parse(res.text) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success' || body.data?.resultType !== 'vector') throw new Error(`prometheus: ${expr}: ${body.error ?? body.data?.resultType}`);
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    query,
    async value(expr) {
      const r = await query(expr);
      if (r.length > 1) throw new Error(`prometheus: ${expr} returned ${r.length} series`);
      return r[0]?.value ?? null;
    },
    async close() {
      await stop(proc, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ready(url: string, get: NonNullable<PrometheusOptions['get']>, proc: ChildProcess, exited: Promise<number | null>, stderr: () => string): Promise<void> {
  let gone: number | null | undefined;
  void exited.then((c) => (gone = c));
  for (let i = 0; i < 300; i++) {
    if (gone !== undefined) throw new Error(`prometheus exited (${gone}) before it was ready: ${stderr()}`);
    const ok = await get(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`prometheus not ready after 30 s: ${stderr()}`);
}

async function stop(proc: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
