import type { JobDetail, JobEventView } from '../api-types.js';
import { jobAction } from './api.js';
import { act } from './dialogs.js';
import { h, table, type Child } from './dom.js';
import { after, clock, count, duration, WHERE } from './format.js';
import { STEPS, result } from './jobs.js';
import { labels } from './pools.js';

/**
 * One job's detail (the dialog a job's name opens): every phase with its time, the result, a
 * refusal's where and why, a failed VM's console tail, the egress log, its events, and the
 * operator's cancel and retry.
 */
export function renderJobDetail(j: JobDetail, onAction: () => void): Child[] {
  return [
    h('header', { class: 'detail-head' }, h('h2', { id: 'job-detail-title' }, j.jobName), h('p', null, j.repo, ' · ', j.workflow ?? '—', ' · ', `#${j.workflowJobId}`), result(j.result)),
    actions(j, onAction),
    j.refusal ? h('p', { class: 'refusal', 'data-field': 'refusal' }, h('strong', null, `Refused ${WHERE[j.refusal.where] ?? j.refusal.where}: `), j.refusal.why) : null,
    facts(j),
    h('h3', null, 'Phases'),
    steps(j),
    j.vmEnd ? vmEnd(j) : null,
    j.consoleTail ? [h('h3', null, 'Console tail'), h('pre', { class: 'console', tabindex: 0, 'aria-label': 'console tail' }, j.consoleTail)] : null,
    h('h3', null, 'Egress'),
    egress(j.egress),
    h('h3', null, 'Events'),
    events(j.events),
  ];
}

function actions(j: JobDetail, onAction: () => void): HTMLElement | null {
  if (!j.actions.cancel && !j.actions.retry) return null;
  const bar = h('p', { class: 'actions' });
  const add = (action: 'cancel' | 'retry', label: string, question: string): void => {
    const b = h('button', { type: 'button', class: action === 'cancel' ? 'warn' : '', 'data-action': action }, label);
    b.addEventListener('click', () => void act(question, label, (why) => jobAction(j.workflowJobId, action, why)).then((r) => r && onAction()));
    bar.append(b);
  };
  if (j.actions.cancel) add('cancel', 'Cancel', `Cancel job ${j.jobName}? GitHub cancels its whole run (run ${j.runId}).`);
  if (j.actions.retry) add('retry', 'Retry', `Retry job ${j.jobName}?`);
  return bar;
}

function facts(j: JobDetail): HTMLElement {
  const rows: [string, Child | Child[]][] = [
    ['Run', `${j.runId} (attempt ${j.runAttempt})${j.event ? `, ${j.event}` : ''}`],
    ['Branch', [j.headBranch ?? '—', j.headSha ? ` @ ${j.headSha.slice(0, 12)}` : '']],
    ['Labels', labels(j.labels)],
    ['Pool', j.pool ?? '—'],
    ['Host', j.host ?? '—'],
    ['VM', j.vm ?? '—'],
    ['Runner', [j.runnerName ?? '—', j.mintedRunner && j.mintedRunner !== j.runnerName ? ` (minted ${j.mintedRunner})` : '']],
    ['Phase', [j.phase ?? '—', j.phaseBy ? ` by ${j.phaseBy}` : '', j.phaseWhy ? `: ${j.phaseWhy}` : '']],
    ['GitHub', [j.state, j.conclusion ? ` (${j.conclusion})` : '']],
    ['Tries', String(j.tries)],
  ];
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function steps(j: JobDetail): HTMLElement {
  const t = j.times;
  return h(
    'ol',
    { class: 'steps' },
    STEPS.map(([k, name]) =>
      h('li', { 'data-phase': k, class: t[k] === null ? 'not-reached' : 'reached' }, h('span', { class: 'step' }, name), ' ', t[k] === null ? '—' : [h('time', { datetime: new Date(t[k]!).toISOString() }, clock(t[k])), ' ', h('small', null, k === 'queued' ? '' : after(t.queued, t[k]))]),
    ),
  );
}

function vmEnd(j: JobDetail): HTMLElement {
  const v = j.vmEnd!;
  return h('p', { class: 'vm-end' }, `VM ended: ${v.outcome}`, v.exitCode !== null ? `, exit ${v.exitCode}` : '', v.ms !== null ? `, after ${duration(v.ms)}` : '', v.reason ? ` (${v.reason})` : '');
}

/** One name of the egress log's DNS section (src/net/egress-log.ts DnsNameRecord), as far as the page reads it. */
interface DnsName {
  name: string;
  count: number;
  allowed: number;
  denied: number;
  answers: string[];
}

/** The egress log is the host's JSON; read defensively (any field may be missing), shown as text. */
function egress(log: unknown): HTMLElement {
  const dns = (log as { dns?: { names?: unknown; queries?: unknown; overflow?: unknown } } | null)?.dns;
  if (!dns || !Array.isArray(dns.names)) return h('p', { class: 'empty' }, 'No egress log for this job.');
  const names = (dns.names as Partial<DnsName>[]).filter((n) => typeof n?.name === 'string');
  const rows = names.map((n) =>
    h(
      'tr',
      { class: (n.denied ?? 0) > 0 ? 'denied' : '' },
      h('td', null, String(n.name)),
      h('td', { class: 'num' }, count(Number(n.count ?? 0))),
      h('td', { class: 'num' }, count(Number(n.allowed ?? 0))),
      h('td', { class: 'num' }, count(Number(n.denied ?? 0))),
      h('td', null, Array.isArray(n.answers) ? n.answers.map(String).join(', ') : ''),
    ),
  );
  const summary = h('p', null, `${count(Number(dns.queries ?? 0))} DNS queries`, Number(dns.overflow ?? 0) > 0 ? `, ${count(Number(dns.overflow))} past the cap of names` : '');
  return h('div', { class: 'egress' }, summary, table('DNS names asked', ['Name', 'Queries', 'Allowed', 'Denied', 'Answers'], rows, 'No DNS queries.'));
}

function events(list: JobEventView[]): HTMLElement {
  if (list.length === 0) return h('p', { class: 'empty' }, 'No events left in the stream.');
  return h(
    'ol',
    { class: 'events' },
    list.map((e) =>
      h('li', null, h('time', { datetime: new Date(e.at).toISOString() }, clock(e.at)), ' ', h('span', { class: 'by' }, e.by), ' ', h('span', { class: 'type' }, e.type), ' ', Object.entries(e.fields).map(([k, v]) => `${k}=${v}`).join(' ')),
    ),
  );
}
