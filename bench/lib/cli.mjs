// What the bench scripts share on their command line, and their server children's shutdown.

/** `--help` prints the usage and exits 0; `num(name, min)` reads a numeric option or exits 2 naming it. */
export function numericOptions(opt, usage) {
  if (opt.help) {
    console.log(usage);
    process.exit(0);
  }
  return (name, min) => {
    const v = Number(opt[name]);
    if (!Number.isFinite(v) || v < min) {
      console.error(`--${name} must be a number ≥ ${min}\n${usage}`);
      process.exit(2);
    }
    return v;
  };
}

/**
 * A bench server child's stop: closes what `server()` returns (at most 10 s, then exits non-zero
 * anyway), once however many signals ask, then exits with `code`.
 */
export function stopper(mode, server) {
  let stopping = false;
  return async function stop(code) {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => process.exit(code || 1), 10_000);
    timer.unref();
    try {
      await server()?.close();
    } catch (err) {
      console.error(`[${mode}] close failed: ${err.message}`);
    }
    process.exit(code);
  };
}
