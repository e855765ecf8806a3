import type { PoolView } from '../api-types.js';
import { h, table } from './dom.js';
import { clock, waits } from './format.js';

/** Pools: waiting, running, the oldest waiting job and why it waits. */
export function renderPools(pools: PoolView[], openJob: (id: number) => void): HTMLElement {
  const rows = pools.map((p) =>
    h(
      'tr',
      { 'data-pool': p.name },
      h('th', { scope: 'row' }, p.name, p.deploy ? h('span', { class: 'badge warn' }, 'deploy') : null),
      h('td', null, labels(p.labels)),
      h('td', { class: 'num', 'data-field': 'waiting' }, p.waiting),
      h('td', { class: 'num', 'data-field': 'running' }, p.running),
      h('td', { class: 'oldest' }, oldest(p, openJob)),
      h('td', null, p.hosts.join(', ') || '—'),
    ),
  );
  return table('Pools', ['Pool', 'Labels', 'Waiting', 'Running', 'Oldest waiting', 'Hosts'], rows, 'No pools in the configuration.');
}

export function labels(list: string[]): HTMLElement {
  return h('ul', { class: 'labels' }, list.map((l) => h('li', null, l)));
}

function oldest(p: PoolView, openJob: (id: number) => void): (HTMLElement | string)[] {
  const o = p.oldestWaiting;
  if (!o) return ['—'];
  const b = h('button', { type: 'button', class: 'link', 'data-focus-key': `pool-job-${p.name}` }, `#${o.workflowJobId}`);
  b.addEventListener('click', () => openJob(o.workflowJobId));
  return [b, ` since ${clock(o.since)}: `, h('span', { class: 'why' }, waits(o.why))];
}
