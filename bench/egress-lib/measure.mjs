// The measuring half of bench/egress, started by bench/egress.mjs inside the bench's `host`
// namespace (nsenter --net=…): QEMU must run where its tap is. Takes the run's settings from the
// JSON file named on its command line, writes what it measured to <dir>/result.json.
//
// Per step (a mode and a round): Hangar's table in that mode, a fresh tap, one VM booted with
// the driver (no agent, no cgroups) whose `cmd` script tries the private address and downloads
// the blob, then (without QEMU) the veth guest's downloads under the same table.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { guestScript, parseConsole } from './guest.mjs';
import { startSampler } from './sampler.mjs';
import { RANGE, SERVER_IP, UPLINK } from './topology.mjs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const dist = (p) => pathToFileURL(join(cfg.root, 'dist', p)).href;
const here = resolve(cfg.root, 'bench/egress-lib');
const log = (...a) => console.error(`[egress ${new Date().toISOString().slice(11, 23)}]`, ...a);
const sleep = (t) => new Promise((r) => setTimeout(r, t));

// Everything below (QEMU above all) must happen inside the bench's host namespace, never in the machine's own.
if (statSync('/proc/self/ns/net').ino !== statSync(`/run/netns/${cfg.ns.host}`).ino) {
  console.error(`bench/egress measure: not inside network namespace ${cfg.ns.host}; refusing to touch this one`);
  process.exit(1);
}

const { createQemuMicrovmDriver } = await import(dist('vm/qemu-microvm/driver.js'));
const { createHostNetwork } = await import(dist('net/host-network.js'));
const { createIsolation } = await import(dist('net/isolation-apply.js'));

/** A build host with internet egress, as the agent would apply it (metadata port: the config's default). */
const HOST_MODEL = { range: RANGE, metadataPort: 8169, role: 'build', outInterface: UPLINK };

const net = createHostNetwork({ netns: cfg.ns.host, range: RANGE });
const iso = createIsolation({ netns: cfg.ns.host });
const driver = createQemuMicrovmDriver({ stateDir: join(cfg.dir, 'vms'), accel: 'tcg' });
const consoles = join(cfg.dir, 'consoles');
mkdirSync(consoles, { recursive: true });

// ---------------------------------------------------------------- the server, in `inet`
const records = [];
const server = spawn('nsenter', [`--net=/run/netns/${cfg.ns.inet}`, process.execPath, join(here, 'server.mjs'), String(cfg.mib), '80'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let serverOut = '';
const serverReady = new Promise((ok, fail) => {
  server.stdout.on('data', (d) => {
    serverOut += d;
    let nl;
    while ((nl = serverOut.indexOf('\n')) >= 0) {
      const line = serverOut.slice(0, nl);
      serverOut = serverOut.slice(nl + 1);
      const r = JSON.parse(line);
      if (r.ready) ok(r);
      else records.push(r);
    }
  });
  server.once('exit', (code) => fail(new Error(`the server exited (${code}) before it was ready`)));
});

let current = null; // the VM of the step under way, for a clean stop
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  if (current) await driver.destroy(current).catch((e) => log(`destroy ${current}: ${e.message}`));
  server.kill('SIGKILL');
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void stop(130));

/**
 * Packets and bytes a link of the host namespace has sent (to its guest) and received. With
 * offloads one packet can be a GSO super-packet: what the rules see is this count, not bytes / MTU.
 */
function linkStats(dev) {
  const out = execFileSync('ip', ['-n', cfg.ns.host, '-s', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
  const { rx, tx } = JSON.parse(out)[0].stats64;
  return { txPackets: tx.packets, txBytes: tx.bytes, rxPackets: rx.packets, rxBytes: rx.bytes };
}
const statsDelta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));

/** The server's records whose tag is `tag` or starts with `tag-`, waiting up to 3 s for `want` of them. */
async function recordsFor(tag, want) {
  const mine = () => records.filter((r) => r.tag === tag || r.tag?.startsWith(`${tag}-`));
  for (let i = 0; i < 60 && mine().filter((r) => r.path === '/blob').length < want; i++) await sleep(50);
  return mine();
}

// ---------------------------------------------------------------- one step
const vethEl = cfg.veth && { tap: cfg.veth.dev, guestIp: cfg.veth.guestIp, gatewayIp: cfg.veth.hostIp, egress: 'internet' };

async function setMode(mode) {
  // Both replace the whole table in one transaction (renderEgressRuleset's table/delete/table).
  if (mode === 'a') await net.ensureEgress({ outInterface: UPLINK });
  else await iso.apply(HOST_MODEL);
}

async function step(mode, label, measured) {
  const tag = `${label}-${mode}`;
  const vmId = `egress-${tag}`;
  await setMode(mode);
  const tap = await net.createTap({ vmId, index: 0 });
  if (mode === 'b') {
    // As the agent does, before the VM boots.
    await iso.addVm({ tap: tap.tap, guestIp: tap.guestIp, gatewayIp: tap.hostIp, egress: 'internet' });
    if (vethEl) await iso.addVm(vethEl);
  }
  const c0 = mode === 'b' ? await iso.counters() : null;
  const out = { mode, label, tag, measured, vmId, tap: tap.tap, ...(await runVm(vmId, tag, tap)), tapStats: linkStats(tap.tap) };
  if (mode === 'b') {
    const c1 = await iso.counters();
    out.counters = Object.fromEntries(Object.keys(c1).map((k) => [k, c1[k].packets - c0[k].packets]).filter(([, v]) => v !== 0));
    out.denied = await iso.denied(tap.tap);
  }
  if (cfg.veth?.downloads > 0) out.veth = await vethDownloads(`v${tag}`);
  if (mode === 'b') {
    await iso.removeVm(tap.tap);
    await iso.clearDenied(tap.tap);
    if (vethEl) await iso.removeVm(vethEl.tap);
  }
  await net.destroyTap(tap.tap);
  return out;
}

/** One VM on `tap` running the guest script to its end; its console, the server's records of it, QEMU's CPU. */
async function runVm(vmId, tag, tap) {
  const perDownloadTimeoutS = 30 + cfg.mib;
  const spec = {
    id: vmId, kernel: cfg.image.kernel, initrd: cfg.image.initrd, memoryMiB: cfg.memoryMiB, vcpus: cfg.vcpus,
    network: { tap: tap.tap, mac: tap.mac },
    timeoutMs: 90_000 + cfg.downloads * perDownloadTimeoutS * 1000,
    guestFiles: {
      net: `IP=${tap.guestIp}/${tap.prefixLen} GW=${tap.hostIp} DNS=${tap.hostIp} MTU=${tap.mtu}`,
      cmd: guestScript({ tag, downloads: cfg.downloads, perDownloadTimeoutS }),
    },
  };
  const tCreate = Date.now();
  current = vmId;
  const h = await driver.create(spec);
  const sampler = startSampler(h.pid, { clkTck: cfg.clkTck });
  const exit = await driver.wait(h.id);
  sampler.stop();
  const text = readFileSync(h.consoleLog, 'utf8');
  writeFileSync(join(consoles, `${tag}.log`), text);
  await driver.destroy(h.id);
  current = null;
  const vmMs = Date.now() - tCreate;
  const guest = parseConsole(text);
  const recs = await recordsFor(tag, cfg.downloads);
  const server = recs.filter((r) => r.path === '/blob').sort((x, y) => x.tReq - y.tReq);
  // QEMU's CPU from the first download's request to the last one's end (they follow each other).
  const cpu = server.length ? sampler.window(server[0].wReq, server.at(-1).wEnd) : null;
  return { exit, vmMs, bootToReadyS: guest.ready, guest, server, privateReachedServer: recs.some((r) => r.path === '/private'), cpu, cpuSamples: sampler.samples };
}

/** The veth guest's downloads, under whatever table is in place: the rules at kernel speed. */
async function vethDownloads(tag) {
  const c = spawn('nsenter', [`--net=/run/netns/${cfg.ns.vguest}`, process.execPath, join(here, 'client.mjs'), SERVER_IP, tag, String(cfg.veth.downloads)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (d) => { out += d; });
  const before = linkStats(cfg.veth.dev);
  const code = await new Promise((r) => c.once('exit', r));
  const linkDelta = statsDelta(before, linkStats(cfg.veth.dev));
  const client = code === 0 ? JSON.parse(out) : [];
  return { client, server: (await recordsFor(tag, cfg.veth.downloads)).filter((r) => r.path === '/blob'), linkStats: linkDelta };
}

// ---------------------------------------------------------------- the run
try {
  await serverReady;
  const steps = [];
  const loads = [];
  const load1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  for (let i = 0; i < cfg.warmup; i++) {
    for (const mode of ['a', 'b']) {
      const s = await step(mode, `w${i}`, false);
      steps.push(s);
      log(`warm-up ${i} ${mode}: ${s.guest.gets.length} downloads, exit ${s.exit.kind}`);
    }
  }
  const cpu0 = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  for (let i = 0; i < cfg.rounds; i++) {
    // A B, B A, A B, …: both modes see the same machine, neither always goes first.
    for (const mode of i % 2 === 0 ? ['a', 'b'] : ['b', 'a']) {
      loads.push(load1());
      const s = await step(mode, `r${i}`, true);
      steps.push(s);
      const mibs = s.server.reduce((n, r) => n + r.bytes, 0) / 2 ** 20 / (s.server.reduce((n, r) => n + (r.tEnd - r.tReq), 0) / 1000);
      log(`round ${i + 1}/${cfg.rounds} ${mode}: ${mibs.toFixed(1)} MiB/s (${s.server.length} downloads), private ${s.guest.private?.rc === 0 ? 'reached' : 'refused'}, load ${loads.at(-1)}`);
    }
  }
  const cpu1 = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  writeFileSync(join(cfg.dir, 'result.json'), JSON.stringify({ steps, loads, cpu0, cpu1 }));
  await stop(0);
} catch (err) {
  log(`failed: ${err.stack ?? err}`);
  await stop(1);
}
