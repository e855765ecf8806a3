// Summarises a V8 .cpuprofile (node --cpu-prof): where the time went, by package / Hangar file
// (self time), the heaviest functions (self time), and inclusive time of Hangar's own functions.
// Usage: node bench/lib/cpuprofile.mjs FILE.cpuprofile [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function bucketOf(url, functionName) {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `hangar:${url.slice(dist + 1)}`;
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/').slice(0, 2).join('/');
  return url.replace(/^file:\/\//, '');
}

export function summarise(profile, top = 25) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  let total = 0;
  let idle = 0;
  const bySelfBucket = new Map();
  const bySelfFn = new Map();
  const inclusive = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const { functionName, url, lineNumber } = n.callFrame;
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const bucket = bucketOf(url, functionName);
    bySelfBucket.set(bucket, (bySelfBucket.get(bucket) ?? 0) + us);
    const fnKey = `${functionName || '(anonymous)'}  ${bucket}:${lineNumber + 1}`;
    bySelfFn.set(fnKey, (bySelfFn.get(fnKey) ?? 0) + us);
    // Inclusive time of Hangar's own functions (dist/): each counted once per stack.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur).callFrame;
      if (!f.url.includes('/dist/')) continue;
      const key = `${f.functionName || '(anonymous)'}  ${bucketOf(f.url, f.functionName)}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const rows = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  return [
    `profile: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s on CPU (percentages below are of on-CPU time)`,
    'self time by package / file:',
    ...rows(bySelfBucket),
    'heaviest functions (self time):',
    ...rows(bySelfFn),
    "Hangar's functions (inclusive time):",
    ...rows(inclusive),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/lib/cpuprofile.mjs FILE.cpuprofile [top]');
    process.exit(2);
  }
  console.log(summarise(JSON.parse(readFileSync(file, 'utf8')), Number(top ?? 25)));
}
