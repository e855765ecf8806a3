// A whole Hangar installation as real processes, like test/helpers/fleet.ts, in plain ESM over
// dist/: `hangar sim` on SIM_IP (an address added to lo), `hangar control`, `hangar agent`
// with the test image, one hangar.yaml. Every process's output goes to a log file in `dir`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';

export const SIM_IP = '10.213.255.254';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {object} o
 * @param {string} o.root      the checkout (dist/ is under it)
 * @param {string} o.dir       a fresh temp dir this fleet owns
 * @param {string} o.redisUrl
 * @param {string} o.prefix
 * @param {string} o.imageDir
 * @param {number} o.slots
 * @param {number} o.memoryMiB
 * @param {number} o.vcpus
 * @param {number} o.timeoutMinutes
 */
export async function startFleet(o) {
  const dist = (p) => pathToFileURL(join(o.root, 'dist', p)).href;
  const { tokenSha256 } = await import(dist('jit/host-auth.js'));
  const { freePort } = await import(dist('main/local-redis.js'));
  const CLI = join(o.root, 'dist/main/cli.js');

  const procs = [];
  const logFiles = {};
  const fleet = {
    dir: o.dir,
    stateDir: join(o.dir, 'state'),
    procs,
    logFiles,
    simUrl: '',
    controlUrl: '',
    agentPid: null,
    addedSimIp: false,
    async api(method, path, body) {
      const res = await fetch(`${fleet.simUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`sim ${method} ${path}: ${res.status} ${await res.text()}`);
      return res.status === 204 ? undefined : res.json();
    },
    log: (name) => (existsSync(logFiles[name] ?? '') ? readFileSync(logFiles[name], 'utf8') : ''),
    /** SIGTERM each process (agent first: it drains), then SIGKILL what is left after `graceMs`. */
    async stop(graceMs = 20_000) {
      for (const p of [...procs].reverse()) {
        if (p.exitCode !== null || p.signalCode !== null) continue;
        try { p.kill('SIGTERM'); } catch { /* gone */ }
        const gone = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
        if (!gone) {
          try { p.kill('SIGKILL'); } catch { /* gone */ }
          await p.exited;
        }
      }
    },
  };

  const { CONTROL_NODE_FLAGS } = await import(dist('config/runtime.js'));
  const start = (name, args, nodeFlags = []) => {
    const file = join(o.dir, `${name}.log`);
    logFiles[name] = file;
    const out = createWriteStream(file);
    const p = spawn(process.execPath, [...nodeFlags, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.pipe(out);
    p.stderr.pipe(out);
    p.exited = new Promise((r) => p.once('exit', r));
    p.name = name;
    procs.push(p);
    return p;
  };
  const waitFor = async (name, re, what) => {
    const p = procs.find((x) => x.name === name);
    for (let i = 0; i < 600; i++) {
      if (re.test(fleet.log(name))) return;
      if (p && (p.exitCode !== null || p.signalCode !== null)) break;
      await sleep(50);
    }
    throw new Error(`${what} did not start:\n${fleet.log(name).slice(-2000) || '(no output)'}`);
  };

  const have = await execa('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { reject: false });
  if (!String(have.stdout).includes(`${SIM_IP}/32`)) {
    await execa('ip', ['addr', 'replace', `${SIM_IP}/32`, 'dev', 'lo']);
    fleet.addedSimIp = true;
  }
  const simPort = await freePort();
  const controlPort = await freePort();
  // The agents' API is on the private listener (loopback, no TLS needed); webhooks on the public one.
  const privatePort = await freePort();
  const hostToken = randomBytes(24).toString('base64url');
  writeFileSync(join(o.dir, 'host-token'), hostToken, { mode: 0o600 });
  fleet.simUrl = `http://${SIM_IP}:${simPort}`;
  fleet.controlUrl = `http://127.0.0.1:${privatePort}`;
  const webhookUrl = `http://127.0.0.1:${controlPort}/webhooks/github`;
  const configFile = join(o.dir, 'hangar.yaml');
  writeFileSync(configFile, `
github: {apiUrl: "${fleet.simUrl}", appId: 1, privateKeyFile: ${o.dir}/app.pem, webhookSecretFile: ${o.dir}/webhook-secret, writeSpacingMs: 0}
redis: {url: "${o.redisUrl}", prefix: ${o.prefix}}
control: {host: 127.0.0.1, port: ${controlPort}, private: {listen: "127.0.0.1:${privatePort}"}}
policy: {repositories: ["acme/*"]}
dashboard: {enabled: false}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
hosts:
  - {name: benchbox, role: build, pools: [build], tokenSha256: ${tokenSha256(hostToken)}}
agent:
  host: benchbox
  slots: ${o.slots}
  controlUrl: ${fleet.controlUrl}
  tokenFile: ${o.dir}/host-token
  stateDir: ${fleet.stateDir}
  # The guests reach the sim on this host's loopback, which isolation forbids; pickup measures
  # the way to a running runner, not the rules (bench/egress does): masquerade only.
  network: {isolation: false}
  vm: {accel: tcg, image: ${o.imageDir}, memoryMiB: ${o.memoryMiB}, vcpus: ${o.vcpus}, timeoutMinutes: ${o.timeoutMinutes}}
  caps: {cpuQuotaPercent: 180, memoryMaxMiB: ${Math.max(2048, o.slots * (o.memoryMiB + 256))}, overheadMiB: 256}
log: {level: info}
`);
  fleet.configFile = configFile;

  start('sim', [
    'sim', '--host', SIM_IP, '--port', String(simPort), '--app-id', '1',
    '--app-key-file', join(o.dir, 'app.pem'), '--webhook-secret-file', join(o.dir, 'webhook-secret'),
    '--webhook-url', webhookUrl,
  ]);
  await waitFor('sim', /sim listening/, 'hangar sim');
  start('control', ['control', '--config', configFile], CONTROL_NODE_FLAGS);
  await waitFor('control', /control listening/, 'hangar control');
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  const agent = start('agent', ['agent', '--config', configFile]);
  fleet.agentPid = agent.pid;
  await waitFor('agent', /agent started/, 'hangar agent');
  return fleet;
}

/** pino lines of one log file, parsed; lines that are not JSON are skipped. */
export function logLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line)); } catch { /* partial line */ }
  }
  return out;
}
