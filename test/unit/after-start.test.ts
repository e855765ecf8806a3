import { describe, expect, test } from 'vitest';
import { afterStart } from '../../src/main/shutdown.js';

/** The close a stop signal runs while the process may still be starting (src/main/shutdown.ts). */
describe('afterStart', () => {
  test('a start still going: the close waits for it, then stops what it made', async () => {
    const order: string[] = [];
    let finish!: (v: string) => void;
    const starting = new Promise<string>((r) => (finish = r));
    const closing = afterStart(starting, async (made) => void order.push(`stop ${made}`))();
    await new Promise((r) => setTimeout(r, 20));
    order.push('started');
    finish('units');
    await closing;
    expect(order).toEqual(['started', 'stop units']);
  });

  test('a start that failed: nothing is stopped, and the close fails (the exit must not read as clean)', async () => {
    let stopped = false;
    const starting = Promise.reject(new Error('redis away'));
    await expect(afterStart(starting, async () => void (stopped = true))()).rejects.toThrow('the start failed');
    expect(stopped).toBe(false);
  });

  test('a start that never ends: the close gives up after its bound, loudly', async () => {
    let stopped = false;
    await expect(afterStart(new Promise(() => undefined), async () => void (stopped = true), 50)()).rejects.toThrow(/still going 0.05 s after the stop signal/);
    expect(stopped).toBe(false);
  });
});
