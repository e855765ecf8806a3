import type { RefusalView } from '../api-types.js';
import { h, table } from './dom.js';
import { clock, WHERE } from './format.js';

/** Refusals: each refused job, where (intake, mint, the vetter, start) and why. */
export function renderRefusals(refusals: RefusalView[], openJob: (id: number) => void): HTMLElement {
  const rows = refusals.map((r) => {
    const open = h('button', { type: 'button', class: 'link', 'data-focus-key': `refusal-${r.workflowJobId}`, 'aria-haspopup': 'dialog' }, r.jobName);
    open.addEventListener('click', () => openJob(r.workflowJobId));
    return h(
      'tr',
      { 'data-job-id': r.workflowJobId, 'data-where': r.where },
      h('td', null, h('time', { datetime: new Date(r.at).toISOString() }, clock(r.at))),
      h('td', null, h('span', { class: 'repo' }, r.repo), h('br'), h('small', null, r.workflow ?? '—', r.headBranch ? ` · ${r.headBranch}` : '')),
      h('td', null, open),
      h('td', { 'data-field': 'where' }, WHERE[r.where] ?? r.where),
      h('td', { 'data-field': 'why' }, h('code', null, r.why)),
    );
  });
  return table('Refusals', ['When', 'Repository', 'Job', 'Where', 'Why'], rows, 'Nothing refused.');
}
