import { describe, expect, test } from 'vitest';
import { arcJobLabels, arcJobResult, egressDrops, poolGauges, type PoolJobRow } from '../../src/domain/arc-metrics.js';
import { addBoot, cpuPercent, emptyBoots, quotaCores } from '../../src/domain/host-usage.js';

describe('ARC names for what Hangar knows', () => {
  test.each([
    ['success', 'succeeded'], ['failure', 'failed'], ['cancelled', 'canceled'], ['skipped', 'skipped'],
    ['timed_out', 'timed_out'], [null, ''],
  ])('conclusion %s is job_result %s', (conclusion, want) => expect(arcJobResult(conclusion)).toBe(want));

  test('organization is the owner and repository the name alone, as ARC labels them; enterprise empty', () => {
    expect(arcJobLabels({ pool: 'build', repo: 'acme/app', jobName: 'test', event: 'push' }, 'hangar')).toEqual({
      enterprise: '', organization: 'acme', repository: 'app', job_name: 'test', event_name: 'push', name: 'build', namespace: 'hangar',
    });
  });
});

describe('the scale-set gauges of a pool', () => {
  const rows = (...xs: [string | null, PoolJobRow['phase']][]): PoolJobRow[] => xs.map(([pool, phase]) => ({ pool, phase }));
  const beats = [{ pools: ['build'], slots: 2 }, { pools: ['build', 'deploy'], slots: 1 }];

  test.each([
    ['nothing', rows(), { assigned: 0, running: 0, idle: 0, registered: 0, desired: 0, max: 3 }],
    ['three queued: assigned, desired up to the slots', rows(['build', 'queued'], ['build', 'queued'], ['build', 'queued']), { assigned: 3, running: 0, idle: 0, registered: 0, desired: 3 }],
    ['five queued, three slots: desired is capped at max', rows(...Array.from({ length: 5 }, () => ['build', 'queued'] as [string, 'queued'])), { assigned: 5, desired: 3 }],
    ['minted and vm-up are idle runners, started busy', rows(['build', 'minted'], ['build', 'vm-up'], ['build', 'started']), { assigned: 3, running: 1, busy: 1, idle: 2, registered: 3 }],
    ['final phases and refusals count nowhere', rows(['build', 'ran'], ['build', 'refused'], ['build', 'cancelled'], ['build', 'failed'], ['build', 'timed-out']), { assigned: 0, running: 0, idle: 0 }],
    ['a job owed another runner is still assigned', rows(['build', 'refused-at-start'], ['build', 'not-run'], ['build', 'lost']), { assigned: 3, idle: 0 }],
    ['other pools and rows without a pool or phase stay out', rows(['deploy', 'queued'], [null, 'queued'], ['build', null], ['gone', 'queued']), { assigned: 0 }],
  ])('%s', (_name, input, want) => {
    expect(poolGauges(['build', 'deploy'], input, beats).build).toMatchObject({ min: 0, ...want });
  });

  test('max is the slots of the live hosts serving the pool', () => {
    expect(poolGauges(['build', 'deploy'], [], beats)).toMatchObject({ build: { max: 3 }, deploy: { max: 1 } });
    expect(poolGauges(['build'], rows(['build', 'queued']), []).build).toMatchObject({ assigned: 1, max: 0, desired: 0 });
  });
});

describe('egress drops from a VM\'s egress log', () => {
  test('destinations kept and only counted, their packets, refused DNS queries', () => {
    const log = {
      denied: [{ daddr: '10.0.0.1', proto: 'tcp', dport: 22, packets: 3 }, { daddr: '169.254.169.254', proto: 'tcp', dport: 80, packets: 1 }],
      deniedOverflow: 4,
      dns: { names: [{ name: 'evil.example', denied: 2 }, { name: 'ok.example', denied: 0 }], queries: 5, overflow: 0 },
    };
    expect(egressDrops(log)).toEqual({ destinations: 6, packets: 4, dnsQueries: 2 });
  });
  test.each([[null], ['text'], [{ denied: 'x' }], [{ denied: [{ packets: -5 }, null], deniedOverflow: 'many' }]])('a log of another shape counts nothing it cannot read: %j', (log) => {
    const d = egressDrops(log);
    expect(d.packets).toBe(0);
    expect(d.dnsQueries).toBe(0);
    expect(d.destinations).toBeLessThanOrEqual(2);
  });
});

describe('slice usage arithmetic', () => {
  test.each([
    ['no earlier sample', null, { cpuUsageNs: 5e9, atMs: 1000 }, 2, null],
    ['one core busy for a second, quota 2 cores: 50 %', { cpuUsageNs: 0, atMs: 0 }, { cpuUsageNs: 1e9, atMs: 1000 }, 2, 50],
    ['1.5 cores busy, quota 1.5 cores: 100 %', { cpuUsageNs: 0, atMs: 0 }, { cpuUsageNs: 3e9, atMs: 2000 }, 1.5, 100],
    ['the counter went back (a new slice)', { cpuUsageNs: 9e9, atMs: 0 }, { cpuUsageNs: 1e9, atMs: 1000 }, 1, null],
    ['no time passed', { cpuUsageNs: 0, atMs: 5 }, { cpuUsageNs: 1e9, atMs: 5 }, 1, null],
  ])('%s', (_n, prev, cur, cores, want) => expect(cpuPercent(prev, cur, cores)).toBe(want));

  test.each([[150_000, 100_000, 1.5], [null, 100_000, null], [-1, 100_000, null], [50_000, null, null]])('quota %s / period %s is %s cores', (q, p, want) => expect(quotaCores(q, p)).toBe(want));

  test('boots add up cumulatively per bucket', () => {
    const b = [1, 2, 5];
    const s = [0.5, 1.5, 3, 9].reduce((acc, x) => addBoot(acc, x, b), emptyBoots(b));
    expect(s).toEqual({ count: 4, sumSeconds: 14, buckets: [1, 2, 3] });
  });
});
