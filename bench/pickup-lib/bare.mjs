// A bare QEMU boot of the same image with the same machine options as the agent's driver:
// the command line comes from the driver's own buildQemuArgs (dist/vm/qemu-microvm/args.js),
// with the same guest file by fw_cfg (`net`, so /init configures the NIC) and a NIC on a tap of
// its own, on whose host side this process answers the guest's `GET /v1/jit` at once (so /init
// fetches its JIT config as in a job, minus the wait for a mint, and takes the runner branch).
// Only the serial console differs: stdio here, where the driver serves a unix socket that the
// agent copies to console.log. Timed from spawn() to HANGAR-RUNNER-START on stdout; QEMU is
// then killed.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { procMem } from './proc.mjs';

export const BARE_TAP = 'hpb-bare0';
/** A /30 of the agent's range that its 2 slots never use (slot i has the i-th /30). */
const BARE_HOST = '10.213.254.1';
const BARE_GUEST = '10.213.254.2';
const METADATA_PORT = 8169;

export async function createBare(o) {
  const dist = (p) => pathToFileURL(join(o.root, 'dist', p)).href;
  const { buildQemuArgs, vmPaths } = await import(dist('vm/qemu-microvm/args.js'));
  const { hostTscKhz, qemuHasSandbox, DEFAULT_QEMU } = await import(dist('vm/qemu-microvm/accel.js'));
  const sandbox = await qemuHasSandbox(DEFAULT_QEMU);
  const tscKhz = await hostTscKhz();
  // The agent's tap: created, MTU 1500, up, an address on the host side, the metadata endpoint.
  await execa('ip', ['tuntap', 'add', 'dev', BARE_TAP, 'mode', 'tap'], { reject: false });
  await execa('ip', ['link', 'set', 'dev', BARE_TAP, 'mtu', '1500', 'up']);
  await execa('ip', ['addr', 'replace', `${BARE_HOST}/30`, 'dev', BARE_TAP]);
  const jit = Buffer.from('HANGAR_SIM_URL=http://10.213.255.254:9\nRUNNER_TOKEN=none\n').toString('base64');
  const meta = createServer((req, res) => {
    res.writeHead(req.method === 'GET' && req.url === '/v1/jit' ? 200 : 404, { 'content-type': 'text/plain', connection: 'close' });
    res.end(req.url === '/v1/jit' ? jit : 'not found\n');
  });
  await new Promise((resolve, reject) => meta.once('error', reject).listen(METADATA_PORT, BARE_HOST, resolve));
  let child = null;
  let n = 0;

  const bare = {
    sandbox,
    tscKhz,
    args: null,
    /** One boot: { ms, guestInitMs, hwmAtMarker } or throws on timeout/exit. */
    async boot(timeoutMs = 120_000) {
      const id = `bare-${n++}`;
      const dir = join(o.dir, 'bare', id);
      const paths = vmPaths(dir);
      mkdirSync(paths.guestDir, { recursive: true, mode: 0o700 });
      const net = join(paths.guestDir, 'net');
      // Same shape as the agent's: a /30 of 10.213.0.0/16, its DNS, MTU, the metadata endpoint.
      writeFileSync(net, `IP=${BARE_GUEST}/30\nGW=${BARE_HOST}\nDNS=1.1.1.1,9.9.9.9\nMTU=1500\nMETA=http://${BARE_HOST}:${METADATA_PORT}\n`, { mode: 0o600 });
      const spec = {
        id, kernel: o.image.kernel, initrd: o.image.initrd, memoryMiB: o.memoryMiB, vcpus: o.vcpus,
        network: { tap: BARE_TAP, mac: '52:54:00:be:be:00' }, timeoutMs: 60_000,
      };
      const args = buildQemuArgs({ spec, paths, accel: 'tcg', tscKhz, sandbox, guestFiles: [['net', net]] });
      // The console on stdio instead of the unix socket chardev.
      const c = args.indexOf('-chardev');
      args.splice(c, 2);
      const s = args.indexOf('-serial');
      args.splice(s, 2, '-serial', 'stdio');
      bare.args = args;
      return new Promise((resolve, reject) => {
        let out = '';
        let guestInit = null;
        let done = false;
        const t0 = Date.now();
        child = spawn(DEFAULT_QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        const p = child;
        let err = '';
        const timer = setTimeout(() => finish(new Error(`bare boot: no HANGAR-RUNNER-START within ${timeoutMs} ms`)), timeoutMs);
        const finish = (e, r) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          try { p.kill('SIGKILL'); } catch { /* gone */ }
          p.once('exit', () => {
            rmSync(dir, { recursive: true, force: true });
            if (child === p) child = null;
            e ? reject(e) : resolve(r);
          });
          if (p.exitCode !== null || p.signalCode !== null) p.emit('exit');
        };
        p.stdout.on('data', (d) => {
          const now = Date.now();
          out = (out + d.toString('latin1')).slice(-8192);
          if (guestInit === null && out.includes('HANGAR-GUEST-INIT')) guestInit = now - t0;
          if (out.includes('HANGAR-RUNNER-START')) {
            const mem = procMem(p.pid);
            finish(null, { ms: now - t0, guestInitMs: guestInit, hwmAtMarker: mem?.hwm ?? NaN, rssAtMarker: mem?.rss ?? NaN });
          }
        });
        p.stderr.on('data', (d) => { err = (err + d).slice(-2000); });
        p.once('exit', (code, sig) => { if (!done) finish(new Error(`bare qemu exited (${code ?? sig}) before the marker: ${err || out.slice(-500)}`)); });
      });
    },
    async close() {
      if (child) {
        try { child.kill('SIGKILL'); } catch { /* gone */ }
      }
      await new Promise((r) => meta.close(r));
      await execa('ip', ['link', 'del', 'dev', BARE_TAP], { reject: false });
    },
  };
  return bare;
}
