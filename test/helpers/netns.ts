/**
 * Network namespaces a test makes and deletes: `hangar-t-<random>-<role>`, veths created
 * directly between two of them (nothing of the topology exists in the machine's own
 * namespace), processes entered with `nsenter --net=…`, everything undone by `dispose()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const NODE_TOOL = fileURLToPath(new URL('./netns-node.mjs', import.meta.url));

export const sh = (cmd: string, args: string[], input?: string): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined ? { input } : {}) });

export class Namespaces {
  readonly prefix = `hangar-t-${randomBytes(3).toString('hex')}`;
  private readonly made: string[] = [];
  private readonly procs: ChildProcess[] = [];

  /** A new namespace with its loopback up; returns its name. */
  add(role: string): string {
    const name = `${this.prefix}-${role}`;
    sh('ip', ['netns', 'add', name]);
    this.made.push(name);
    this.ip(name, 'link', 'set', 'lo', 'up');
    return name;
  }

  ip(ns: string, ...args: string[]): string {
    return sh('ip', ['-n', ns, ...args]);
  }

  /** Runs a command inside `ns` (nsenter, so /sys is left alone). */
  exec(ns: string, cmd: string, args: string[], input?: string): string {
    return sh('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], input);
  }

  nft(ns: string, text: string): void {
    this.exec(ns, 'nft', ['-f', '-'], text);
  }

  /** A veth between two namespaces, each end up, with optional addresses. */
  link(a: { ns: string; dev: string; addrs?: string[] }, b: { ns: string; dev: string; addrs?: string[] }): void {
    this.ip(a.ns, 'link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns);
    for (const end of [a, b]) {
      for (const addr of end.addrs ?? []) this.ip(end.ns, 'addr', 'add', addr, 'dev', end.dev, ...(addr.includes(':') ? ['nodad'] : []));
      this.ip(end.ns, 'link', 'set', end.dev, 'up');
    }
  }

  sysctl(ns: string, setting: string): void {
    this.exec(ns, 'sysctl', ['-q', '-w', setting]);
  }

  /** Starts the node tool's servers in `ns` and waits for "ready". */
  async serve(ns: string, specs: Array<{ proto: 'tcp' | 'udp'; port: number; host?: string; reply: string }>): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, NODE_TOOL, 'serve', JSON.stringify(specs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(child);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`servers in ${ns} not ready: ${err}`)), 10_000);
      child.stderr!.on('data', (d) => (err += d));
      child.stdout!.on('data', (d) => String(d).includes('ready') && (clearTimeout(timer), resolve()));
      child.on('exit', (code) => (clearTimeout(timer), reject(new Error(`servers in ${ns} exited ${code}: ${err}`))));
    });
  }

  /** Runs the node tool's probe (or burst) in `ns` and returns its parsed output. */
  tool<T>(ns: string, mode: 'probe' | 'burst', spec: unknown): T {
    return JSON.parse(this.exec(ns, process.execPath, [NODE_TOOL, mode, JSON.stringify(spec)])) as T;
  }

  /** Kills the servers and deletes every namespace made; safe to call twice. */
  dispose(): string[] {
    for (const p of this.procs.splice(0)) p.kill('SIGKILL');
    const left: string[] = [];
    for (const name of this.made.splice(0).reverse()) {
      try {
        sh('ip', ['netns', 'del', name]);
      } catch {
        left.push(name);
      }
    }
    return left;
  }

  /** Namespaces of this prefix the machine still has (should be none after dispose). */
  remaining(): string[] {
    return sh('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(this.prefix));
  }
}
