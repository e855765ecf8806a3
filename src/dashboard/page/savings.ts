import type { SavingsView } from '../api-types.js';
import { h } from './dom.js';
import { count, dollars } from './format.js';

/** Savings this month: minutes billed as GitHub would (each job rounded up), less the plan's included minutes. */
export function renderSavings(s: SavingsView): HTMLElement {
  const price = `${dollars(s.pricePerMinute)}/min`;
  const rows: [string, string, string][] = [
    ['month', 'Month', s.month],
    ['jobs', 'Jobs run on Hangar', count(s.jobs)],
    ['minutes', 'Minutes (each job rounded up)', count(s.minutes)],
    ['gross', `Hosted price at ${price}`, dollars(s.gross)],
    ['included', `Less the ${s.plan} plan's ${count(s.includedMinutes)} included minutes`, `−${dollars(s.included)}`],
    ['saved', 'Saved', dollars(s.saved)],
    ['platform', `Self-hosted platform charge, if it returns (${dollars(s.platformChargePerMinute)}/min)`, dollars(s.platformCharge)],
    ['net', 'Saved after that charge', dollars(s.net)],
  ];
  return h(
    'div',
    { class: 'savings' },
    h('p', { class: 'headline' }, h('span', { class: 'big', 'data-field': 'saved' }, dollars(s.saved)), ` saved in ${s.month}`),
    h('dl', { class: 'facts' }, rows.map(([key, k, v]) => [h('dt', null, k), h('dd', { 'data-field': key }, v)])),
  );
}
