import { request } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { openMetadataEndpoint, parseHints, type GateHints, type GateReply, type MetadataEndpoint } from '../../src/agent/metadata.js';
import { freePort } from '../../src/main/local-redis.js';

/**
 * The metadata endpoint a guest's job-start hook asks, on loopback: 127.0.0.1 stands for the
 * VM's gateway and 127.0.0.2 for its guest address (a connection from another source address
 * is "another VM"). Real sockets, the guest's requests as a hostile guest would send them.
 */
let ep: MetadataEndpoint | undefined;
afterEach(async () => {
  await ep?.close();
  ep = undefined;
});

async function open(gate = async (_h: GateHints): Promise<GateReply> => ({ decision: 'allow', workflowJobId: 7 })) {
  const port = await freePort();
  const asked: GateHints[] = [];
  ep = await openMetadataEndpoint({
    hostIp: '127.0.0.1', guestIp: '127.0.0.2', port, logger: pino({ level: 'silent' }),
    gate: async (h) => {
      asked.push(h);
      return gate(h);
    },
  });
  return { port, asked };
}

function send(port: number, o: { from?: string; method?: string; path?: string; body?: string | Buffer }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: o.from ?? '127.0.0.2', method: o.method ?? 'POST', path: o.path ?? '/v1/job-started', headers: { 'content-type': 'text/plain' } }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(o.body ?? 'repository=acme/app\nrun_id=12\nrun_attempt=1\n');
  });
}

describe('metadata endpoint', () => {
  test('the VM\'s own request is answered once, from the gate; hints are passed, nothing else', async () => {
    const { port, asked } = await open();
    expect(await send(port, { body: 'repository=acme/app\nrun_id=12\nrun_attempt=2\njob=build\nrunner_name=hangar-other-1-1\nevil=1\n' })).toEqual({ status: 200, body: 'allow\n' });
    expect(asked).toEqual([{ repository: 'acme/app', runId: 12, runAttempt: 2 }]);
    expect(ep!.answer).toEqual({ decision: 'allow', workflowJobId: 7 });
    // One answer, then gone: a second question is refused without asking the control again.
    const again = await send(port, {});
    expect(again.body).toMatch(/^deny already-asked\n/);
    expect(asked).toHaveLength(1);
  });

  test('a refusal carries its reason and text; never anything else', async () => {
    const { port } = await open(async () => ({ decision: 'deny', reason: 'fork-pr', message: 'the run comes from a fork\'s pull request', workflowJobId: 9 }));
    const r = await send(port, {});
    expect(r).toEqual({ status: 200, body: 'deny fork-pr\nthe run comes from a fork\'s pull request\n' });
  });

  test('a request from another address (another VM) is refused and never reaches the gate', async () => {
    const { port, asked } = await open();
    const r = await send(port, { from: '127.0.0.3' });
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/^deny not-this-vm/);
    expect(asked).toEqual([]);
    expect(ep!.answer).toBeNull();
  });

  test('other paths and methods: 404, no gate', async () => {
    const { port, asked } = await open();
    expect((await send(port, { path: '/latest/meta-data/' })).status).toBe(404);
    expect((await send(port, { method: 'GET' })).status).toBe(404);
    expect(asked).toEqual([]);
  });

  test('a huge body is refused and the connection dropped; the gate is still unasked', async () => {
    const { port, asked } = await open();
    const r = await send(port, { body: Buffer.alloc(64 * 1024, 'a') }).catch((err: Error) => ({ status: -1, body: err.message }));
    expect([413, -1]).toContain(r.status);
    expect(asked).toEqual([]);
    // The VM may still ask its one question afterwards.
    expect((await send(port, {})).body).toBe('allow\n');
  });

  test('a flood is cut off after a bounded number of requests', async () => {
    const { port } = await open();
    const results = [];
    for (let i = 0; i < 40; i++) results.push(await send(port, { path: '/flood' }).then((r) => r.status, () => 0));
    expect(results.filter((s) => s === 404).length).toBeLessThanOrEqual(32);
    expect(results.filter((s) => s === 0).length).toBeGreaterThanOrEqual(8);
  });

  test('junk hints are dropped, not passed on', () => {
    expect(parseHints('repository=../../etc\nrun_id=-1\nrun_attempt=x\n')).toEqual({});
    expect(parseHints('repository=acme/app;rm -rf\nrun_id=99999999999999999999\n')).toEqual({});
    expect(parseHints('\u0000\u0001garbage')).toEqual({});
  });
});
