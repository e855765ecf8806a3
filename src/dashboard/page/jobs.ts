import type { JobView, PhaseTimes } from '../api-types.js';
import { h, table, token } from './dom.js';
import { after, clock, waits } from './format.js';
import { labels } from './pools.js';

export const STEPS: readonly [keyof PhaseTimes, string][] = [
  ['queued', 'queued'],
  ['minted', 'minted'],
  ['vmUp', 'VM up'],
  ['started', 'started'],
  ['finished', 'finished'],
];

/** Jobs, live and recent: repository, workflow, job, labels, host, VM, each phase with its time, result. */
export function renderJobs(jobs: JobView[], openJob: (id: number) => void): HTMLElement {
  const rows = jobs.map((j) => {
    const open = h('button', { type: 'button', class: 'link job-name', 'data-focus-key': `job-${j.workflowJobId}`, 'aria-haspopup': 'dialog' }, j.jobName);
    open.addEventListener('click', () => openJob(j.workflowJobId));
    return h(
      'tr',
      { 'data-job-id': j.workflowJobId, 'data-result': token(j.result) },
      h('td', null, h('span', { class: 'repo' }, j.repo), h('br'), h('small', null, j.workflow ?? '—', j.headBranch ? ` · ${j.headBranch}` : '', j.event ? ` · ${j.event}` : '')),
      h('td', null, open, h('br'), h('small', null, `#${j.workflowJobId}`, j.tries > 1 ? ` · try ${j.tries}` : '')),
      h('td', null, labels(j.labels)),
      h('td', null, j.host ?? '—', h('br'), h('small', null, j.vm ?? '')),
      h('td', null, phases(j.times)),
      h('td', null, result(j.result), j.stuckWhy ? h('small', { class: 'why' }, waits(j.stuckWhy)) : null),
    );
  });
  return table('Jobs, live and recent', ['Repository', 'Job', 'Labels', 'Host / VM', 'Phases', 'Result'], rows, 'No jobs yet.');
}

export function result(r: string): HTMLElement {
  return h('span', { class: `result result-${token(r)}` }, r);
}

/** queued 14:03:07 · minted +1 s · VM up +3 s …: the steps it reached, times after queued. */
export function phases(t: PhaseTimes): HTMLElement {
  return h(
    'ol',
    { class: 'phases' },
    STEPS.filter(([k]) => t[k] !== null).map(([k, name]) =>
      h('li', { 'data-phase': k }, h('span', null, name), ' ', h('time', { datetime: new Date(t[k]!).toISOString() }, k === 'queued' ? clock(t[k]) : after(t.queued, t[k]) || clock(t[k]))),
    ),
  );
}
