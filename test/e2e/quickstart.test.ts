import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLI, ensureVmUser } from '../../src/main/local-fleet.js';
import { INTERNET, createTopology, type Topology } from '../../src/main/local-topology.js';
import { processesWith } from '../vm/helpers.js';

/**
 * docs/quickstart.md, run as written: every block marked `<!-- quickstart: box -->` (this box)
 * or `<!-- quickstart: github -->` (the machine standing for GitHub, running `hangar sim`) is
 * taken out of the doc and run in order, with a fresh HANGAR_HOME, and the last one must print
 * a green job that ran in a microVM.
 *
 * What the test does instead of the doc, and why:
 * - the box is a network namespace behind a home router, the "github" machine one on the
 *   internet (203.0.113.10): the doc says the simulator must be where the box's guests may reach
 *   it, so not on the box. The variables the doc lets a reader set (HANGAR_HOME, BOX, DNS,
 *   SIM_HOST) are set to the namespaces' facts;
 * - the `install` block (npm pack, npm install -g) is not run: `hangar` on PATH is this
 *   checkout's build, the very code the tarball would hold (ansible's chroot test installs the
 *   tarball itself);
 * - the `packages` block is not run (test/setup.sh installed them): each package it names must
 *   be one setup.sh installs, so the doc cannot ask for what the tests never had;
 * - `hangar image build test` takes Debian's packages from this machine's cache (HANGAR_CACHE,
 *   filled by the lane's set-up): the box's namespace has no route to Debian's archive;
 * - `scp HOST:PATH DEST` copies from the github machine's home folder (both are on this disk);
 * - `real` blocks (real GitHub) cannot run here: they are checked by `bash -n` only.
 */
const DOC = new URL('../../docs/quickstart.md', import.meta.url).pathname;
const SETUP = new URL('../setup.sh', import.meta.url).pathname;

interface Step { where: string; background: boolean; script: string; line: number }

function steps(doc: string): Step[] {
  const out: Step[] = [];
  const re = /<!-- quickstart: ([a-z]+)( background)? -->\n```sh\n([\s\S]*?)```/g;
  for (const m of doc.matchAll(re)) {
    out.push({ where: m[1]!, background: Boolean(m[2]), script: m[3]!, line: doc.slice(0, m.index).split('\n').length });
  }
  return out;
}

let topology: Topology;
let dir: string;
let home: string;
let githubHome: string;
let bin: string;
let envFile: { box: string; github: string };
const background: { name: string; proc: ReturnType<Topology['spawn']>; out: () => string }[] = [];
const seen = new Map<number, string>();
let sampling: NodeJS.Timeout | undefined;
const SLICE = 'hangar-runners.slice';
let sliceIsOurs = false;

function slicesNamed(name: string): string[] {
  try {
    return execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '4', '-type', 'd', '-name', name], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

beforeAll(async () => {
  // The doc's config keeps the default slice: a machine that already has one runs a real agent,
  // whose slice this test must not share or remove.
  expect(slicesNamed(SLICE), `${SLICE} exists on this machine (a real Hangar agent?): the quickstart's default config would share it; run this test elsewhere`).toEqual([]);
  sliceIsOurs = true;
  await ensureVmUser();
  dir = mkdtempSync(join(tmpdir(), 'hangar-quickstart-'));
  home = join(dir, 'box');
  githubHome = join(dir, 'github-home');
  bin = join(dir, 'bin');
  for (const d of [githubHome, bin]) mkdirSync(d, { recursive: true });
  writeFileSync(join(bin, 'hangar'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
  writeFileSync(join(bin, 'scp'), `#!/bin/sh\n# scp HOST:PATH DEST, from the github machine's home folder\nexec cp "${githubHome}/\${1#*:}" "$2"\n`);
  for (const f of ['hangar', 'scp']) chmodSync(join(bin, f), 0o755);
  topology = await createTopology({ hosts: [{ name: 'box' }] });
  const path = `${bin}:${process.env.PATH}`;
  const facts = { BOX: topology.host('box').address, SIM_HOST: INTERNET.sim, PATH: path };
  envFile = { box: join(dir, 'box.env'), github: join(dir, 'github.env') };
  const exports = (vars: Record<string, string>) => Object.entries(vars).map(([k, v]) => `export ${k}='${v}'`).join('\n') + '\n';
  writeFileSync(envFile.box, exports({ ...facts, HANGAR_HOME: home, DNS: INTERNET.dns, HOME: join(dir, 'box-home'), HANGAR_CACHE: process.env.HANGAR_CACHE ?? join(homedir(), '.cache', 'hangar') }));
  writeFileSync(envFile.github, exports({ ...facts, HOME: githubHome }));
}, 120_000);

afterAll(async () => {
  clearInterval(sampling);
  for (const b of background.reverse()) {
    b.proc.kill('SIGTERM');
    await Promise.race([b.proc, new Promise((r) => setTimeout(r, 60_000))]);
  }
  await topology?.dispose();
  // The slice the agent made (none was there before the test; one that was is never touched).
  if (sliceIsOurs) for (const s of slicesNamed(SLICE).reverse()) execFileSync('find', [s, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 180_000);

/** One block in its machine's namespace: the variables earlier blocks exported are there, and what it exports is kept. */
function script(s: Step): string {
  const env = s.where === 'github' ? envFile.github : envFile.box;
  if (!s.background) return `set -euo pipefail\n. '${env}'\n${s.script}\nexport -p > '${env}.next' && mv '${env}.next' '${env}'\n`;
  // A long-running block's last command replaces the shell (exec), so a SIGTERM reaches it as a terminal's Ctrl-C would.
  const lines = s.script.trimEnd().split('\n');
  let first = lines.length - 1;
  while (first > 0 && lines[first - 1]!.endsWith('\\')) first--;
  lines[first] = `exec ${lines[first]}`;
  return `set -euo pipefail\n. '${env}'\n${lines.join('\n')}\n`;
}
const netnsOf = (s: Step) => (s.where === 'github' ? topology.netns.internet : topology.host('box').netns);

describe('docs/quickstart.md', () => {
  test('its packages are the ones setup.sh installs, and its real-GitHub blocks parse', () => {
    const all = steps(readFileSync(DOC, 'utf8'));
    const setup = readFileSync(SETUP, 'utf8');
    const installed = /packages=\(([^)]*)\)/.exec(setup)![1]!.split(/\s+/).filter((p) => /^[a-z]/.test(p));
    const packages = all.filter((s) => s.where === 'packages').flatMap((s) => s.script.replace(/.*install -y/, '').trim().split(/\s+/));
    expect(packages.length).toBeGreaterThan(3);
    expect(packages.filter((p) => !installed.includes(p))).toEqual([]);
    const real = all.filter((s) => s.where === 'real');
    expect(real.length).toBeGreaterThanOrEqual(2);
    for (const s of real) execFileSync('bash', ['-n'], { input: s.script });
  });

  test('its commands, run in order on a fresh folder, end with a green job in a microVM', async () => {
    const all = steps(readFileSync(DOC, 'utf8')).filter((s) => s.where === 'box' || s.where === 'github');
    expect(all.filter((s) => s.background).map((s) => s.where)).toEqual(['github', 'box']);
    let last = '';
    for (const s of all) {
      if (s.background) {
        const proc = topology.spawn(netnsOf(s), 'bash', ['-c', script(s)]);
        let out = '';
        proc.all!.on('data', (d: Buffer) => (out += d.toString()));
        background.push({ name: `line ${s.line}`, proc, out: () => out });
        // Ready: the simulator and `hangar up` each say so in one log line.
        await expect
          .poll(() => {
            if (proc.exitCode !== null) throw new Error(`the block at line ${s.line} exited ${proc.exitCode}:\n${out.slice(-3000)}`);
            return /sim listening|up started/.test(out);
          }, { timeout: 180_000, interval: 250 })
          .toBe(true);
        if (s.where === 'box') {
          sampling = setInterval(() => {
            void processesWith(home).then(async (pids) => {
              for (const pid of pids) if (!seen.has(pid)) seen.set(pid, (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' '));
            });
          }, 200);
        }
        continue;
      }
      const r = await topology.exec(netnsOf(s), 'bash', ['-c', script(s)], { reject: false, timeoutMs: 600_000 });
      const logs = background.map((b) => `--- ${b.name} ---\n${b.out().slice(-3000)}`).join('\n');
      expect(r.exitCode, `the block at docs/quickstart.md:${s.line} failed:\n${r.stdout}\n${r.stderr}\n${logs}`).toBe(0);
      last = r.stdout;
    }
    // The doc's last block printed the job's conclusion.
    expect(last.trim()).toBe('"conclusion":"success"');
    // The job ran in a microVM this box started: QEMU, with its files in the box's state folder.
    expect([...seen.values()].filter((c) => c.includes('qemu-system'))).not.toEqual([]);
    // Fresh folder: the doc wrote the config, the token and the credentials, secrets 0600.
    for (const f of ['host-token', 'github-app-key.pem', 'webhook-secret']) expect(statSync(join(home, 'credentials', f)).mode & 0o077).toBe(0);
    expect(existsSync(join(home, 'hangar.yaml'))).toBe(true);

    // Ctrl-C to `hangar up`, as the doc says: it drains, stops, and leaves nothing of the box running.
    const up = background.find((b) => b.out().includes('up started'))!;
    up.proc.kill('SIGTERM');
    const exit = await up.proc;
    expect(exit.exitCode, up.out().slice(-2000)).toBe(0);
    background.splice(background.indexOf(up), 1);
    clearInterval(sampling);
    await expect.poll(() => processesWith(home), { timeout: 20_000 }).toEqual([]);
  }, 900_000);
});
