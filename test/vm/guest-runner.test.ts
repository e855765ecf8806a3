import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { JitHandover } from '../../src/agent/jit-handover.js';
import { openMetadataEndpoint } from '../../src/agent/metadata.js';
import { createQemuMicrovmDriver } from '../../src/vm/qemu-microvm/driver.js';
import { ensureTestImage, type TestImage } from './ensure-image.js';
import { processesWith } from './helpers.js';

/**
 * The test image's /init with a JIT config, fetched from the agent's metadata endpoint: runner.sh (src/sim/runner.sh) in the guest polls a
 * stand-in for the sim's runner protocol on the host side of a tap, runs the job, reports.
 * A stand-in, not `hangar sim`: this checks the image, not the sim.
 */
describe('test image: the sim runner inside the guest', () => {
  const tap = `hgr${randomUUID().slice(0, 8)}`;
  const token = `runner-token-${randomUUID()}`;
  let image: TestImage;
  let root: string;
  let server: Server;
  const results: Array<{ url: string; body: string }> = [];
  let served = 0;

  beforeAll(async () => {
    image = await ensureTestImage();
    root = await mkdtemp(join(tmpdir(), 'hangar-guest-runner-'));
    await execa('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await execa('ip', ['addr', 'add', '10.213.78.1/30', 'dev', tap]);
    await execa('ip', ['link', 'set', tap, 'up']);
    server = createServer((req, res) => {
      if (req.headers.authorization !== `RunnerToken ${token}`) return void res.writeHead(401).end();
      if (req.method === 'GET' && req.url === '/_runner/job') {
        if (served++ > 0) return void res.writeHead(204).end();
        return void res.writeHead(200).end('HANGAR_SIM_JOB_ID=7\necho hello-from-the-job\nuname -m\nexit 3\n');
      }
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => { results.push({ url: req.url ?? '', body }); res.writeHead(200).end(); });
    });
    await new Promise<void>((r) => server.listen(0, '10.213.78.1', r));
  }, 600_000);

  afterAll(async () => {
    server?.close();
    await execa('ip', ['link', 'del', tap], { reject: false });
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('runs one job, reports its output and exit code, never shows the token', async () => {
    const port = (server.address() as AddressInfo).port;
    const jit = Buffer.from(
      `HANGAR_SIM_URL=http://10.213.78.1:${port}\nRUNNER_ID=1\nRUNNER_NAME=guest-1\nRUNNER_TOKEN=${token}\n`,
    ).toString('base64');
    const stateDir = join(root, 'state');
    const handover = new JitHandover();
    handover.offer(jit);
    const meta = await openMetadataEndpoint({
      hostIp: '10.213.78.1', guestIp: '10.213.78.2', port: 8169, logger: pino({ level: 'silent' }), jit: handover,
      gate: async () => ({ decision: 'deny', reason: 'not-asked-here', message: '', workflowJobId: null }),
    });
    const d = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
    const h = await d.create({
      id: 'runner-1', kernel: image.kernel, initrd: image.initrd, memoryMiB: 256, vcpus: 1, timeoutMs: 60_000,
      network: { tap, mac: '52:54:00:aa:bb:01' },
      guestFiles: { net: 'IP=10.213.78.2/30\nGW=10.213.78.1\nMETA=http://10.213.78.1:8169\n' },
    });
    try {
      expect((await d.wait(h.id)).kind).toBe('exited');
      const text = await readFile(h.consoleLog, "utf8");
      if (process.env.HANGAR_DEBUG_CONSOLE) process.stderr.write(text);
      expect(text).toMatch(/HANGAR-GUEST-INIT[\s\S]*HANGAR-RUNNER-START[\s\S]*HANGAR-RUNNER-EXIT 3/);
      expect(text).not.toContain(token);
      expect(text).not.toContain(jit);
      expect(results).toHaveLength(1);
      expect(results[0]!.url).toBe('/_runner/jobs/7/result?exit=3');
      expect(results[0]!.body).toContain('hello-from-the-job\nx86_64\n');
      expect(handover.handedAt).not.toBeNull();
    } finally {
      await d.destroy(h.id);
      await meta.close();
    }
    expect(await processesWith(stateDir)).toEqual([]);
  }, 90_000);
});
