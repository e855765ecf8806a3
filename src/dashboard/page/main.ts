/**
 * The dashboard page: one document (index.html), this module and its siblings, no framework.
 * State is the overview the stream sent first, kept current by the stream's messages applied by
 * key (api-types.ts StreamMessage); each message re-renders only its section. Every string from
 * GitHub reaches the DOM through dom.ts as text.
 */
import type { HostView, JobView, Overview, PoolView, RefusalView, StreamMessage } from '../api-types.js';
import { ApiFailure, getJob, logout } from './api.js';
import { renderBatch } from './batch.js';
import { notice } from './dialogs.js';
import { byId, h, replace } from './dom.js';
import { clock } from './format.js';
import { renderHosts } from './hosts.js';
import { renderJobDetail } from './job-detail.js';
import { renderJobs } from './jobs.js';
import { renderPools } from './pools.js';
import { renderRefusals } from './refusals.js';
import { renderSavings } from './savings.js';
import { openStream, type LinkState } from './stream.js';

const JOBS_KEPT = 200;
const REFUSALS_KEPT = 100;

let view: Overview | null = null;
let detailId: number | null = null;

const upsert = <T>(list: T[], item: T, same: (a: T) => boolean): T[] => {
  const i = list.findIndex(same);
  if (i === -1) return [...list, item];
  const out = list.slice();
  out[i] = item;
  return out;
};

function apply(m: StreamMessage): void {
  if (m.event === 'overview') {
    view = m.data;
    renderAll();
    byId('main').dataset.ready = 'true';
    if (detailId !== null) void refreshDetail(detailId);
    return;
  }
  if (!view) return; // nothing before the first overview (the server always sends it first)
  switch (m.event) {
    case 'job': {
      const j: JobView = m.data;
      view.jobs = upsert(view.jobs, j, (x) => x.workflowJobId === j.workflowJobId)
        .sort((a, b) => b.updatedAt - a.updatedAt)
        .slice(0, JOBS_KEPT);
      renderSection('jobs');
      if (detailId === j.workflowJobId) void refreshDetail(detailId);
      break;
    }
    case 'host': {
      const host: HostView = m.data;
      view.hosts = upsert(view.hosts, host, (x) => x.name === host.name);
      renderSection('hosts');
      break;
    }
    case 'pool': {
      const pool: PoolView = m.data;
      view.pools = upsert(view.pools, pool, (x) => x.name === pool.name);
      renderSection('pools');
      break;
    }
    case 'refusal': {
      const r: RefusalView = m.data;
      view.refusals = [r, ...view.refusals.filter((x) => x.workflowJobId !== r.workflowJobId)].slice(0, REFUSALS_KEPT);
      renderSection('refusals');
      break;
    }
    case 'batch':
      view.batch = m.data;
      renderSection('batch');
      break;
    case 'savings':
      view.savings = m.data;
      renderSection('savings');
      break;
  }
  stamp();
}

type Section = 'hosts' | 'pools' | 'jobs' | 'refusals' | 'batch' | 'savings';

function renderSection(s: Section): void {
  if (!view) return;
  const body = byId(`${s}-body`);
  switch (s) {
    case 'hosts':
      return replace(body, renderHosts(view.hosts, markDrained));
    case 'pools':
      return replace(body, renderPools(view.pools, openJob));
    case 'jobs':
      return replace(body, renderJobs(view.jobs, openJob));
    case 'refusals':
      return replace(body, renderRefusals(view.refusals, openJob));
    case 'batch': {
      const b = renderBatch(view.batch, openJob);
      replace(body, b.content);
      return b.mount();
    }
    case 'savings':
      return replace(body, renderSavings(view.savings));
  }
}

function renderAll(): void {
  for (const s of ['hosts', 'pools', 'jobs', 'refusals', 'batch', 'savings'] as const) renderSection(s);
  stamp();
}

function stamp(): void {
  if (view) byId('updated').textContent = `updated ${clock(Date.now())}`;
}

/** The action's answer shows at once; the host's own message on the stream follows. */
function markDrained(name: string, drained: boolean): void {
  if (!view) return;
  view.hosts = view.hosts.map((x) => (x.name === name ? { ...x, drained } : x));
  renderSection('hosts');
}

function openJob(id: number): void {
  detailId = id;
  const dialog = byId<HTMLDialogElement>('job-detail');
  replace(byId('job-detail-body'), h('p', { class: 'empty' }, `Loading job #${id}…`));
  if (!dialog.open) dialog.showModal();
  void refreshDetail(id);
}

/** Fetches the job's detail again: when it opens, and when the stream says the job changed. */
async function refreshDetail(id: number): Promise<void> {
  try {
    const j = await getJob(id);
    if (detailId !== id) return;
    replace(byId('job-detail-body'), renderJobDetail(j, () => void refreshDetail(id)));
  } catch (err) {
    if (detailId !== id) return;
    const text = err instanceof ApiFailure ? err.body.message : String(err);
    replace(byId('job-detail-body'), h('p', { class: 'error' }, `Job #${id}: ${text}`));
  }
}

function link(state: LinkState): void {
  const el = byId('link');
  el.dataset.state = state;
  el.textContent = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
}

function start(): void {
  const dialog = byId<HTMLDialogElement>('job-detail');
  byId('job-detail-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    const id = detailId;
    detailId = null;
    // Back to the control that opened it (keyboard users keep their place).
    if (id !== null) document.querySelector<HTMLElement>(`[data-focus-key="job-${id}"]`)?.focus();
  });
  byId('logout').addEventListener('click', () => void logout());
  openStream({
    message: (m) => {
      try {
        apply(m);
      } catch (err) {
        notice(`The page could not show an update: ${err instanceof Error ? err.message : String(err)}`, 'error');
      }
    },
    state: link,
  });
}

start();
