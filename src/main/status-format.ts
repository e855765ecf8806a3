import type { Overview } from '../dashboard/api-types.js';

/** The overview in plain columns (hangar status): hosts, pools, recent jobs, refusals, batch, savings. */
export function formatOverview(o: Overview, now = o.generatedAt): string {
  const out: string[] = [];
  const ago = (t: number | null) => (t === null ? '-' : `${Math.max(0, Math.round((now - t) / 1000))}s ago`);
  const table = (title: string, head: string[], rows: string[][]) => {
    out.push(`${title}`);
    if (rows.length === 0) return void out.push('  (none)', '');
    const widths = head.map((h, i) => Math.min(40, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
    const line = (r: string[]) => `  ${r.map((c, i) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c.padEnd(widths[i]!))).join('  ')}`.trimEnd();
    out.push(line(head), ...rows.map(line), '');
  };
  table('HOSTS', ['NAME', 'ROLE', 'STATE', 'SLOTS', 'CPU', 'MEMORY', 'POOLS'], o.hosts.map((h) => [
    h.name, h.role,
    !h.up ? 'down' : h.drained ? 'drained' : h.draining ? 'draining' : 'up',
    h.slots ? `${h.slots.used}/${h.slots.total}` : '-',
    h.usage?.cpuPercent != null ? `${Math.round(h.usage.cpuPercent)}%${h.usage.cpuQuotaCores != null ? `/${h.usage.cpuQuotaCores * 100}%` : ''}` : '-',
    h.usage?.memoryBytes != null ? `${mib(h.usage.memoryBytes)}${h.usage.memoryMaxBytes != null ? `/${mib(h.usage.memoryMaxBytes)}` : ''}` : '-',
    h.pools.join(','),
  ]));
  table('POOLS', ['NAME', 'WAITING', 'RUNNING', 'OLDEST WAITING'], o.pools.map((p) => [
    p.name, String(p.waiting), String(p.running),
    p.oldestWaiting ? `job ${p.oldestWaiting.workflowJobId}, ${ago(p.oldestWaiting.since)}: ${p.oldestWaiting.why}` : '-',
  ]));
  table('JOBS', ['ID', 'REPO', 'JOB', 'PHASE', 'RESULT', 'HOST', 'UPDATED'], o.jobs.slice(0, 20).map((j) => [
    String(j.workflowJobId), j.repo, j.jobName, j.phase ?? '-', j.result, j.host ?? '-', ago(j.updatedAt),
  ]));
  table('REFUSALS', ['ID', 'REPO', 'JOB', 'WHERE', 'WHY', 'WHEN'], o.refusals.slice(0, 10).map((r) => [
    String(r.workflowJobId), r.repo, r.jobName, r.where, r.why, ago(r.at),
  ]));
  if (o.batch) {
    const b = o.batch;
    out.push('NIGHTLY BATCH', `  ${b.done}/${b.total} done, ${b.failed} failed, ${b.running} running, ${b.waiting} waiting; makespan ${b.makespanMs === null ? '-' : `${Math.round(b.makespanMs / 1000)}s`}`, '');
  }
  const s = o.savings;
  out.push(
    `SAVINGS ${s.month} (plan ${s.plan}, $${s.pricePerMinute}/min, ${s.includedMinutes} min included)`,
    `  ${s.jobs} jobs, ${s.minutes} min; gross $${s.gross.toFixed(2)}, included $${s.included.toFixed(2)}, saved $${s.saved.toFixed(2)}; platform charge would be $${s.platformCharge.toFixed(2)}, net $${s.net.toFixed(2)}`,
    '',
  );
  return out.join('\n');
}

const mib = (b: number) => `${Math.round(b / 1024 / 1024)}M`;
