// "Did you mean": the closest known name to a misspelt one (commands, flags, option keys).

/** Levenshtein distance between two strings (insertions, deletions, substitutions; each costs 1). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Lower case without `_`, `-` and spaces: `top_p`, `top-p` and `TopP` all become `topp`. */
function fold(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, "");
}

/**
 * The known name closest to `input`, or undefined when none is close enough to be a likely typo.
 * A name equal once case, `_` and `-` are ignored wins (`top_p` → `topP`, `max_tokens` →
 * `maxTokens`); otherwise the nearest within an edit distance of 1 for short names and 2 for
 * longer ones (ties: the first in `candidates`).
 *
 * @example
 * ```ts
 * closestMatch("top_p", ["temperature", "topP", "topK"]); // "topP"
 * closestMatch("rn", ["run", "chat", "serve"]);            // "run"
 * closestMatch("frobnicate", ["run", "chat"]);             // undefined
 * ```
 */
export function closestMatch(input: string, candidates: Iterable<string>): string | undefined {
  const folded = fold(input);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === input) continue;
    if (fold(candidate) === folded) return candidate;
    const distance = editDistance(folded, fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = folded.length <= 4 ? 1 : 2;
  return bestDistance <= allowed ? best : undefined;
}
