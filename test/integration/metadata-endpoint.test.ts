import { request } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { JitHandover } from '../../src/agent/jit-handover.js';
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

async function open(gate = async (_h: GateHints): Promise<GateReply> => ({ decision: 'allow', workflowJobId: 7 }), jit?: JitHandover, jitWaitMs?: number) {
  const port = await freePort();
  const asked: GateHints[] = [];
  ep = await openMetadataEndpoint({
    hostIp: '127.0.0.1', guestIp: '127.0.0.2', port, logger: pino({ level: 'silent' }), jit, jitWaitMs,
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
    // A GET goes without a body (Node's client would send one unframed: a broken request).
    if (o.method === 'GET') req.end();
    else req.end(o.body ?? 'repository=acme/app\nrun_id=12\nrun_attempt=1\n');
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

  test('the JIT config: held until minted, answered once to the VM itself, then 410 Gone', async () => {
    const jit = new JitHandover();
    const { port } = await open(undefined, jit);
    const config = Buffer.from(`{"secret":"${'x'.repeat(40)}"}`).toString('base64');
    // Another address never gets it, and does not count as the guest's ask.
    const other = await send(port, { from: '127.0.0.3', method: 'GET', path: '/v1/jit' });
    expect(other.status).toBe(403);
    expect(jit.askedAt).toBeNull();
    // The guest asks before the mint settled: its request is held, not answered.
    const held = send(port, { method: 'GET', path: '/v1/jit' });
    await expect.poll(() => jit.askedAt).not.toBeNull();
    let answered = false;
    void held.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    jit.offer(config);
    expect(await held).toEqual({ status: 200, body: config });
    expect(jit.handedAt).not.toBeNull();
    await jit.taken;
    // One answer, then gone: the guest itself asking again gets nothing.
    const again = await send(port, { method: 'GET', path: '/v1/jit' });
    expect(again.status).toBe(410);
    expect(again.body).not.toContain(config);
    // A later offer (a second mint) does not bring it back.
    jit.offer('c2Vjb25k');
    expect((await send(port, { method: 'GET', path: '/v1/jit' })).status).toBe(410);
  });

  test('a refused or busy mint: the held request gets 404 with the reason, never a config', async () => {
    const jit = new JitHandover();
    const { port } = await open(undefined, jit);
    const held = send(port, { method: 'GET', path: '/v1/jit' });
    await expect.poll(() => jit.askedAt).not.toBeNull();
    jit.withhold('job-not-queued');
    expect(await held).toEqual({ status: 404, body: 'no-jit job-not-queued\n' });
    jit.offer('bGF0ZQ==');
    expect((await send(port, { method: 'GET', path: '/v1/jit' })).status).toBe(404);
    expect(jit.handedAt).toBeNull();
  });

  test('a mint that does not settle within the hold: 503, and the config is still there for the next ask', async () => {
    const jit = new JitHandover();
    const { port } = await open(undefined, jit, 200);
    expect(await send(port, { method: 'GET', path: '/v1/jit' })).toEqual({ status: 503, body: 'not-ready\n' });
    expect(jit.handedAt).toBeNull();
    jit.offer('bWludGVk');
    expect(await send(port, { method: 'GET', path: '/v1/jit' })).toEqual({ status: 200, body: 'bWludGVk' });
  });

  test('a guest that hangs up while held does not use up its one answer', async () => {
    const jit = new JitHandover();
    const { port } = await open(undefined, jit);
    const req = request({ host: '127.0.0.1', port, localAddress: '127.0.0.2', method: 'GET', path: '/v1/jit' });
    req.on('error', () => undefined);
    req.end();
    await expect.poll(() => jit.askedAt).not.toBeNull();
    req.destroy();
    await new Promise((r) => setTimeout(r, 50));
    jit.offer('c3RpbGwtdGhlcmU=');
    expect(await send(port, { method: 'GET', path: '/v1/jit' })).toEqual({ status: 200, body: 'c3RpbGwtdGhlcmU=' });
  });

  test('an endpoint without a handover answers 404 to GET /v1/jit', async () => {
    const { port } = await open();
    expect(await send(port, { method: 'GET', path: '/v1/jit' })).toEqual({ status: 404, body: 'no-jit none\n' });
  });

  test('junk hints are dropped, not passed on', () => {
    expect(parseHints('repository=../../etc\nrun_id=-1\nrun_attempt=x\n')).toEqual({});
    expect(parseHints('repository=acme/app;rm -rf\nrun_id=99999999999999999999\n')).toEqual({});
    expect(parseHints('\u0000\u0001garbage')).toEqual({});
  });
});
