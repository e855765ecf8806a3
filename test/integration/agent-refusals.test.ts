import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, test } from 'vitest';
import { ensureTestImage, type TestImage } from '../vm/ensure-image.js';

/** `hangar agent` refuses a config it cannot honour at start, with a message saying what to change. */
let dir: string;
let image: TestImage;

const agentYaml = (o: { slots?: number; memoryMiB?: number; memoryMaxMiB?: number; image?: string; accel?: string }) => `
redis: {url: "redis://127.0.0.1:1"}
pools: [{name: build, labels: [self-hosted, build]}]
hosts: [{name: minipc, role: build, pools: [build], tokenSha256: ${'a'.repeat(64)}}]
agent:
  host: minipc
  slots: ${o.slots ?? 2}
  controlUrl: http://127.0.0.1:1
  tokenFile: ${dir}/token
  stateDir: ${dir}/state
  vm: {image: ${o.image ?? image.dir}, memoryMiB: ${o.memoryMiB ?? 512}, accel: ${o.accel ?? 'tcg'}}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: ${o.memoryMaxMiB ?? 4096}}
`;

const agent = async (yaml: string) => {
  const file = join(dir, `agent-${Math.random()}.yaml`);
  writeFileSync(file, yaml);
  return execa('node', ['dist/main/cli.js', 'agent', '--config', file], { reject: false, timeout: 60_000 });
};

beforeAll(async () => {
  image = await ensureTestImage();
  dir = mkdtempSync(join(tmpdir(), 'hangar-agent-cfg-'));
  writeFileSync(join(dir, 'token'), 'a-host-token-that-is-long-enough');
}, 300_000);

describe('hangar agent refuses at start', () => {
  test('not root: one plain line saying why and how, before anything is touched', async () => {
    const file = join(dir, 'agent-not-root.yaml');
    writeFileSync(file, agentYaml({}));
    const r = await execa('node', ['dist/main/cli.js', 'agent', '--config', file], { reject: false, timeout: 60_000, uid: 65534, gid: 65534 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('hangar: hangar agent must run as root (it makes cgroups, taps and nftables rules): run it with sudo or from its systemd unit');
  });

  test('slots × VM memory above the slice MemoryMax', async () => {
    const r = await agent(agentYaml({ slots: 4, memoryMiB: 1024, memoryMaxMiB: 2048 }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/agent\.caps\.memoryMaxMiB \(line 12\): 4 slots × \(1024 MiB guest \+ 256 MiB overhead\) = 5120 MiB is above the slice's MemoryMax of 2048 MiB/);
  });

  test('an image that does not exist', async () => {
    const r = await agent(agentYaml({ image: join(dir, 'no-such-image') }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/agent\.vm\.image: .*vmlinux is missing.*hangar image build test/);
  });

  test('an accelerator that does not work (KVM here: no hardware virtualisation)', async () => {
    const r = await agent(agentYaml({ accel: 'kvm' }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/agent\.vm\.accel: kvm does not work here .*use tcg or auto/);
  });

  test('a missing host token file', async () => {
    const r = await agent(agentYaml({}).replace(`${dir}/token`, `${dir}/nope`));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('agent.tokenFile: cannot read');
  });
});

describe('hangar agent refuses at start, on a host of its own', () => {
  test('a VM range that overlaps one of the host\'s own networks, naming the key', async () => {
    // A host (a namespace this test makes) whose LAN is inside the default VM range 10.213.0.0/16.
    const ns = `hangar-t-range-${process.pid}`;
    await execa('ip', ['netns', 'add', ns]);
    try {
      // A veth pair, both ends inside the namespace (this kernel has no dummy links).
      await execa('ip', ['-n', ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1']);
      await execa('ip', ['-n', ns, 'addr', 'add', '10.213.7.1/24', 'dev', 'lan0']);
      for (const l of ['lan0', 'lan1']) await execa('ip', ['-n', ns, 'link', 'set', l, 'up']);
      const file = join(dir, 'agent-range.yaml');
      writeFileSync(file, agentYaml({}));
      const r = await execa('nsenter', [`--net=/run/netns/${ns}`, 'node', 'dist/main/cli.js', 'agent', '--config', file], { reject: false, timeout: 60_000 });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/agent\.network\.range: .*10\.213\.7\.0\/24|agent\.network\.range: .*10\.213\.7\.1\/24/);
      // It stopped before touching the host's network: no table of Hangar's there.
      expect((await execa('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'])).stdout).not.toContain('hangar');
    } finally {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  });
});
