import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Four lanes (vitest projects), by what a file needs rather than by its folder:
 *   unit         no server, no root, no child process that waits on anything
 *   integration  servers on 127.0.0.1:0, the run's Redis (its own key prefix per test), the CLI
 *                from dist/; everything not listed in another lane lands here
 *   system       root: cgroups, taps and nftables in namespaces, QEMU microVMs
 *   e2e          whole fleets (test/helpers/fleet.ts): each has namespaces, a Redis and a runner
 *                slice of its own, so two can run at once (HANGAR_E2E_WORKERS=2 test/run.sh:
 *                426 s → 283–295 s on 2 cores; once, two isolation tests' guest DNS lookups
 *                passed their 6 s, so one at a time stays the default). Not with the system lane
 *                beside them: 5 of 42 VM tests failed on timeouts (admission 130 → 505 s).
 * test/run.sh runs unit and integration with files in parallel, system and e2e one file at a
 * time; run directly (`npx vitest run --config test/vitest.config.ts FILE`), files go one at a
 * time.
 */
const UNIT = [
  'test/unit/**/*.test.ts', 'test/units/**/*.test.ts', 'test/github/errors.test.ts',
  'test/caps/v2-layout.test.ts', 'test/vm/units.test.ts',
];
const SYSTEM = [
  // Not the unit tests in these folders, nor the DNS forwarder's (loopback only, no root).
  'test/caps/!(v2-layout).test.ts', 'test/net/!(dns-forwarder).test.ts', 'test/vm/!(units).test.ts',
  // Root and namespaces (or a VM image and /dev/kvm) though their folder says integration.
  'test/integration/{agent-refusals,local-fleet,local-topology}.test.ts',
  // debootstrap and chroot: ansible/ applied to a fresh Debian root.
  'test/ansible/*-chroot.test.ts',
];
const E2E = ['test/e2e/**/*.test.ts'];

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // One file at a time unless test/run.sh says otherwise for a lane (root-only option in vitest 3).
    fileParallelism: false,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      // The run's one redis-server (each test its own key prefix).
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...UNIT, ...SYSTEM, ...E2E], globalSetup: ['test/helpers/global-setup.ts'] } },
      // The test image built (or found in the cache) and KVM probed, once per run (kept for e2e).
      { extends: true, test: { name: 'system', include: SYSTEM, globalSetup: ['test/helpers/accel-probe.ts'] } },
      { extends: true, test: { name: 'e2e', include: E2E, globalSetup: ['test/helpers/accel-probe.ts'] } },
    ],
  },
});
