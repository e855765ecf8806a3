import { describe, expect, test } from 'vitest';
import { HostDrainedError, settle } from '../../src/agent/agent.js';
import { takesJobs } from '../../src/agent/slots.js';

test.each([
  ['a free slot', 1, 2, false, true],
  ['every slot busy', 2, 2, false, false],
  ['drained by the operator, slots free', 0, 2, true, false],
  ['drained and busy', 2, 2, true, false],
])('workers fetch jobs: %s', (_n, busy, total, drained, want) => expect(takesJobs(busy, total, drained)).toBe(want));

test('a runner refused because the host was drained sends the job back (not a failure); other refusals fail it', () => {
  expect(() => settle({ kind: 'skipped', reason: 'host-drained' }, 5)).toThrow(HostDrainedError);
  const other = (() => {
    try {
      settle({ kind: 'skipped', reason: 'fork-pr' }, 5);
    } catch (err) {
      return err;
    }
    return null;
  })();
  expect(other).toBeInstanceOf(Error);
  expect(other).not.toBeInstanceOf(HostDrainedError);
});

describe('Slots.whenIdle: what a revoked agent\'s stop waits for', () => {
  test('resolves at once with no slot held, and only when the last held slot is released', async () => {
    const { Slots } = await import('../../src/agent/slots.js');
    const slots = new Slots(2);
    await slots.whenIdle();
    const a = await slots.acquire();
    const b = await slots.acquire();
    let idle = false;
    const waiting = slots.whenIdle().then(() => void (idle = true));
    slots.release(a);
    await Promise.resolve();
    expect(idle).toBe(false);
    slots.release(b);
    await waiting;
    expect(idle).toBe(true);
  });
});
