import type UPlot from 'uplot';
import type { BatchView, UtilisationPoint } from '../api-types.js';
import { h, type Child } from './dom.js';
import { clock, count, duration, percent } from './format.js';
import { phases, result } from './jobs.js';

/**
 * The nightly batch: progress, makespan, and slot utilisation over time as a chart. The chart is
 * uPlot (npm `uplot`, no dependencies), served by the control itself at a fixed path, so the
 * page works offline; it is loaded the first time a batch is shown. uPlot draws on a canvas and
 * sets sizes through the CSSOM, which the strict CSP allows (no inline style attributes).
 */
type UPlotCtor = typeof UPlot;
export const UPLOT_URL = '/vendor/uplot/uPlot.esm.js';
let uplot: Promise<UPlotCtor> | null = null;
const loadUPlot = (): Promise<UPlotCtor> => (uplot ??= (import(UPLOT_URL) as Promise<{ default: UPlotCtor }>).then((m) => m.default));

let chart: UPlot | null = null;
let resize: ResizeObserver | null = null;

export function renderBatch(b: BatchView | null, openJob: (id: number) => void): { content: Child[]; mount(): void } {
  teardown();
  if (!b) return { content: [h('p', { class: 'empty' }, 'No nightly batch (runs started by schedule) in the kept history.')], mount() {} };
  const holder = h('div', { class: 'chart', role: 'img', 'aria-label': `Slot utilisation over the batch: ${summary(b.utilisation)}` });
  const content: Child[] = [
    h(
      'div',
      { class: 'batch-summary' },
      h('p', { class: 'headline' }, h('span', { class: 'big', 'data-field': 'progress' }, `${b.done} / ${b.total}`), ' jobs done', b.lastFinishedAt !== null ? ' · finished' : ''),
      h('progress', { max: Math.max(b.total, 1), value: b.done, 'aria-label': `${b.done} of ${b.total} jobs done` }),
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Failed'), h('dd', { 'data-field': 'failed' }, count(b.failed)),
        h('dt', null, 'Running'), h('dd', { 'data-field': 'running' }, count(b.running)),
        h('dt', null, 'Waiting'), h('dd', { 'data-field': 'waiting' }, count(b.waiting)),
        h('dt', null, 'First queued'), h('dd', null, clock(b.firstQueuedAt)),
        h('dt', null, b.lastFinishedAt === null ? 'Makespan so far' : 'Makespan'), h('dd', { 'data-field': 'makespan' }, duration(b.makespanMs)),
        h('dt', null, 'Runs'), h('dd', null, b.runIds.join(', ')),
      ),
    ),
    h('h3', null, 'Slot utilisation'),
    holder,
    h('p', { class: 'chart-summary' }, summary(b.utilisation)),
    h('details', null, h('summary', null, `The batch's ${b.jobs.length} jobs`), h('ol', { class: 'batch-jobs' }, b.jobs.map((j) => {
      const open = h('button', { type: 'button', class: 'link', 'data-focus-key': `batch-job-${j.workflowJobId}` }, j.jobName);
      open.addEventListener('click', () => openJob(j.workflowJobId));
      return h('li', { 'data-job-id': j.workflowJobId }, open, ' ', result(j.result), phases(j.times));
    }))),
  ];
  return { content, mount: () => void draw(holder, b.utilisation) };
}

/** Peak busy slots, and busy slot time over total slot time. */
export function summary(points: UtilisationPoint[]): string {
  if (points.length === 0) return 'no VM has started yet';
  let busy = 0;
  let total = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const dt = points[i + 1]!.at - points[i]!.at;
    busy += points[i]!.busy * dt;
    total += points[i]!.total * dt;
  }
  const peak = points.reduce((m, p) => (p.busy > m.busy ? p : m), points[0]!);
  return `peak ${peak.busy} of ${peak.total} slots busy; ${total > 0 ? `${percent(busy, total)} of slot time used` : 'one sample so far'}`;
}

function teardown(): void {
  resize?.disconnect();
  resize = null;
  chart?.destroy();
  chart = null;
}

async function draw(holder: HTMLElement, points: UtilisationPoint[]): Promise<void> {
  if (points.length === 0) return;
  const U = await loadUPlot();
  if (!holder.isConnected) return; // replaced while the chart code loaded
  const width = (): number => Math.max(260, holder.clientWidth);
  const data: UPlot.AlignedData = [points.map((p) => p.at / 1000), points.map((p) => p.busy), points.map((p) => p.total)];
  const stepped = U.paths.stepped?.({ align: 1 });
  chart = new U(
    {
      width: width(),
      height: 220,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { label: 'slots' }],
      legend: { show: false },
      cursor: { points: { show: false } },
      series: [
        {},
        { label: 'busy', stroke: '#2b6cb0', fill: 'rgba(43,108,176,0.2)', width: 2, points: { show: false }, ...(stepped ? { paths: stepped } : {}) },
        { label: 'total', stroke: '#718096', dash: [4, 4], width: 1, points: { show: false }, ...(stepped ? { paths: stepped } : {}) },
      ],
    },
    data,
    holder,
  );
  let drawn = width();
  resize = new ResizeObserver(() => {
    if (!chart || width() === drawn) return;
    drawn = width();
    chart.setSize({ width: drawn, height: 220 });
  });
  resize.observe(holder);
}
