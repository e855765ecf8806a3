/**
 * "did you mean": the known word nearest a typo. Hand-written (fifteen lines) rather than a
 * dependency: Damerau–Levenshtein in its optimal-string-alignment form, so a swapped pair of
 * letters (`lables` for `labels`) is one edit, as a reader counts it.
 */

/** The known word within two edits of `word` (case ignored), nearest first; none when `word` is itself known. */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = editDistance(word.toLowerCase(), name.toLowerCase());
    if (d <= 2 && d < word.length && (!best || d < best.d)) best = { name, d };
  }
  return best?.name === word ? undefined : best?.name;
}

/** Insertions, deletions, substitutions and swaps of two neighbours that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
