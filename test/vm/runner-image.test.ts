import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runImageBuild } from '../../src/main/image.js';
import { DriverError } from '../../src/vm/errors.js';
import { GUEST_MODULES } from '../../src/vm/image/build.js';
import { defaultCacheDir, exists } from '../../src/vm/image/debs.js';
import { DEFAULT_MIRROR, DEBIAN_SUITE, baseKey } from '../../src/vm/image/debootstrap.js';
import {
  RUNNER_PACKAGES, buildRunnerImage, digestFile, inspectRunnerTarball, runnerImageInputs, type RunnerImageManifest,
} from '../../src/vm/image/runner.js';
import { createQemuMicrovmDriver } from '../../src/vm/qemu-microvm/driver.js';
import { processesWith, sleep } from './helpers.js';

/**
 * The runner (production) image, built with a FAKE actions-runner tarball (the real one cannot
 * be downloaded here) whose run.sh reports what it was given, then booted under TCG: initramfs
 * → /dev/vda → systemd → hangar-runner.service → run.sh once → power off.
 *
 * The image is kept in the cache (`<cache>/runner-image-test`) and rebuilt only when its inputs
 * change; the debootstrapped base is cached too (`<cache>/runner-base`). Cold: ~100 s.
 */
const mirror = process.env.HANGAR_DEBIAN_MIRROR ?? DEFAULT_MIRROR;
const cache = defaultCacheDir();
const imageDir = process.env.HANGAR_TEST_RUNNER_IMAGE_DIR ?? join(cache, 'runner-image-test');

/** Skipped only when the base must be debootstrapped and Debian's archive cannot be reached. */
async function archiveProblem(): Promise<string | null> {
  if (await exists(join(cache, 'runner-base', `${DEBIAN_SUITE}-minbase-${baseKey(RUNNER_PACKAGES, mirror)}.tar`))) return null;
  try {
    const r = await fetch(`${mirror}/dists/${DEBIAN_SUITE}/Release`, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
    return r.ok ? null : `${mirror} answered ${r.status}`;
  } catch (err) {
    return `${mirror} unreachable: ${(err as Error).message}`;
  }
}
const problem = await archiveProblem();
if (problem) {
  process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING the runner-image test: debootstrap cannot reach Debian's archive\n!! (${problem}).\n!! The production guest image is NOT tested on this machine.\n${'!'.repeat(78)}\n\n`);
}

const GUEST_IP = '10.213.79.2';
const HOST_IP = '10.213.79.1';
const HTTP_PORT = 8080;

/**
 * What the fake run.sh prints: who it runs as, how many arguments it got, the sha256 of the JIT
 * config it received (from ACTIONS_RUNNER_INPUT_JITCONFIG, as the real runner reads it, or from
 * --jitconfig), how many processes carry the config in argv, the network it sees, and whether
 * sudo works. It never prints the config.
 */
const FAKE_RUN_SH = `#!/bin/bash
# A stand-in for actions/runner's run.sh (Hangar's runner-image test).
cfg=\${ACTIONS_RUNNER_INPUT_JITCONFIG:-}
if [ "\${1:-}" = --jitconfig ]; then cfg=\$2; fi
echo "FAKE-RUNNER-USER $(id -un) $(id -u) $(pwd)"
echo "FAKE-RUNNER-ARGC $#"
echo "FAKE-RUNNER-GOT-CONFIG $(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)"
# grep -f, not grep -- "$cfg": the pattern must not be in grep's own argv.
pat=$(mktemp); printf '%s' "$cfg" > "$pat"
echo "FAKE-RUNNER-ARGV-HITS $(grep -lsF -f "$pat" /proc/[0-9]*/cmdline | wc -l)"
rm -f "$pat"
# The config came from the metadata endpoint, once: no fw_cfg file of it, and asking again is refused.
if [ -e /sys/firmware/qemu_fw_cfg/by_name/opt/hangar/jit ]; then echo "FAKE-RUNNER-FWCFG-JIT present"; else echo "FAKE-RUNNER-FWCFG-JIT absent"; fi
echo "FAKE-RUNNER-REFETCH $(curl -s -o /dev/null -w '%{http_code}' -m 10 "$HANGAR_METADATA_URL/v1/jit")"
nic=$(ip -4 -o addr show scope global | awk '{print $2; exit}')
echo "FAKE-RUNNER-NET $(ip -4 -o addr show scope global | awk '{print $4}') mtu=$(cat /sys/class/net/$nic/mtu 2>/dev/null)"
gw=$(ip route show default | awk '{print $3}')
echo "FAKE-RUNNER-GW $gw"
echo "FAKE-RUNNER-DNS $(awk '/^nameserver/{print $2}' /etc/resolv.conf | paste -sd,)"
echo "FAKE-RUNNER-HTTP $(curl -sS -m 10 "http://$gw:${HTTP_PORT}/hello" 2>&1)"
echo "FAKE-RUNNER-SUDO $(sudo -n id -u 2>&1)"
echo "FAKE-RUNNER-DATE $(date -u +%Y-%m-%dT%H:%M:%SZ)"
# A real runner runs its job-started hook before the first step, with bash -e and the default
# GITHUB_* variables: so does this stand-in, with the hook the image carries.
echo "FAKE-RUNNER-HOOK $ACTIONS_RUNNER_HOOK_JOB_STARTED"
GITHUB_REPOSITORY=acme/app GITHUB_RUN_ID=77 GITHUB_RUN_ATTEMPT=2 GITHUB_JOB=build RUNNER_NAME=hangar-test-1-1 \
  bash -e "$ACTIONS_RUNNER_HOOK_JOB_STARTED"
echo "FAKE-RUNNER-HOOK-EXIT $?"
exit 0
`;

/** A tarball with the real one's layout, made byte-for-byte the same every run (cache key). */
async function makeFakeTarball(dir: string, members: Record<string, string>): Promise<string> {
  const src = join(dir, 'src');
  for (const [path, text] of Object.entries(members)) {
    await mkdir(join(src, path, '..'), { recursive: true });
    await writeFile(join(src, path), text);
    await chmod(join(src, path), 0o755);
  }
  const file = join(dir, 'actions-runner-linux-x64-0.0.0-fake.tar.gz');
  await execa('bash', ['-c', 'set -o pipefail; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - . | gzip -n > "$2"',
    'tar', src, file]);
  return file;
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

describe.skipIf(problem !== null).sequential('hangar image build runner', () => {
  let work: string;
  let tarball: string;
  let manifest: RunnerImageManifest;
  let buildMs = 0;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hangar-runner-image-'));
    tarball = await makeFakeTarball(join(work, 'fake'), {
      'run.sh': FAKE_RUN_SH,
      'config.sh': '#!/bin/sh\necho "fake config.sh: not used with a JIT config" >&2\nexit 1\n',
      'bin/Runner.Listener': '#!/bin/sh\necho "fake Runner.Listener" >&2\nexit 1\n',
    });
    const onDisk = await readFile(join(imageDir, 'manifest.json'), 'utf8').then((t) => JSON.parse(t) as RunnerImageManifest, () => null);
    const started = Date.now();
    if (onDisk && onDisk.inputs === (await runnerImageInputs({ runnerTarball: tarball })) &&
      (await stat(join(imageDir, 'rootfs.img')).then((s) => s.size === onDisk.files['rootfs.img'].bytes, () => false))) {
      manifest = onDisk;
    } else {
      manifest = await runImageBuild({ kind: 'runner', out: imageDir, runnerTarball: tarball });
      buildMs = Date.now() - started;
      process.stderr.write(`runner image built in ${buildMs} ms\n`);
    }
  }, 900_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('writes vmlinux, initramfs.cpio, rootfs.img and a manifest that describes them', async () => {
    const m = JSON.parse(await readFile(join(imageDir, 'manifest.json'), 'utf8')) as RunnerImageManifest;
    expect(m).toEqual(manifest);
    expect(m.kind).toBe('runner');
    for (const name of ['vmlinux', 'initramfs.cpio'] as const) {
      const data = await readFile(join(imageDir, name));
      expect(m.files[name], name).toEqual({ sha256: sha256(data), bytes: data.length });
    }
    expect((await stat(join(imageDir, 'rootfs.img'))).size).toBe(m.files['rootfs.img'].bytes);
    expect(m.kernel.release).toMatch(/-cloud-amd64$/);
    expect(m.modules).toEqual([...GUEST_MODULES]);
    expect(m.root.include).toEqual([...RUNNER_PACKAGES].sort());
    for (const p of ['systemd', 'systemd-sysv', 'libicu72', 'libssl3', 'libkrb5-3', 'zlib1g', 'git', 'curl', 'sudo', 'ca-certificates']) {
      expect(m.root.packages[p], p).toMatch(/\S/);
    }
    expect(m.runner).toMatchObject({ user: 'runner', uid: 1001, dir: '/home/runner/actions-runner', sha256: (await digestFile(tarball)).sha256 });
    expect(m.root.sizeMiB - m.root.usedMiB).toBeGreaterThanOrEqual(2048);
  });

  test('the root file system holds the runner (owned by runner), the unit, and no build-host leftovers', async () => {
    const img = join(imageDir, 'rootfs.img');
    const debugfs = async (cmd: string) => String((await execa('debugfs', ['-R', cmd, img], { stderr: 'ignore', stripFinalNewline: false })).stdout);
    for (const f of ['run.sh', 'config.sh', 'bin/Runner.Listener', 'bin']) {
      const st = await debugfs(`stat /home/runner/actions-runner/${f}`);
      expect(st, f).toMatch(/Mode:\s+0755/);
      expect(st, f).toMatch(/User:\s+1001\s+Group:\s+1001\s/);
    }
    expect(await debugfs('cat /home/runner/actions-runner/run.sh')).toBe(FAKE_RUN_SH);
    const unit = await debugfs('cat /etc/systemd/system/hangar-runner.service');
    expect(unit).toBe(await readFile('src/vm/image/runner/hangar-runner.service', 'utf8'));
    expect(await debugfs('cat /usr/local/lib/hangar/net.sh')).toBe(await readFile('src/vm/image/guest-net.sh', 'utf8'));
    expect(await debugfs('cat /usr/local/lib/hangar/job-started.sh')).toBe(await readFile('src/vm/image/job-started.sh', 'utf8'));
    expect(await debugfs('stat /usr/local/lib/hangar/job-started.sh')).toMatch(/Mode:\s+0755/);
    expect(await debugfs('stat /etc/systemd/system/multi-user.target.wants/hangar-runner.service')).toMatch(/Fast link dest: "\/etc\/systemd\/system\/hangar-runner.service"/);
    expect(await debugfs('cat /etc/resolv.conf')).toBe('');
    expect(await debugfs('cat /etc/machine-id')).toBe('');
    expect(await debugfs('cat /etc/sudoers.d/runner')).toBe('runner ALL=(ALL:ALL) NOPASSWD:ALL\n');
    expect(await debugfs(`ls /lib/modules/${manifest.kernel.release}`)).toMatch(/modules\.dep/);
  });

  test('refuses a tarball that is not the actions runner, naming what is missing', async () => {
    const bad = await makeFakeTarball(join(work, 'bad'), { 'config.sh': '#!/bin/sh\n', 'bin/Other': '#!/bin/sh\n' });
    const err = await inspectRunnerTarball(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).code).toBe('bad-spec');
    expect((err as Error).message).toMatch(/no run\.sh and no bin\/Runner\.Listener/);
    const notTar = join(work, 'not-a-tarball.tar.gz');
    await writeFile(notTar, 'hello');
    await expect(buildRunnerImage({ out: join(work, 'never'), runnerTarball: notTar })).rejects.toThrow(/is not a tar archive/);
    await expect(runImageBuild({ kind: 'runner', out: join(work, 'never') })).rejects.toThrow(/--runner-tarball/);
    await expect(runImageBuild({ kind: 'runner', out: join(work, 'never'), runnerTarball: join(work, 'nope.tar.gz') }))
      .rejects.toThrow(/does not exist/);
    expect(await exists(join(work, 'never'))).toBe(false);
  });

  test('boots: systemd runs the runner once with the JIT config fetched after boot, never in argv or on the console, then powers off', async () => {
    const tap = `hgr${randomUUID().slice(0, 8)}`;
    const stateDir = join(work, 'state');
    const img = join(imageDir, 'rootfs.img');
    const before = { ...(await digestFile(img)), mtimeMs: (await stat(img)).mtimeMs };
    // A JIT config shaped like GitHub's: base64 of JSON whose values are base64 files.
    const secret = randomBytes(24).toString('hex');
    const inner = { '.runner': Buffer.from(`{"AgentId":7,"AgentName":"hangar-test"}`).toString('base64'),
      '.credentials': Buffer.from(`{"Scheme":"OAuth","Data":{"clientId":"${secret}"}}`).toString('base64') };
    const jit = Buffer.from(JSON.stringify(inner)).toString('base64');

    let server: Server | undefined;
    const d = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
    try {
      await execa('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      await execa('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', tap]);
      await execa('ip', ['link', 'set', tap, 'up']);
      // The host side stands in for the agent's metadata endpoint too: the JIT config (once,
      // then 410 Gone, as the agent's) and the hook's question.
      let gateBody = '';
      let jitAsks = 0;
      server = createServer((req, res) => {
        if (req.method === 'GET' && req.url === '/v1/jit') return void (jitAsks++ === 0 ? res.writeHead(200).end(jit) : res.writeHead(410).end('gone\n'));
        if (req.method === 'POST' && req.url === '/v1/job-started') {
          req.on('data', (c) => (gateBody += c));
          req.on('end', () => res.writeHead(200).end('allow\n'));
          return;
        }
        res.writeHead(200).end(req.url === '/hello' ? 'hello-from-the-host' : 'what');
      });
      await new Promise<void>((r) => server!.listen(HTTP_PORT, HOST_IP, r));

      const started = Date.now();
      const h = await d.create({
        id: 'runner-image-1', kernel: join(imageDir, 'vmlinux'), initrd: join(imageDir, 'initramfs.cpio'), rootDisk: img,
        memoryMiB: 1024, vcpus: 1, timeoutMs: 240_000,
        network: { tap, mac: '52:54:00:aa:bb:79' },
        guestFiles: { net: `IP=${GUEST_IP}/30 GW=${HOST_IP} DNS=${HOST_IP},192.0.2.53 MTU=1400 META=http://${HOST_IP}:${HTTP_PORT}\n` },
      });
      let startMs = 0;
      const watch = (async () => {
        while (!startMs) {
          if ((await readFile(h.consoleLog, 'utf8').catch(() => '')).includes('HANGAR-RUNNER-START')) startMs = Date.now() - started;
          else await sleep(200);
        }
      })();
      const exit = await d.wait(h.id);
      const offMs = Date.now() - started;
      startMs ||= -1;
      await watch;
      const text = (await readFile(h.consoleLog, 'utf8')).replace(/\r\n/g, '\n'); // the serial tty writes CRLF
      process.stderr.write(`runner image boot: HANGAR-RUNNER-START after ${startMs} ms, powered off after ${offMs} ms\n`);
      if (process.env.HANGAR_DEBUG_CONSOLE) process.stderr.write(text);

      expect(exit, text.slice(-3000)).toEqual({ kind: 'exited', code: 0, signal: null });
      expect(offMs).toBeLessThan(180_000);
      expect(text).toMatch(/HANGAR-GUEST-INIT[\s\S]*HANGAR-RUNNER-START[\s\S]*FAKE-RUNNER-GOT-CONFIG[\s\S]*HANGAR-RUNNER-EXIT 0/);
      expect(text).toContain(`FAKE-RUNNER-GOT-CONFIG ${sha256(jit)}\n`);
      expect(text).toContain('FAKE-RUNNER-USER runner 1001 /home/runner/actions-runner\n');
      expect(text).toContain('FAKE-RUNNER-ARGC 0\n');
      expect(text).toContain('FAKE-RUNNER-ARGV-HITS 0\n');
      expect(text).toContain('FAKE-RUNNER-FWCFG-JIT absent\n');
      expect(text).toContain('FAKE-RUNNER-REFETCH 410\n');
      expect(jitAsks).toBe(2);
      expect(text).toContain(`FAKE-RUNNER-NET ${GUEST_IP}/30 mtu=1400\n`);
      expect(text).toContain(`FAKE-RUNNER-GW ${HOST_IP}\n`);
      expect(text).toContain(`FAKE-RUNNER-DNS ${HOST_IP},192.0.2.53\n`);
      expect(text).toContain('FAKE-RUNNER-HTTP hello-from-the-host\n');
      expect(text).toContain('FAKE-RUNNER-SUDO 0\n');
      // The gate: the runner's environment names Hangar's hook, which asked the metadata endpoint
      // (curl, as the runner user) with the job's hints and passed on "allow".
      expect(text).toContain('FAKE-RUNNER-HOOK /usr/local/lib/hangar/job-started.sh\n');
      expect(text).toContain('Hangar: this job may run on this runner\n');
      expect(text).toContain('FAKE-RUNNER-HOOK-EXIT 0\n');
      expect(gateBody).toContain('repository=acme/app\nrun_id=77\nrun_attempt=2\n');
      expect(text).toMatch(/reboot: Power down/); // systemd's poweroff, not a crash or the time cap
      // The secret, in any form, never reaches the console.
      for (const s of [jit, secret, inner['.credentials'], inner['.runner']]) expect(text).not.toContain(s);

      await d.destroy(h.id);
      expect(await processesWith(stateDir)).toEqual([]);
      // The VM wrote only to its own overlay (gone with the VM): the base image is untouched.
      const after = { ...(await digestFile(img)), mtimeMs: (await stat(img)).mtimeMs };
      expect(after).toEqual(before);
    } finally {
      for (const h of await d.list()) await d.destroy(h.id);
      server?.close();
      await execa('ip', ['link', 'del', tap], { reject: false });
    }
  }, 300_000);
});
