import { createServer, type Server } from 'node:http';
import { expect, test } from 'vitest';
import { createControlClient } from '../../src/agent/control-client.js';
import { freePort } from '../../src/main/local-redis.js';

/**
 * The agent's gate question to the control survives a control restarting (connections refused
 * for a moment), and still fails closed when the control stays away or answers an error.
 */
const hints = { workflowJobId: 7, runId: 1, repository: 'acme/app' } as never;

function answer(port: number, status: number, body: unknown): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

test('a control that comes back within the deadline answers the gate: the job is not refused', async () => {
  const port = await freePort();
  const client = createControlClient(`http://127.0.0.1:${port}`, 'host-token-0123456789abcdef');
  let server: Server | undefined;
  const later = new Promise<void>((resolve) => setTimeout(async () => {
    server = await answer(port, 200, { decision: 'allow', workflowJobId: 7 });
    resolve();
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
