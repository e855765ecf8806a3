/**
 * How Hangar's own processes are started, where that is not config: node flags for the control.
 *
 * A larger young generation for the control: every webhook's 7 kB body parses into a few hundred
 * short-lived objects, and with V8's default semi-space the scavenger runs several times as
 * often. Measured with bench/intake (docs/benchmarks.md): four interleaved pairs of runs, +13 %
 * deliveries/s with this flag in every pair. The systemd unit passes it through NODE_OPTIONS;
 * the demo, the tests' fleet and the benchmarks start the control with it too.
 */
export const CONTROL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
