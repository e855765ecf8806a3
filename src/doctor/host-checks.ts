import { constants } from 'node:fs';
import { access, readFile, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { findV1Hierarchies } from '../caps/v1.js';
import { findV2Mount, v2HasControllers } from '../caps/v2.js';
import { fail, judgeDisk, ok, skip, warn, judgeQemuUser } from '../domain/doctor.js';
import { probeAccelerator, qemuHasSandbox, type ProbeResult } from '../vm/index.js';
import type { Check } from './check.js';
import { imageBytes, imageOf } from './image-check.js';
import { buildImageHint } from '../vm/image/kinds.js';

/**
 * This machine as an agent host: the accelerator (a real probe boot), QEMU, cgroups, systemd,
 * nftables, forwarding and disk. Each reads its facts through ctx.paths and ctx's binaries, so a
 * test points a check at a device or a cgroup root it made rather than faking the answer.
 */

/** QEMU's stderr tail spans lines; a report line is one. */
const oneLine = (r: ProbeResult): ProbeResult => (r.reason ? { ...r, reason: r.reason.replace(/\s*\n\s*/g, ' / ').trim() } : r);

const canUse = (path: string) => access(path, constants.R_OK | constants.W_OK).then(() => true, () => false);

export const kvmCheck: Check = {
  id: 'kvm',
  title: 'KVM present and usable (a probe boot)',
  async run(ctx) {
    const agent = ctx.agent!.agent;
    const want = agent.vm.accel;
    if (want === 'tcg') return skip('agent.vm.accel is tcg: no KVM needed (VMs are slow)');
    const found = imageOf(ctx);
    const image = found && 'image' in found ? found.image : null;
    let kvm: ProbeResult;
    if (!(await canUse(ctx.paths.devKvm))) kvm = { accel: 'kvm', ok: false, reason: `${ctx.paths.devKvm} is missing or not readable and writable` };
    else if (!image) return warn(`${ctx.paths.devKvm} is there, but no image to probe-boot with (see the image check)`, `${buildImageHint()} (agent.vm.image), then run hangar doctor again`);
    // The probe opens /dev/kvm itself; the check above is what a test can point elsewhere.
    else kvm = oneLine(await probeAccelerator({ accel: 'kvm', ...image, qemuBinary: ctx.qemuBinary }));
    if (kvm.ok) return ok(`a KVM guest reached /init in ${kvm.bootMs} ms`);
    const kvmFix = 'enable virtualisation (VT-x/AMD-V, nested for a VM host), load kvm_intel or kvm_amd, and give the agent\'s user /dev/kvm (group kvm)';
    if (want === 'kvm') return fail(`KVM does not work: ${kvm.reason}`, `${kvmFix}, or set agent.vm.accel: auto`);
    if (!image) return fail(`KVM does not work (${kvm.reason}) and there is no image to try TCG with`, `${buildImageHint()} (agent.vm.image)`);
    const tcg = oneLine(await probeAccelerator({ accel: 'tcg', ...image, qemuBinary: ctx.qemuBinary }));
    if (tcg.ok) return warn(`KVM does not work (${kvm.reason}); agent.vm.accel auto falls back to TCG, whose guest reached /init in ${tcg.bootMs} ms (jobs run many times slower)`, kvmFix);
    return fail(`neither KVM (${kvm.reason}) nor TCG (${tcg.reason}) boots the image`, `${kvmFix}; and check the image and QEMU checks`);
  },
};

export const qemuCheck: Check = {
  id: 'qemu',
  title: 'QEMU installed',
  async run(ctx) {
    const r = await execa(ctx.qemuBinary, ['--version'], { reject: false });
    if (r.exitCode !== 0) return fail(`${ctx.qemuBinary} --version did not run: ${String(r.stderr || r.message).split('\n')[0]}`, 'install QEMU: `apt-get install -y qemu-system-x86 qemu-utils`');
    // src/vm/ names no minimum version (microvm with ACPI is all the driver asks): report what is there.
    const version = /version\s+([\d.]+)/i.exec(String(r.stdout))?.[1] ?? String(r.stdout).split('\n')[0];
    const img = await execa('qemu-img', ['--version'], { reject: false });
    if (img.exitCode !== 0) return fail(`QEMU ${version}, but qemu-img does not run (root disk overlays need it)`, 'install it: `apt-get install -y qemu-utils`');
    if (!(await qemuHasSandbox(ctx.qemuBinary))) return warn(`QEMU ${version} has no seccomp: VMs run without -sandbox`, 'install a QEMU built with seccomp (Debian\'s qemu-system-x86 is)');
    return ok(`QEMU ${version}, with seccomp (-sandbox), and qemu-img`);
  },
};

/** The agent always runs as root (requireRoot), so QEMU's user is agent.vm.runAs's, whoever runs doctor. */
export const qemuUserCheck: Check = {
  id: 'qemu-user',
  title: 'QEMU not left as root',
  async run(ctx) {
    if (!ctx.agent) return skip('no agent section');
    return judgeQemuUser(0, ctx.agent.agent.vm.runAs);
  },
};

export const cgroupsCheck: Check = {
  id: 'cgroups',
  title: 'cgroups for the runner slice (v2 delegatable, or v1)',
  async run(ctx) {
    const { mode, slice } = ctx.agent!.agent.caps;
    const root = ctx.paths.cgroupRoot;
    const v2 = mode === 'v1' ? null : await findV2Mount(root);
    if (v2 && (await v2HasControllers(v2))) {
      const writable = await access(`${v2}/cgroup.subtree_control`, constants.W_OK).then(() => true, () => false);
      if (!writable) return fail(`cgroup v2 at ${v2}, but its cgroup.subtree_control is not writable: ${slice} cannot be given controllers`, 'run the agent as root under systemd with units/hangar-agent.service (Delegate=yes)');
      return ok(`cgroup v2 at ${v2} with cpu, memory and pids; ${slice} can be delegated`);
    }
    if (mode === 'v2') return fail(v2 ? `cgroup v2 at ${v2} lacks one of cpu, memory, pids` : `no cgroup v2 under ${root}`, 'set agent.caps.mode: auto (v1 then serves), or boot with systemd.unified_cgroup_hierarchy=1');
    if (await findV1Hierarchies(root)) return ok(`cgroup v1 hierarchies ${root}/{cpu,memory,pids}${v2 ? ` (v2 at ${v2} lacks a controller)` : ''}`);
    return fail(`no usable cgroups under ${root}: neither v2 with cpu, memory and pids nor v1 hierarchies`, 'mount cgroup2 on /sys/fs/cgroup (a systemd host has it), or the v1 cpu, memory and pids hierarchies');
  },
};

export const systemdCheck: Check = {
  id: 'systemd',
  title: 'systemd present',
  async run(ctx) {
    if (await access(ctx.paths.systemdRun).then(() => true, () => false)) return ok('systemd is PID 1: units/ (hangar-agent.service, hangar-runners.slice) apply');
    return warn(`no ${ctx.paths.systemdRun}: systemd is not running, so the shipped units do not apply and the agent builds its slice itself`, 'run the agent under systemd with units/hangar-agent.service, or keep it supervised (restarted) some other way');
  },
};

export const nftCheck: Check = {
  id: 'nftables',
  title: 'nftables usable',
  async run(ctx) {
    const v = await execa(ctx.nftBinary, ['--version'], { reject: false });
    if (v.exitCode !== 0) return fail(`${ctx.nftBinary} --version did not run`, 'install nftables: `apt-get install -y nftables`');
    const list = await execa(ctx.nftBinary, ['list', 'tables'], { reject: false });
    const version = String(v.stdout).trim();
    if (list.exitCode !== 0) return fail(`${version}, but \`nft list tables\` failed: ${String(list.stderr).trim().split('\n')[0]}`, 'run the agent (and hangar doctor) as root, or with CAP_NET_ADMIN');
    return ok(`${version}; tables can be listed`);
  },
};

export const ipForwardCheck: Check = {
  id: 'ip-forward',
  title: 'net.ipv4.ip_forward',
  async run(ctx) {
    const v = (await readFile(ctx.paths.ipForward, 'utf8').catch(() => null))?.trim();
    if (v === '1') return ok('net.ipv4.ip_forward = 1');
    if (v === undefined) return fail(`cannot read ${ctx.paths.ipForward}`, 'check that /proc is mounted and the kernel has IPv4 forwarding');
    // The agent turns it on at start (net/host-network.ts); off now means something else may turn it off again.
    return warn(`net.ipv4.ip_forward = ${v}: the agent turns it on at start, but it is not persisted`, 'persist it: `echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-hangar.conf && sysctl --system`');
  },
};

export const diskCheck: Check = {
  id: 'disk',
  title: 'disk for VM overlays in agent.stateDir',
  async run(ctx) {
    const a = ctx.agent!.agent;
    const found = imageOf(ctx);
    if (!found || !('image' in found)) return skip('no image to size the slots by (see the image check)');
    const at = await nearestExisting(a.stateDir);
    const fs = await statfs(at);
    return judgeDisk({ dir: a.stateDir, freeBytes: fs.bavail * fs.bsize, slots: a.slots, imageBytes: await imageBytes(found.image), marginBytes: ctx.diskMarginBytes });
  },
};

/** stateDir may not exist before the agent's first start: the file system it will be made on. */
async function nearestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = dirname(d)) {
    if (await access(d).then(() => true, () => false)) return d;
    if (d === dirname(d)) return d;
  }
}

