import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { CONTROL_NODE_FLAGS } from '../config/runtime.js';
import { tokenSha256 } from '../jit/host-auth.js';
import { freePort } from './local-redis.js';
import { ensureTestImage, type TestImage } from './test-image.js';

/**
 * A whole installation on this machine, for the demo, the end-to-end tests and the benchmarks.
 * Every part is a real process started from the built CLI: `hangar sim` (GitHub),
 * `hangar control`, `hangar agent` with QEMU microVMs. Guests reach the sim at an address of
 * this host's own loopback (SIM_IP), through their tap and the host's routing; nothing leaves
 * the machine. One agent per host: two fleets at once would clean up each other's VMs.
 */
export const SIM_IP = '10.213.255.254';
export const WEBHOOK_SECRET_FILE = 'webhook-secret';
export const VM_USER = 'hangar-vm';

export interface FleetOptions {
  redisUrl: string;
  prefix: string;
  slots?: number;
  timeoutMinutes?: number;
  memoryMiB?: number;
  /** The agent's role: `deploy` serves the deploy pool too (build, large, deploy). Default build. */
  role?: 'build' | 'deploy';
  /** policy.cancelRefusedRuns (default true). */
  cancelRefusedRuns?: boolean;
  /** More hosts the control lets mint (no agent runs for them; a test acts as one). */
  extraHosts?: { name: string; role: 'build' | 'deploy'; pools: string[]; token: string }[];
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
  /** Starts `hangar control` again (after a test stopped `control`). */
  startControl(): Promise<void>;
  control: ResultPromise | null;
  /** Everything every process printed so far. */
  logs(): string;
  close(): Promise<void>;
}

/** The built CLI (dist/main/cli.js), whether this module runs from dist or from src under vitest. */
const CLI = fileURLToPath(new URL('../../dist/main/cli.js', import.meta.url));

export async function startLocalFleet(o: FleetOptions): Promise<Fleet> {
  const image = await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), 'hangar-fleet-'));
  const procs = new Processes(dir);
  const close = async () => {
    await procs.stop();
    await execa('ip', ['addr', 'del', `${SIM_IP}/32`, 'dev', 'lo'], { reject: false });
    await execa('nft', ['delete', 'table', 'inet', 'hangar'], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    return await start(o, image, dir, procs, close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function start(o: FleetOptions, image: TestImage, dir: string, procs: Processes, close: () => Promise<void>): Promise<Fleet> {
  await execa('ip', ['addr', 'replace', `${SIM_IP}/32`, 'dev', 'lo']);
  // QEMU drops to this user once it has opened its files (the Ansible role makes it in production).
  if ((await execa('id', ['-u', VM_USER], { reject: false })).exitCode !== 0) {
    await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', VM_USER]);
  }
  const [simPort, controlPort] = [await freePort(), await freePort()];
  const hostToken = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'host-token'), hostToken, { mode: 0o600 });
  const simUrl = `http://${SIM_IP}:${simPort}`;
  const controlUrl = `http://127.0.0.1:${controlPort}`;
  const stateDir = join(dir, 'state');
  const configFile = join(dir, 'hangar.yaml');
  writeFileSync(configFile, fleetConfig({ ...o, dir, simUrl, controlPort, hostToken, imageDir: image.dir, stateDir }));

  await procs.start('sim', /sim listening/, [
    'sim', '--host', SIM_IP, '--port', String(simPort), '--app-id', '1',
    '--app-key-file', join(dir, 'app.pem'), '--webhook-secret-file', join(dir, WEBHOOK_SECRET_FILE),
    '--webhook-url', `${controlUrl}/webhooks/github`,
  ]);
  const fleet: Fleet = {
    dir, image, simUrl, controlUrl, configFile, stateDir, hostToken, agent: null, control: null,
    async api(method, path, body) {
      const init = { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) };
      const res = await fetch(`${simUrl}${path}`, init);
      if (!res.ok) throw new Error(`sim ${method} ${path}: ${res.status} ${await res.text()}`);
      return (res.status === 204 ? undefined : await res.json()) as never;
    },
    async startAgent() {
      // Not `return` the process: an execa process is a thenable, and returning it would wait for its exit.
      const { proc } = await procs.start('agent', /agent started/, ['agent', '--config', configFile]);
      fleet.agent = proc;
    },
    async startControl() {
      const { proc } = await procs.start('control', /control listening/, ['control', '--config', configFile], CONTROL_NODE_FLAGS);
      fleet.control = proc;
    },
    logs: () => procs.logs(),
    close,
  };
  await fleet.startControl();
  return fleet;
}

/** The fleet's processes, each printing to its own log file in the fleet's folder. */
class Processes {
  private readonly procs: ResultPromise[] = [];
  private readonly files: string[] = [];

  constructor(private readonly dir: string) {}

  /** Starts `hangar ARGS`; resolves (in a box: see startAgent) once its output matches `ready`. */
  async start(name: string, ready: RegExp, args: string[], nodeFlags: readonly string[] = []): Promise<{ proc: ResultPromise }> {
    const file = join(this.dir, `${name}-${this.files.length}.log`);
    this.files.push(file);
    // No forced kill after SIGTERM: a draining agent may take as long as its jobs do.
    const proc = execa('node', [...nodeFlags, CLI, ...args], { reject: false, all: true, buffer: false, forceKillAfterDelay: false });
    proc.all!.pipe(createWriteStream(file));
    this.procs.push(proc);
    for (let i = 0; i < 300; i++) {
      if (ready.test(this.read(file))) return { proc };
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`hangar ${name} did not start:\n${this.read(file).slice(-2000) || '(no output)'}`);
  }

  logs(): string {
    return this.files.map((f) => this.read(f)).join('\n');
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.kill('SIGTERM');
    await Promise.allSettled(this.procs);
  }

  private read(file: string): string {
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }
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
  const role = c.role ?? 'build';
  const pools = role === 'deploy' ? 'build, large, deploy' : 'build, large';
  return `
github: {apiUrl: "${c.simUrl}", appId: 1, privateKeyFile: ${c.dir}/app.pem, webhookSecretFile: ${c.dir}/${WEBHOOK_SECRET_FILE}, writeSpacingMs: 0}
redis: {url: "${c.redisUrl}", prefix: ${c.prefix}}
control: {host: 127.0.0.1, port: ${c.controlPort}}
policy: {repositories: ["acme/*"], cancelRefusedRuns: ${c.cancelRefusedRuns ?? true}}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: large, labels: [self-hosted, linux, x64, large]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
  - {name: minipc, role: ${role}, pools: [${pools}], tokenSha256: ${tokenSha256(c.hostToken)}}
${(c.extraHosts ?? []).map((h) => `  - {name: ${h.name}, role: ${h.role}, pools: [${h.pools.join(', ')}], tokenSha256: ${tokenSha256(h.token)}}`).join('\n')}
agent:
  host: minipc
  role: ${role}
  pools: [${pools}]
  slots: ${c.slots ?? 2}
  controlUrl: http://127.0.0.1:${c.controlPort}
  tokenFile: ${c.dir}/host-token
  stateDir: ${c.stateDir}
  # Until the fleet runs in namespaces of its own, its guests reach the sim on this host's
  # loopback, which isolation forbids: masquerade only here (the agent warns).
  network: {isolation: false}
  vm: {accel: tcg, image: ${c.imageDir}, memoryMiB: ${c.memoryMiB ?? 256}, vcpus: 1, timeoutMinutes: ${c.timeoutMinutes ?? 5}, runAs: ${VM_USER}}
  caps: {cpuQuotaPercent: 180, memoryMaxMiB: 2048, overheadMiB: 256}
log: {level: info}
`;
}
