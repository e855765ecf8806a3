import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { tokenSha256 } from '../../src/jit/host-auth.js';
import { freePort } from '../../src/main/local-redis.js';
import { ensureTestImage, type TestImage } from '../vm/ensure-image.js';

/**
 * A whole installation on this machine, every part a real process started from the built CLI:
 * `hangar sim` (GitHub), `hangar control`, `hangar agent` with QEMU microVMs. Guests reach the
 * sim at an address of this host's own loopback (SIM_IP), through their tap and the host's
 * routing; nothing leaves the machine.
 */
export const SIM_IP = '10.213.255.254';
export const WEBHOOK_SECRET_FILE = 'webhook-secret';

export interface FleetOptions {
  redisUrl: string;
  prefix: string;
  slots?: number;
  timeoutMinutes?: number;
  memoryMiB?: number;
}

export interface Fleet {
  dir: string;
  image: TestImage;
  simUrl: string;
  controlUrl: string;
  configFile: string;
  stateDir: string;
  hostToken: string;
  api<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  /** Starts `hangar agent` and resolves once it takes jobs (see `agent` for the process). */
  startAgent(): Promise<void>;
  agent: ResultPromise | null;
  /** Everything every process printed so far. */
  logs(): string;
  close(): Promise<void>;
}

const CLI = join(process.cwd(), 'dist/main/cli.js');

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const image = await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-fleet-'));
  await execa('ip', ['addr', 'replace', `${SIM_IP}/32`, 'dev', 'lo']);
  const simPort = await freePort();
  const controlPort = await freePort();
  const hostToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'host-token'), hostToken, { mode: 0o600 });
  const simUrl = `http://${SIM_IP}:${simPort}`;
  const controlUrl = `http://127.0.0.1:${controlPort}`;
  const stateDir = join(dir, 'state');
  const configFile = join(dir, 'hangar.yaml');
  writeFileSync(configFile, fleetConfig({ ...o, dir, simUrl, controlPort, hostToken, imageDir: image.dir, stateDir }));

  const procs: ResultPromise[] = [];
  const logFiles: string[] = [];
  const spawn = (name: string, args: string[]) => {
    const file = join(dir, `${name}-${logFiles.length}.log`);
    logFiles.push(file);
    // No forced kill after SIGTERM: a draining agent may take as long as its jobs do.
    const p = execa('node', [CLI, ...args], { reject: false, all: true, buffer: false, forceKillAfterDelay: false });
    p.all!.pipe(createWriteStream(file));
    procs.push(p);
    return { p, file };
  };
  const waitFor = async (file: string, re: RegExp, what: string) => {
    for (let i = 0; i < 300; i++) {
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      if (re.test(text)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what} did not start:\n${existsSync(file) ? readFileSync(file, 'utf8').slice(-2000) : '(no output)'}`);
  };

  const sim = spawn('sim', [
    'sim', '--host', SIM_IP, '--port', String(simPort), '--app-id', '1',
    '--app-key-file', join(dir, 'app.pem'), '--webhook-secret-file', join(dir, WEBHOOK_SECRET_FILE),
    '--webhook-url', `${controlUrl}/webhooks/github`,
  ]);
  await waitFor(sim.file, /sim listening/, 'hangar sim');
  const control = spawn('control', ['control', '--config', configFile]);
  await waitFor(control.file, /control listening/, 'hangar control');

  const fleet: Fleet = {
    dir, image, simUrl, controlUrl, configFile, stateDir, hostToken, agent: null,
    async api(method, path, body) {
      const res = await fetch(`${simUrl}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      if (!res.ok) throw new Error(`sim ${method} ${path}: ${res.status} ${await res.text()}`);
      return (res.status === 204 ? undefined : await res.json()) as never;
    },
    async startAgent() {
      const a = spawn('agent', ['agent', '--config', configFile]);
      fleet.agent = a.p;
      // Not `return a.p`: an execa process is a thenable, and returning it would wait for its exit.
      await waitFor(a.file, /agent started/, 'hangar agent');
    },
    logs: () => logFiles.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join('\n'),
    async close() {
      for (const p of procs) p.kill('SIGTERM');
      await Promise.allSettled(procs);
      await execa('ip', ['addr', 'del', `${SIM_IP}/32`, 'dev', 'lo'], { reject: false });
      await execa('nft', ['delete', 'table', 'inet', 'hangar'], { reject: false });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

interface ConfigInput extends FleetOptions {
  dir: string;
  simUrl: string;
  controlPort: number;
  hostToken: string;
  imageDir: string;
  stateDir: string;
}

/** One hangar.yaml for both the control and the agent, as a one-box homelab has. */
function fleetConfig(c: ConfigInput): string {
  return `
github: {apiUrl: "${c.simUrl}", appId: 1, privateKeyFile: ${c.dir}/app.pem, webhookSecretFile: ${c.dir}/${WEBHOOK_SECRET_FILE}, writeSpacingMs: 0}
redis: {url: "${c.redisUrl}", prefix: ${c.prefix}}
control: {host: 127.0.0.1, port: ${c.controlPort}}
policy: {repositories: ["acme/*"]}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: large, labels: [self-hosted, linux, x64, large]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
  - {name: minipc, role: build, pools: [build, large], tokenSha256: ${tokenSha256(c.hostToken)}}
agent:
  host: minipc
  role: build
  pools: [build, large]
  slots: ${c.slots ?? 2}
  controlUrl: http://127.0.0.1:${c.controlPort}
  tokenFile: ${c.dir}/host-token
  stateDir: ${c.stateDir}
  vm: {accel: tcg, image: ${c.imageDir}, memoryMiB: ${c.memoryMiB ?? 256}, vcpus: 1, timeoutMinutes: ${c.timeoutMinutes ?? 5}}
  caps: {cpuQuotaPercent: 180, memoryMaxMiB: 2048, overheadMiB: 256}
log: {level: info}
`;
}
