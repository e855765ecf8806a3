// Figures and the text report of bench/egress, from what the measuring child wrote.
import { summary } from '../pickup-lib/stats.mjs';
import { PRIVATE_IP } from './topology.mjs';

/** The ratio (b)/(a) at p50 that passes. */
export const TARGET_RATIO = 0.95;
const MiB = 2 ** 20;

/** MiB/s of a set of server records: all bytes over all transfer time (request head → client's FIN). */
const serverMiBs = (recs) => {
  const ms = recs.reduce((n, r) => n + (r.tEnd - r.tReq), 0);
  return recs.length ? recs.reduce((n, r) => n + r.bytes, 0) / MiB / (ms / 1000) : NaN;
};

function perMiB(stats) {
  const ok = stats.filter((x) => x && x.txBytes > 0);
  const mib = ok.reduce((n, x) => n + x.txBytes, 0) / MiB;
  return { toGuest: ok.reduce((n, x) => n + x.txPackets, 0) / mib, fromGuest: ok.reduce((n, x) => n + x.rxPackets, 0) / mib };
}

/** Checks one step; returns its problems (a download lost, the isolation check wrong). */
function problems(s, cfg) {
  const p = [];
  const gets = s.guest.gets;
  if (s.exit.kind !== 'exited') p.push(`${s.tag}: VM ${s.exit.kind}`);
  if (!s.guest.done) p.push(`${s.tag}: the guest script did not finish (no EGRESS-DONE)`);
  if (gets.length !== cfg.downloads || gets.some((g) => g.rc !== 0)) p.push(`${s.tag}: guest downloads ${gets.map((g) => `#${g.i} rc=${g.rc}`).join(' ') || 'none'}`);
  if (s.server.length !== cfg.downloads || s.server.some((r) => !r.complete)) p.push(`${s.tag}: server saw ${s.server.length}/${cfg.downloads} transfers, complete ${s.server.filter((r) => r.complete).length}`);
  if (s.veth && (s.veth.server.length !== cfg.veth.downloads || s.veth.client.some((c) => !c.ok))) p.push(`${s.tag}: veth guest downloads incomplete`);
  return p;
}

/** The isolation check of one step: in (a) the private address answers, in (b) it is refused, counted and logged. */
function isolationOf(s) {
  const pr = s.guest.private;
  const reached = pr?.rc === 0 && pr.body === 'private-reached' && s.privateReachedServer;
  if (s.mode === 'a') return { ok: reached, reached, ms: pr?.ms ?? NaN };
  const logged = (s.denied ?? []).some((d) => d.daddr === PRIVATE_IP && d.dport === 80 && d.proto === 'tcp');
  const counted = (s.counters?.drop_private ?? 0) >= 1;
  const refused = pr !== null && pr.rc !== 0 && !s.privateReachedServer && /refused/i.test(pr.err);
  return { ok: refused && logged && counted, reached, refused, logged, counted, ms: pr?.ms ?? NaN, err: pr?.err ?? '', counters: s.counters };
}

export function figures(result, cfg) {
  const measured = result.steps.filter((s) => s.measured);
  const failures = result.steps.flatMap((s) => problems(s, cfg));
  const per = (mode) => {
    const steps = measured.filter((s) => s.mode === mode);
    const vm = steps.map((s) => serverMiBs(s.server));
    const guest = steps.map((s) => {
      const ok = s.guest.gets.filter((g) => g.rc === 0);
      return (ok.length * cfg.mib) / ok.reduce((n, g) => n + (g.t1 - g.t0), 0);
    });
    // Per MiB of QEMU's own CPU: the throughput over the share of a core QEMU got. Other work on
    // the host takes that share away from some steps and not others; this figure is steadier.
    const eff = steps.map((s, i) => (s.cpu?.all > 0 ? vm[i] / s.cpu.all : NaN));
    return {
      steps: steps.length,
      vm: summary(vm),
      eff: summary(eff),
      effByRound: Object.fromEntries(steps.map((s, i) => [s.label, eff[i]])),
      vmByRound: Object.fromEntries(steps.map((s, i) => [s.label, vm[i]])),
      perDownload: summary(steps.flatMap((s) => s.server.map((r) => serverMiBs([r])))),
      guest: summary(guest),
      veth: summary(steps.map((s) => (s.veth ? serverMiBs(s.veth.server) : NaN))),
      vethByRound: Object.fromEntries(steps.map((s) => [s.label, s.veth ? serverMiBs(s.veth.server) : NaN])),
      vcpu: summary(steps.map((s) => (s.cpu ? s.cpu.vcpu * 100 : NaN))),
      qemuMain: summary(steps.map((s) => (s.cpu ? s.cpu.main * 100 : NaN))),
      qemuAll: summary(steps.map((s) => (s.cpu ? s.cpu.all * 100 : NaN))),
      bootS: summary(steps.map((s) => s.bootToReadyS)),
      // What the rules ran on: packets per MiB delivered, to the guest (data) and from it (ACKs).
      vmPktPerMiB: perMiB(steps.map((s) => s.tapStats)),
      vethPktPerMiB: perMiB(steps.map((s) => s.veth?.linkStats)),
      isolation: steps.map(isolationOf),
      // The guest's time for its downloads over the server's for the same: ≥ 1 when its clock is
      // right (it also counts wget's start and the connect), below when the guest's clock ran slow.
      guestOverServer: summary(steps.map((s) => s.guest.gets.reduce((n, g) => n + (g.t1 - g.t0), 0) / (s.server.reduce((n, r) => n + (r.tEnd - r.tReq), 0) / 1000))),
      clocks: steps.map((s) => `${s.guest.clocksource ?? '?'}${s.guest.tscUnstable ? ' (TSC marked unstable)' : ''}`),
    };
  };
  const a = per('a');
  const b = per('b');
  const ratio = b.vm.p50 / a.vm.p50;
  const paired = summary(Object.keys(a.vmByRound).map((r) => b.vmByRound[r] / a.vmByRound[r]));
  const effRatio = b.eff.p50 / a.eff.p50;
  const effPaired = summary(Object.keys(a.effByRound).map((r) => b.effByRound[r] / a.effByRound[r]));
  const vethRatio = b.veth.p50 / a.veth.p50;
  const vethPaired = summary(Object.keys(a.vethByRound).map((r) => b.vethByRound[r] / a.vethByRound[r]));
  const isoOk = a.isolation.length > 0 && b.isolation.length > 0 && [...a.isolation, ...b.isolation].every((x) => x.ok);
  // TCG, not the rules, sets the pace when the same path and table carry several times as much
  // without QEMU (or, with no veth guest to compare, when QEMU keeps a whole core busy).
  const tcgBound = a.veth.n > 0 ? a.veth.p50 >= 2 * a.vm.p50 : a.qemuAll.p50 >= 85;
  return { a, b, ratio, paired, effRatio, effPaired, vethRatio, vethPaired, pass: ratio >= TARGET_RATIO, isoOk, tcgBound, failures };
}

/** `hangar agent, hangar control, qemu-system-x86_64 ×2, …`: other Hangar/vitest/QEMU processes, by kind. */
function kinds(procs) {
  return counted(procs.map(({ cmd }) => {
    const sub = /cli\.js (\w+)/.exec(cmd)?.[1];
    return sub ? `hangar ${sub}` : /vitest/.test(cmd) ? 'vitest' : cmd.split(' ')[0].split('/').pop();
  }));
}

/** `tsc ×11, jiffies` */
function counted(xs) {
  const n = new Map();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].map(([k, c]) => (c > 1 ? `${k} ×${c}` : k)).join(', ');
}

const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f0 = (v) => (Number.isFinite(v) ? v.toFixed(0) : '-');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const head = (title) => `  ${pad(title, 62)} ${['p50', 'p90', 'min', 'max'].map((x) => lpad(x, 7)).join(' ')}`;
const row = (name, s, fmt = f1) => `  ${pad(name, 62)} ${[s.p50, s.p90, s.min, s.max].map((v) => lpad(fmt(v), 7)).join(' ')}`;

function headerLines(cfg, env) {
  const m = env.machine;
  return [
    '',
    `bench:egress — ${m.nproc} × ${m.cpu}, node ${m.node}, ${m.qemu}, kernel ${m.kernel}, ${m.nft}`,
    `  ${cfg.rounds} rounds × 2 modes, interleaved A B, B A, …; ${cfg.warmup} warm-up of each first; per VM ${cfg.downloads} downloads of ${cfg.mib} MiB;` +
      ` guest ${cfg.memoryMiB} MiB, ${cfg.vcpus} vCPU, TCG, the test image's busybox wget`,
    '  (a) masquerade only (createHostNetwork().ensureEgress → renderEgressRuleset, what the agent applies today)',
    '  (b) the isolation table (createIsolation().apply, build host, internet egress) with the VM added by addVm',
    `  load (1/5/15 min) at start ${env.loadAtStart}, at end ${env.loadAtEnd}; 1-min load while measuring: ${summary(env.loads).min}–${summary(env.loads).max}`,
    `  host CPU over the measured part (all cores): busy ${f0(env.cpu.busyPct)} %, steal ${f0(env.cpu.stealPct)} %, idle ${f0(env.cpu.idlePct)} %` +
      (env.others.length ? `; also running: ${kinds(env.others)}` : ''),
  ];
}

function throughputLines(f) {
  const veth = f.a.veth.n > 0;
  return [
    '',
    head('MiB/s (higher is better; min is the slow tail)'),
    row('(a) VM, masquerade only — per round (server side)', f.a.vm),
    row('(b) VM, isolation table — per round (server side)', f.b.vm),
    row('(a) VM — per download', f.a.perDownload),
    row('(b) VM — per download', f.b.perDownload),
    row("(a) VM — MiB per QEMU CPU-second (÷ QEMU's core share)", f.a.eff),
    row('(b) VM — MiB per QEMU CPU-second', f.b.eff),
    row("(a) VM — per round, the guest's own clock (cross-check)", f.a.guest),
    row("(b) VM — per round, the guest's own clock (cross-check)", f.b.guest),
    ...(veth ? [row('(a) veth guest, no QEMU, masquerade only', f.a.veth), row('(b) veth guest, no QEMU, isolation table', f.b.veth)] : []),
    `  ratio (b)/(a) at p50: ${f.ratio.toFixed(3)}  (target ≥ ${TARGET_RATIO}): ${f.pass ? 'PASS' : 'FAIL'}`,
    `  paired (each round's b / its a): median ${f.paired.p50.toFixed(3)}, min ${f.paired.min.toFixed(3)}, max ${f.paired.max.toFixed(3)}`,
    `  per QEMU CPU-second, (b)/(a): at p50 ${f.effRatio.toFixed(3)}, paired median ${f.effPaired.p50.toFixed(3)} (min ${f.effPaired.min.toFixed(3)}, max ${f.effPaired.max.toFixed(3)}):` +
      ' steadier when other work takes QEMU\'s core; blind to rule costs paid outside QEMU\'s threads',
    `  guest's clock / server's for the same downloads, per VM: min ${f.a.guestOverServer.min.toFixed(2)} (a), ${f.b.guestOverServer.min.toFixed(2)} (b); ` +
      `max ${f.a.guestOverServer.max.toFixed(2)}, ${f.b.guestOverServer.max.toFixed(2)} (below 1: that guest's clock ran slow); guest clocksources: ${counted([...f.a.clocks, ...f.b.clocks])}`,
    ...(veth ? [`  veth guest ratio (b)/(a) at p50: ${f.vethRatio.toFixed(3)}, paired median ${f.vethPaired.p50.toFixed(3)} (min ${f.vethPaired.min.toFixed(3)}, max ${f.vethPaired.max.toFixed(3)}): ` +
      "the same rules without QEMU; node's own copying and where the scheduler puts the server and the client set that pace"] : []),
  ];
}

function cpuLines(f) {
  const pk = (x) => `${f0(x.toGuest)} to the guest, ${f0(x.fromGuest)} from it`;
  return [
    '',
    head('during the transfers (% of one core)'),
    row("(a) QEMU vCPU thread (TCG: the guest's kernel and wget)", f.a.vcpu, f0),
    row('(b) QEMU vCPU thread', f.b.vcpu, f0),
    row('(a) QEMU main thread (I/O loop: tap, virtio-net backend)', f.a.qemuMain, f0),
    row('(b) QEMU main thread', f.b.qemuMain, f0),
    row('(a) QEMU, all threads', f.a.qemuAll, f0),
    row('(b) QEMU, all threads', f.b.qemuAll, f0),
    `  packets through the rules per MiB (offloads on: a packet may be a 64 KiB GSO segment): VM ${pk(f.b.vmPktPerMiB)}` +
      (f.b.veth.n > 0 ? `; veth guest ${pk(f.b.vethPktPerMiB)}` : ''),
  ];
}

function isolationLines(f) {
  const isoB = f.b.isolation;
  const internet = summary(isoB.map((x) => x.counters?.accept_internet ?? 0));
  return [
    '',
    `  isolation check: GET http://${PRIVATE_IP}/private from the guest (a private address, answered when nothing blocks it):`,
    `    (a) masquerade only: answered in ${f.a.isolation.filter((x) => x.reached).length}/${f.a.isolation.length} VMs`,
    `    (b) isolation table: refused in ${isoB.filter((x) => x.refused).length}/${isoB.length} VMs (guest's clock: max ${f0(summary(isoB.map((x) => x.ms)).max)} ms, ` +
      `"${isoB[0]?.err ?? ''}"), drop_private counted in ${isoB.filter((x) => x.counted).length}, in the egress log in ${isoB.filter((x) => x.logged).length}; ` +
      `accept_internet (one per new connection) +${internet.min}–${internet.max} per VM`,
    `    ${f.isoOk ? 'OK: isolation was on in (b) and off in (a)' : 'ISOLATION CHECK FAILED: the figure does not compare the rules with masquerade (see above)'}`,
  ];
}

function noteLines(f, env) {
  const out = [''];
  const qemu = `QEMU kept ${f0(f.a.qemuAll.p50)} % of a core busy (vCPU ${f0(f.a.vcpu.p50)} %, I/O loop ${f0(f.a.qemuMain.p50)} %)`;
  const veth = f.a.veth.n > 0 ? `without QEMU (veth guest) the same path and table carried ${f0(f.a.veth.p50)} MiB/s (${(f.a.veth.p50 / f.a.vm.p50).toFixed(1)}× the VM)` : '';
  if (f.tcgBound) {
    out.push(`  NOTE: this figure measures TCG, not the rules: ${veth || 'there is no veth guest to compare with'}; during the transfers ${qemu}.`);
    out.push("  The VM's speed is set by its emulated CPU and NIC, so the ratio is TCG's round-to-round noise plus whatever the rules cost here, not what they would cost under KVM.");
  } else {
    out.push(`  Not clearly bound by TCG: ${veth || 'no veth guest to compare with'}; ${qemu}. Check what sets the pace before reading the ratio as the rules' cost.`);
  }
  if (env.cpu.idlePct < 15) {
    out.push(`  The host's CPUs were saturated (idle ${f0(env.cpu.idlePct)} %): QEMU, the server and other work shared ${env.machine.nproc} cores, so the figures also measure that contention.`);
  }
  if (f.failures.length) out.push(`  FAILURES: ${f.failures.join('; ')}`);
  return out;
}

export function reportText(f, cfg, env) {
  return [...headerLines(cfg, env), ...throughputLines(f), ...cpuLines(f), ...isolationLines(f), ...noteLines(f, env)].join('\n');
}
