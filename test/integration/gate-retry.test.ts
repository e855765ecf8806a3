import { createServer, type Server } from 'node:http';
import { expect, test } from 'vitest';
import { createControlClient } from '../../src/agent/control-client.js';
import { freePort } from '../../src/main/local-redis.js';

/**
 * The agent's gate question to the control survives a control restarting (connections refused
 * for a moment), and still fails closed when the control stays away or answers an error.
 */
const hints = { workflowJobId: 7, runId: 1, repository: 'acme/app' } as never;

function answer(port: number, status: number, body: unknown, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/**
 * A loopback address of this test's own (all of 127/8 is the loopback interface): the port it
 * leaves closed for a while cannot be taken meanwhile by another file's server on 127.0.0.1
 * (seen once with the integration lane's four workers: EADDRINUSE, and the test hung).
 */
const ownLoopback = (): string => `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 250)}`;

test('a control that comes back within the deadline answers the gate: the job is not refused', async () => {
  const port = await freePort();
  const host = ownLoopback();
  const client = createControlClient(`http://${host}:${port}`, 'host-token-0123456789abcdef');
  let server: Server | undefined;
  const later = new Promise<void>((resolve, reject) => setTimeout(() => {
    answer(port, 200, { decision: 'allow', workflowJobId: 7 }, host).then((s) => {
      server = s;
      resolve();
    }, reject);
  }, 1200));
  const reply = await client.jobStarted('hangar-minipc-7-1', hints, 10_000);
  await later;
  server?.close();
  expect(reply).toEqual({ decision: 'allow', workflowJobId: 7 });
});

test('a control that stays away: refused, fail closed, once the deadline passes', async () => {
  const port = await freePort();
  const client = createControlClient(`http://127.0.0.1:${port}`, 'host-token-0123456789abcdef');
  const reply = await client.jobStarted('hangar-minipc-7-1', hints, 1500);
  expect(reply).toMatchObject({ decision: 'deny', reason: 'control-unreachable' });
  expect((reply as { message: string }).message).toContain('unreachable for 1.5 s');
});

test('a control that answers 500 is not asked again: refused at once', async () => {
  const port = await freePort();
  const server = await answer(port, 500, { error: 'boom' });
  let asked = 0;
  server.on('request', () => asked++);
  const client = createControlClient(`http://127.0.0.1:${port}`, 'host-token-0123456789abcdef');
  const reply = await client.jobStarted('hangar-minipc-7-1', hints, 10_000);
  server.close();
  expect(reply).toMatchObject({ decision: 'deny', reason: 'control-unreachable' });
  expect(asked).toBe(1);
});

test('a proxy answering 503 while the control restarts is asked again', async () => {
  const port = await freePort();
  let asked = 0;
  const server = createServer((_req, res) => {
    asked++;
    res.writeHead(asked < 3 ? 503 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(asked < 3 ? {} : { decision: 'deny', reason: 'fork-pr', message: 'no', workflowJobId: 7 }));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  const client = createControlClient(`http://127.0.0.1:${port}`, 'host-token-0123456789abcdef');
  const reply = await client.jobStarted('hangar-minipc-7-1', hints, 10_000);
  server.close();
  expect(reply).toMatchObject({ decision: 'deny', reason: 'fork-pr' });
  expect(asked).toBe(3);
});
