import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { VmDriver, VmSpec } from '../../src/vm/driver.js';
import { ensureTestImage } from './ensure-image.js';
import { modeOf, processesExposing, processesWith, walkFiles, waitForConsole } from './helpers.js';

export interface ConformanceOptions {
  /** The guest image (default: the test image, built into the cache when missing). */
  image?: () => Promise<{ kernel: string; initrd: string }>;
}

const VM_TEST_MS = 90_000;

/**
 * What every VmDriver must do, against real VMs booting the test image. Each test makes its
 * own VMs in its own state dir and destroys them; afterEach checks no VM process outlived it.
 * Run sequentially: the machine has two cores and TCG boots take seconds.
 */
export function driverConformance(name: string, makeDriver: (stateDir: string) => VmDriver, opts: ConformanceOptions = {}): void {
  describe.sequential(`VmDriver conformance: ${name}`, () => {
    let image: { kernel: string; initrd: string };
    let root: string;
    let stateDir: string;
    let driver: VmDriver;
    const drivers: Array<[VmDriver, string]> = [];

    const fresh = (dir: string): VmDriver => {
      const d = makeDriver(dir);
      drivers.push([d, dir]);
      return d;
    };
    const spec = (over: Partial<VmSpec> & { cmd?: string } = {}): VmSpec => {
      const { cmd, ...rest } = over;
      return {
        id: `vm-${randomUUID().slice(0, 8)}`,
        kernel: image.kernel,
        initrd: image.initrd,
        memoryMiB: 256,
        vcpus: 1,
        timeoutMs: 120_000,
        guestFiles: cmd === undefined ? undefined : { cmd },
        ...rest,
      };
    };

    beforeAll(async () => {
      image = await (opts.image ?? ensureTestImage)();
      root = await mkdtemp(join(tmpdir(), 'hangar-vm-conf-'));
    }, 600_000);

    afterEach(async () => {
      for (const [d, dir] of drivers.splice(0)) {
        for (const h of await d.list()) await d.destroy(h.id);
        expect(await processesWith(dir), `VM processes left under ${dir}`).toEqual([]);
      }
    }, VM_TEST_MS);

    afterAll(async () => {
      if (root) await rm(root, { recursive: true, force: true });
    });

    const newStateDir = async () => mkdtemp(join(root, 's-'));
    const setup = async () => {
      stateDir = await newStateDir();
      driver = fresh(stateDir);
    };

    test('create boots the guest: the console shows HANGAR-GUEST-INIT', async () => {
      await setup();
      const h = await driver.create(spec({ cmd: 'sleep 600' }));
      expect(h.pid).toBeGreaterThan(1);
      await waitForConsole(h.consoleLog, 'HANGAR-GUEST-INIT');
    }, VM_TEST_MS);

    test('a guest cmd runs: its output is on the console and wait() says exited', async () => {
      await setup();
      const marker = `CONFORMANCE-${randomUUID()}`;
      const h = await driver.create(spec({ cmd: `uname -r; echo ${marker}` }));
      expect(await driver.wait(h.id)).toEqual({ kind: 'exited', code: 0, signal: null });
      const text = await readFile(h.consoleLog, 'utf8');
      expect(text).toContain(marker);
      expect(text).toMatch(/^\d+\.\d+\.\d+\S*\r?$/m); // uname -r
      expect(text).toMatch(/HANGAR-RUNNER-EXIT 0/);
    }, VM_TEST_MS);

    test('create twice with the same id yields one VM', async () => {
      await setup();
      const s = spec({ cmd: 'sleep 600' });
      const [a, b] = await Promise.all([driver.create(s), driver.create(s)]);
      const c = await driver.create(s);
      expect(b.pid).toBe(a.pid);
      expect(c.pid).toBe(a.pid);
      expect(await processesWith(stateDir)).toEqual([a.pid]);
      expect((await driver.list()).map((h) => h.id)).toEqual([s.id]);
    }, VM_TEST_MS);

    test('destroy is idempotent and leaves no process, overlay, guest file or state dir', async () => {
      await setup();
      const base = join(root, `base-${randomUUID()}.raw`);
      await writeFile(base, Buffer.concat([Buffer.from('HANGAR-BASE-DISK'), Buffer.alloc(1024 * 1024 - 16)]));
      const before = await readFile(base);
      const s = spec({ cmd: 'echo overwritten > /dev/vda; sync; sleep 600', rootDisk: base });
      s.guestFiles = { ...s.guestFiles, secret: 'c2VjcmV0' };
      const h = await driver.create(s);
      await waitForConsole(h.consoleLog, 'HANGAR-RUNNER-START');
      expect((await walkFiles(stateDir)).length).toBeGreaterThan(0);
      await driver.destroy(s.id);
      await driver.destroy(s.id);
      expect(await processesWith(stateDir)).toEqual([]);
      expect(await walkFiles(stateDir)).toEqual([]);
      expect(existsSync(join(stateDir, s.id))).toBe(false);
      expect(await driver.list()).toEqual([]);
      expect((await readFile(base)).equals(before)).toBe(true); // the guest wrote to its overlay only
    }, VM_TEST_MS);

    test('destroy of an unknown id resolves', async () => {
      await setup();
      await expect(driver.destroy('never-made')).resolves.toBeUndefined();
      await expect(driver.destroy('../../etc')).resolves.toBeUndefined();
      expect(await driver.list()).toEqual([]);
    });

    test('list finds exactly this state dir\'s VMs, again after a restart, which can destroy them', async () => {
      await setup();
      const other = fresh(await newStateDir());
      const a = await driver.create(spec({ cmd: 'sleep 600' }));
      const b = await driver.create(spec({ cmd: 'sleep 600' }));
      expect(await other.list()).toEqual([]);
      const ids = (hs: Array<{ id: string }>) => hs.map((h) => h.id).sort();
      expect(ids(await driver.list())).toEqual([a.id, b.id].sort());
      const restarted = fresh(stateDir); // an agent that was kill -9ed and started again
      const found = await restarted.list();
      expect(ids(found)).toEqual([a.id, b.id].sort());
      expect(found.map((h) => h.pid).sort()).toEqual([a.pid, b.pid].sort());
      await restarted.destroy(a.id);
      await restarted.destroy(b.id);
      expect(await processesWith(stateDir)).toEqual([]);
      expect(await driver.list()).toEqual([]);
    }, VM_TEST_MS);

    test('wait works for a VM an earlier driver instance created', async () => {
      await setup();
      const h = await driver.create(spec({ cmd: 'sleep 1; echo LATE-EXIT' }));
      const restarted = fresh(stateDir);
      const exit = await restarted.wait(h.id);
      expect(exit.kind).toBe('exited');
      expect(await readFile(h.consoleLog, 'utf8')).toContain('LATE-EXIT');
      expect(await restarted.wait('never-made')).toEqual({ kind: 'lost' });
    }, VM_TEST_MS);

    test('the time cap kills a guest that runs too long, and wait says timeout', async () => {
      await setup();
      const h = await driver.create(spec({ cmd: 'sleep 600', timeoutMs: 6000 }));
      const started = Date.now();
      expect(await driver.wait(h.id)).toEqual({ kind: 'timeout' });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await processesWith(stateDir)).toEqual([]);
    }, VM_TEST_MS);

    test('guest files never show in any process\'s argv or environment; a secret one is 0600 and gone after destroy', async () => {
      await setup();
      const secret = `hangar-secret-${randomUUID()}`;
      const s = spec({ cmd: 'sleep 600' });
      s.guestFiles = { ...s.guestFiles, secret: Buffer.from(secret).toString('base64'), plain: secret };
      const h = await driver.create(s);
      await waitForConsole(h.consoleLog, 'HANGAR-RUNNER-START');
      expect(await processesExposing(secret)).toEqual([]);
      expect(await processesExposing(Buffer.from(secret).toString('base64'))).toEqual([]);
      const holding = [];
      for (const f of await walkFiles(stateDir)) {
        const text = await readFile(f, 'utf8');
        if (text.includes(secret) || text.includes(Buffer.from(secret).toString('base64'))) holding.push(f);
      }
      expect(holding.length).toBeGreaterThan(0); // handed over as files …
      for (const f of holding) expect(await modeOf(f), f).toBe(0o600); // … that only root reads
      expect(await readFile(h.consoleLog, 'utf8')).not.toContain(secret);
      await driver.destroy(s.id);
      for (const f of holding) expect(existsSync(f), f).toBe(false);
    }, VM_TEST_MS);

    test('the console log is bounded: a guest printing far more keeps at most the limit, the tail', async () => {
      await setup();
      const limit = 16 * 1024;
      const line = 'x'.repeat(100);
      const cmd = `i=0; while [ $i -lt 1500 ]; do echo "line $i ${line}"; i=$((i+1)); done; echo FLOOD-DONE`;
      const h = await driver.create(spec({ cmd, consoleLimitBytes: limit }));
      expect((await driver.wait(h.id)).kind).toBe('exited');
      const size = (await stat(h.consoleLog)).size;
      expect(size).toBeLessThanOrEqual(limit);
      const text = await readFile(h.consoleLog, 'utf8');
      expect(text).toContain('FLOOD-DONE');
      expect(text).not.toContain('line 0 ');
    }, VM_TEST_MS);
  });
}
