import { expect, test } from 'vitest';
import { planHosts, type HostFacts, type HostJob } from '../../src/domain/reconcile-hosts.js';

const job = (o: Partial<HostJob>): HostJob => ({ workflowJobId: 1, host: 'minipc', phase: 'minted', mintedRunner: 'hangar-minipc-1-1', mintedAt: 0, runAttempt: 1, ...o });

test.each<[string, HostFacts[], HostJob[], string[]]>([
  ['alive, as before: nothing', [{ name: 'minipc', alive: true, was: 'up' }], [job({})], []],
  ['first seen alive: nothing to say', [{ name: 'minipc', alive: true, was: null }], [], []],
  ['gone quiet: down, and its waiting jobs go back', [{ name: 'minipc', alive: false, was: 'up' }],
    [job({ workflowJobId: 1, phase: 'minted' }), job({ workflowJobId: 2, phase: 'vm-up' }), job({ workflowJobId: 3, phase: 'started' })],
    ['host-down minipc', 'return-job 1', 'return-job 2']],
  ['still down: its jobs still go back, no second "down"', [{ name: 'minipc', alive: false, was: 'down' }], [job({ workflowJobId: 4 })], ['return-job 4']],
  ['down at a new leader\'s first look: said once', [{ name: 'minipc', alive: false, was: null }], [], ['host-down minipc']],
  ['back up', [{ name: 'minipc', alive: true, was: 'down' }], [job({})], ['host-up minipc']],
  ['down, but the job was minted a moment ago: it stays a while', [{ name: 'minipc', alive: false, was: 'down' }], [job({ workflowJobId: 6, mintedAt: 995_000 })], []],
  ['down, minted long ago, no mint time known: back', [{ name: 'minipc', alive: false, was: 'down' }], [job({ workflowJobId: 7, mintedAt: null })], ['return-job 7']],
  ['another host\'s jobs stay', [{ name: 'minipc', alive: false, was: 'down' }, { name: 'spare', alive: true, was: 'up' }], [job({ host: 'spare', workflowJobId: 5 })], []],
])('%s', (_name, hosts, jobs, want) => {
  expect(planHosts(hosts, jobs, { now: 1_000_000, graceMs: 60_000 }).map((a) => (a.kind === 'return-job' ? `return-job ${a.workflowJobId}` : `${a.kind} ${a.host}`))).toEqual(want);
});
