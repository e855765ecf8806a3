import { describe, expect, test } from 'vitest';
import { isHangarRunner, queueEffect, type JobState, type QueueEffect } from '../../src/domain/lifecycle.js';
import type { Decision } from '../../src/domain/policy.js';

const accept: Decision = { kind: 'accept', pool: 'build' };
const reject: Decision = { kind: 'reject', reason: 'deploy-not-allowed' };

describe('queueEffect: what the queue does when a job record moves', () => {
  test.each<[string, JobState, Decision, string | null, QueueEffect]>([
    ['accepted, first seen queued: enqueued', 'queued', accept, null, 'enqueue'],
    ['rejected: never queued', 'queued', reject, null, 'none'],
    ['in progress: nothing to do', 'in_progress', accept, 'hangar-minipc-1-1', 'none'],
    ['completed without a runner (cancelled while queued): its entry leaves', 'completed', accept, null, 'cancel'],
    ['completed on a runner that is not Hangar\'s: its entry leaves', 'completed', accept, 'laptop', 'cancel'],
    // GitHub handed it to a runner minted for another job: its entry mints the runner that job is owed.
    ['completed on a Hangar runner: its entry stays', 'completed', accept, 'hangar-minipc-25000000042-1', 'none'],
  ])('%s', (_n, state, decision, runner, want) => expect(queueEffect(state, decision, runner)).toBe(want));

  test('Hangar runner names', () => {
    expect(isHangarRunner('hangar-mini-pc-12-3')).toBe(true);
    expect(isHangarRunner('hangar-x')).toBe(false);
    expect(isHangarRunner(null)).toBe(false);
  });
});
