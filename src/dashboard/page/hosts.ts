import type { HostView } from '../api-types.js';
import { drainHost } from './api.js';
import { act } from './dialogs.js';
import { h, table } from './dom.js';
import { bytes, clock, percent } from './format.js';

/** Hosts: role, up/down, slots, CPU and memory against the runner slice's caps, driver, accelerator; drain and undrain. */
export function renderHosts(hosts: HostView[], onChanged: (h: HostView['name'], drained: boolean) => void): HTMLElement {
  const rows = hosts.map((host) =>
    h(
      'tr',
      { 'data-host': host.name, class: host.up ? 'up' : 'down' },
      h('th', { scope: 'row' }, host.name),
      h('td', null, host.role, h('br'), h('small', null, host.pools.join(', '))),
      h('td', { class: 'host-state' }, state(host)),
      h('td', { class: 'slots' }, slots(host)),
      h('td', null, cpu(host)),
      h('td', null, memory(host)),
      h('td', null, host.driver ?? '—', h('br'), h('small', null, host.accelerator ?? '—')),
      h('td', null, drainButton(host, onChanged)),
    ),
  );
  return table('Hosts', ['Host', 'Role', 'State', 'Slots', 'CPU', 'Memory', 'Driver', 'Action'], rows, 'No hosts in the configuration.');
}

function state(host: HostView): (HTMLElement | string)[] {
  const out: (HTMLElement | string)[] = [h('span', { class: `badge ${host.up ? 'ok' : 'bad'}` }, host.up ? 'up' : 'down')];
  if (host.drained) out.push(' ', h('span', { class: 'badge warn' }, 'drained'));
  else if (host.draining) out.push(' ', h('span', { class: 'badge warn' }, 'draining'));
  out.push(h('br'), h('small', null, host.lastBeatAt === null ? 'no heartbeat' : `beat ${clock(host.lastBeatAt)}`));
  return out;
}

function slots(host: HostView): (HTMLElement | string)[] {
  if (!host.slots) return ['—'];
  const { used, total } = host.slots;
  return [
    h('meter', { min: 0, max: Math.max(total, 1), value: used, 'aria-label': `${used} of ${total} slots used` }),
    ` ${used} / ${total}`,
    host.vms.length ? h('small', { class: 'vms' }, host.vms.map((v) => `${v.vmId} → #${v.workflowJobId}`).join(', ')) : null,
  ].filter((x): x is HTMLElement | string => x !== null);
}

function cpu(host: HostView): string {
  const u = host.usage;
  if (!u || u.cpuPercent === null) return '—';
  // The heartbeat's percent is of the slice's quota, not of one core.
  const used = `${Math.round(u.cpuPercent)} %`;
  return u.cpuQuotaCores === null ? `${used} of the host's CPUs` : `${used} of its ${Math.round(u.cpuQuotaCores * 100) / 100} cores`;
}

function memory(host: HostView): string {
  const u = host.usage;
  if (!u || u.memoryBytes === null) return '—';
  return u.memoryMaxBytes === null ? bytes(u.memoryBytes) : `${bytes(u.memoryBytes)} / ${bytes(u.memoryMaxBytes)} (${percent(u.memoryBytes, u.memoryMaxBytes)})`;
}

function drainButton(host: HostView, onChanged: (name: string, drained: boolean) => void): HTMLButtonElement {
  const drain = !host.drained;
  const b = h('button', { type: 'button', class: drain ? 'warn' : '', 'data-focus-key': `drain-${host.name}`, 'data-action': drain ? 'drain' : 'undrain' }, drain ? 'Drain' : 'Undrain');
  b.addEventListener('click', () => {
    const question = drain ? `Drain ${host.name}? It finishes the jobs it runs and takes no new ones.` : `Undrain ${host.name}? It takes jobs again.`;
    void act(question, drain ? 'Drain' : 'Undrain', (why) => drainHost(host.name, why, drain)).then((r) => {
      if (r) onChanged(r.host, r.drained);
    });
  });
  return b;
}
