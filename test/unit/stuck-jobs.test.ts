import { describe, expect, test } from 'vitest';
import { planStuckJobs, stuckWhy, type HostView, type StuckCandidate } from '../../src/domain/stuck-jobs.js';

const pools = ['build', 'deploy', 'lonely'];
const host = (name: string, beat: HostView['beat'], hostPools = ['build']): HostView => ({ name, pools: hostPools, beat });
const free = { slots: 2, busy: 1, draining: false };
const full = { slots: 2, busy: 2, draining: false };
const draining = { slots: 2, busy: 0, draining: true };
const job = (o: Partial<StuckCandidate> = {}): StuckCandidate => ({
  workflowJobId: 1, state: 'queued', phase: 'queued', pool: 'build', createdAt: 0, startRefusal: null, stuckWhy: null, ...o,
});

describe('why a waiting job is not moving', () => {
  test.each<[string, StuckCandidate, HostView[], ReturnType<typeof stuckWhy>]>([
    ['its pool is gone from the config', job({ pool: 'renamed' }), [host('a', free)], 'no-pool'],
    ['no pool at all (cannot happen for an accepted job; reported all the same)', job({ pool: null }), [host('a', free)], 'no-pool'],
    ['no host serves its pool', job({ pool: 'lonely' }), [host('a', free)], 'no-host'],
    ['no host of its pool beats', job(), [host('a', null), host('b', null), host('d', free, ['deploy'])], 'every-host-down'],
    ['the hosts that beat all drain', job(), [host('a', draining), host('b', null)], 'hosts-draining'],
    ['every live host has every slot busy', job(), [host('a', full), host('b', null), host('c', draining)], 'slots-full'],
    ['one live host has a free slot: not full', job(), [host('a', full), host('b', free)], 'not-picked-up'],
    ['a free slot on a host of another pool does not count', job(), [host('a', full), host('d', free, ['deploy'])], 'slots-full'],
    ['refused at start, waiting for another runner', job({ phase: 'refused-at-start', startRefusal: 'fork-pr' }), [host('a', free)], 'refused-at-start'],
    ['refused at start, slots full: the slots are what holds it now', job({ phase: 'refused-at-start', startRefusal: 'fork-pr' }), [host('a', full)], 'slots-full'],
    ['minted again after a refusal, no VM yet', job({ phase: 'minted', startRefusal: 'fork-pr' }), [host('a', full)], 'refused-at-start'],
    ['minted, no VM: its host holds a slot for it, so full slots are no reason', job({ phase: 'minted' }), [host('a', full)], 'minted-no-vm'],
    ['minted, and every host went down since', job({ phase: 'minted' }), [host('a', null)], 'every-host-down'],
  ])('%s', (_n, j, hosts, want) => expect(stuckWhy(j, pools, hosts)).toBe(want));
});

describe('planStuckJobs', () => {
  const plan = (jobs: StuckCandidate[], hosts: HostView[] = [host('a', null)]) =>
    planStuckJobs({ jobs, hosts, pools, now: 100_000, stuckAfterMs: 60_000 }).map((f) => [f.workflowJobId, f.why, f.was]);
  test.each<[string, StuckCandidate[], unknown[]]>([
    ['past the threshold: flagged', [job()], [[1, 'every-host-down', null]]],
    ['exactly at the threshold: flagged', [job({ createdAt: 40_000 })], [[1, 'every-host-down', null]]],
    ['younger than the threshold: not yet', [job({ createdAt: 50_000 })], []],
    ['flagged with this reason already: not again', [job({ stuckWhy: 'every-host-down' })], []],
    ['the reason changed: flagged again, with the old one', [job({ stuckWhy: 'slots-full' })], [[1, 'every-host-down', 'slots-full']]],
    ['GitHub no longer holds it queued', [job({ state: 'in_progress' })], []],
    ['its VM is up', [job({ phase: 'vm-up' })], []],
    ['refused at intake', [job({ phase: 'refused', pool: null })], []],
    ['finished', [job({ phase: 'ran' }), job({ workflowJobId: 2, phase: 'cancelled' })], []],
    ['no phase (a record from before phases)', [job({ phase: null })], []],
  ])('%s', (_n, jobs, want) => expect(plan(jobs)).toEqual(want));
});
