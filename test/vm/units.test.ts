import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeCpio } from '../../src/vm/image/cpio.js';
import { buildQemuArgs, vmPaths } from '../../src/vm/qemu-microvm/args.js';
import { BoundedConsole } from '../../src/vm/qemu-microvm/console.js';
import { sleep } from './helpers.js';

describe('qemu command line', () => {
  const spec = {
    id: 'wj-1-1', kernel: '/img/vmlinux', initrd: '/img/initramfs.cpio', rootDisk: '/img/root.raw', memoryMiB: 512,
    vcpus: 2, timeoutMs: 1000, guestFiles: { secret: 'SECRET-VALUE' }, network: { tap: 'tap0', mac: '52:54:00:00:00:01' },
  };
  const args = buildQemuArgs({
    spec, paths: vmPaths('/state/a,b/wj-1-1'), accel: 'tcg', tscKhz: 2400000, sandbox: true, runAs: 'hangar-vm',
    guestFiles: [['secret', '/state/a,b/wj-1-1/guest/secret']],
  });
  const joined = args.join(' ');

  test('guest files go by path, never by value', () => {
    expect(joined).not.toContain('SECRET-VALUE');
    expect(joined).not.toContain('string=');
    expect(args).toContain('name=opt/hangar/secret,file=/state/a,,b/wj-1-1/guest/secret');
  });

  test('microvm under TCG with the clock, console, disk, net, sandbox and runas settings', () => {
    expect(args.slice(args.indexOf('-M'), args.indexOf('-M') + 2)).toEqual(['-M', 'microvm,acpi=on']);
    expect(args[args.indexOf('-cpu') + 1]).toBe('max');
    expect(args[args.indexOf('-append') + 1]).toBe('console=ttyS0 reboot=t panic=-1 tsc_early_khz=2400000');
    expect(joined).toContain('-nodefaults -no-user-config -nographic -no-reboot');
    expect(joined).toContain('socket,id=console,path=/state/a,,b/wj-1-1/console.sock,server=on,wait=off');
    expect(joined).toContain('virtio-blk-device,drive=root');
    expect(joined).toContain('tap,id=net0,ifname=tap0,script=no,downscript=no');
    expect(joined).toContain('virtio-net-device,netdev=net0,mac=52:54:00:00:00:01');
    // -runas needs setuid, which elevateprivileges=deny would forbid.
    expect(args[args.indexOf('-sandbox') + 1]).toBe('on,obsolete=deny,spawn=deny,resourcecontrol=deny');
    expect(args[args.indexOf('-runas') + 1]).toBe('hangar-vm');
  });
});

describe('cpio writer', () => {
  test('newc records, 4-byte aligned, ending in TRAILER!!!', () => {
    const out = writeCpio([{ kind: 'dir', path: 'bin' }, { kind: 'file', path: '/bin/x', data: Buffer.from('hello'), mode: 0o755 }]);
    const text = out.toString('latin1');
    expect(text.startsWith('070701')).toBe(true);
    expect(text).toContain('bin/x\0');
    expect(text).toContain('TRAILER!!!\0');
    expect(out.length % 4).toBe(0);
    expect(writeCpio([{ kind: 'symlink', path: 'a', target: 'b' }]).equals(writeCpio([{ kind: 'symlink', path: 'a', target: 'b' }]))).toBe(true);
  });
});

describe('bounded console', () => {
  let dir: string;
  let server: Server;
  let peer: Promise<Socket>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hangar-console-'));
    server = createServer();
    peer = new Promise((r) => server.once('connection', r));
    await new Promise<void>((r) => server.listen(join(dir, 'c.sock'), r));
  });
  afterAll(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('keeps at most the limit, the newest bytes, and drains on close', async () => {
    const log = join(dir, 'console.log');
    await writeFile(log, 'from an earlier agent\n');
    const c = new BoundedConsole(join(dir, 'c.sock'), log, 4096);
    void c.start(async () => true);
    const s = await peer;
    for (let i = 0; i < 2000; i++) s.write(`line ${i}\n`);
    s.end('LAST\n');
    await c.closed;
    const text = await readFile(log, 'utf8');
    expect((await stat(log)).size).toBeLessThanOrEqual(4096);
    expect(text.endsWith('line 1999\nLAST\n')).toBe(true);
    expect(text).not.toContain('from an earlier agent');
  });

  test('gives up when the VM is gone before its socket appears', async () => {
    const c = new BoundedConsole(join(dir, 'none.sock'), join(dir, 'none.log'), 4096);
    await c.start(async () => false);
    await c.closed;
    await sleep(1);
  });
});
