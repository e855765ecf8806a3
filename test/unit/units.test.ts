import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { compose, unit } from '../../src/main/units.js';

const quiet = pino({ level: 'silent' });

function recorder() {
  const log: string[] = [];
  const u = (name: string, failStart = false, failStop = false) =>
    unit(name, async () => {
      log.push(`start ${name}`);
      if (failStart) throw new Error(`${name} would not start`);
    }, async () => {
      log.push(`stop ${name}`);
      if (failStop) throw new Error(`${name} would not stop`);
    });
  return { log, u };
}

describe('units: started in order, stopped in reverse', () => {
  test('start and stop', async () => {
    const { log, u } = recorder();
    const c = compose([u('redis'), u('outbox'), u('http')], quiet);
    await c.start();
    await c.stop();
    expect(log).toEqual(['start redis', 'start outbox', 'start http', 'stop http', 'stop outbox', 'stop redis']);
  });

  test('a unit that fails to start: those started before it stop, in reverse, and its error is thrown', async () => {
    const { log, u } = recorder();
    const c = compose([u('redis'), u('outbox'), u('vetter', true), u('http')], quiet);
    await expect(c.start()).rejects.toThrow('vetter would not start');
    expect(log).toEqual(['start redis', 'start outbox', 'start vetter', 'stop outbox', 'stop redis']);
  });

  test('a unit that fails to stop does not keep the others running; stop twice stops once', async () => {
    const { log, u } = recorder();
    const c = compose([u('redis'), u('outbox', false, true), u('http')], quiet);
    await c.start();
    await c.stop();
    await c.stop();
    expect(log).toEqual(['start redis', 'start outbox', 'start http', 'stop http', 'stop outbox', 'stop redis']);
  });
});
