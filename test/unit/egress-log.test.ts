import { expect, test } from 'vitest';
import { EgressLog, type DnsQueryEntry } from '../../src/net/egress-log.js';

const q = (name: string, o: Partial<DnsQueryEntry> = {}): DnsQueryEntry => ({ at: 1000, name, type: 'A', decision: 'allowed', answers: [], ...o });

test('one record per name: counts per decision, first and last time, types and answers', () => {
  const log = new EgressLog();
  log.addDns(q('github.com', { at: 2000, answers: ['140.82.121.4'] }));
  log.addDns(q('github.com', { at: 1000, type: 'AAAA' }));
  log.addDns(q('github.com', { at: 3000, decision: 'failed' }));
  log.addDns(q('evil.example', { at: 1500, decision: 'denied' }));
  expect(log.toJSON()).toEqual({
    dns: {
      queries: 4,
      overflow: 0,
      names: [
        { name: 'github.com', count: 3, allowed: 2, denied: 0, failed: 1, firstAt: 1000, lastAt: 3000, types: ['A', 'AAAA'], answers: ['140.82.121.4'] },
        { name: 'evil.example', count: 1, allowed: 0, denied: 1, failed: 0, firstAt: 1500, lastAt: 1500, types: ['A'], answers: [] },
      ],
    },
  });
});

test('bounded: past the cap of distinct names, queries for new names only count as overflow', () => {
  const log = new EgressLog({ names: 500 });
  for (let i = 0; i < 10_000; i++) log.addDns(q(`n${i}.exfil.example`, { decision: 'denied' }));
  log.addDns(q('n1.exfil.example', { decision: 'denied' })); // a known name still counts
  const { dns } = log.toJSON();
  expect(dns.names).toHaveLength(500);
  expect(dns.overflow).toBe(9_500);
  expect(dns.queries).toBe(10_001);
  expect(dns.names[1]).toMatchObject({ name: 'n1.exfil.example', count: 2 });
});

test('bounded per name: types, answers and the name itself', () => {
  const log = new EgressLog({ typesPerName: 3, answersPerName: 2 });
  for (let i = 0; i < 50; i++) log.addDns(q('x.example', { type: `TYPE${i}`, answers: [`10.0.0.${i}`, `10.0.1.${i}`] }));
  log.addDns(q('y'.repeat(5000)));
  const [x, y] = log.toJSON().dns.names;
  expect(x!.types).toEqual(['TYPE0', 'TYPE1', 'TYPE2']);
  expect(x!.answers).toEqual(['10.0.0.0', '10.0.1.0']);
  expect(y!.name).toHaveLength(253);
});

test('toJSON is a copy: changing it does not change the log', () => {
  const log = new EgressLog();
  log.addDns(q('github.com', { answers: ['1.2.3.4'] }));
  const a = log.toJSON();
  a.dns.names[0]!.answers.push('6.6.6.6');
  a.dns.names[0]!.count = 99;
  expect(log.toJSON().dns.names[0]).toMatchObject({ count: 1, answers: ['1.2.3.4'] });
  expect(JSON.parse(JSON.stringify(log))).toEqual(log.toJSON());
});
