import type { CheckResult } from '../domain/doctor.js';

const MARK = { ok: '✓', warn: '!', fail: '✗', skip: '-' } as const;

/** One line per check; under each non-ok one, its fix. */
export function renderPlain(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.status]} ${r.id}: ${r.detail}`);
    if (r.fix && (r.status === 'warn' || r.status === 'fail')) lines.push(`    fix: ${r.fix}`);
  }
  const count = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  lines.push(`${count('fail')} failed, ${count('warn')} warning(s), ${count('ok')} ok, ${count('skip')} skipped`);
  return `${lines.join('\n')}\n`;
}

export function renderJson(results: readonly CheckResult[]): string {
  const checks = results.map(({ id, status, detail, fix }) => ({ id, status, detail, ...(fix ? { fix } : {}) }));
  return `${JSON.stringify({ ok: !results.some((r) => r.status === 'fail'), checks })}\n`;
}
