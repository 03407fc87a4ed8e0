// Greedy choice: the index of the largest logit, lowest id on exact ties, NaN never chosen.

/**
 * Index of the largest logit. On exact ties the lowest id wins (the seed system's fix for
 * backend-dependent greedy divergence); NaN and −Infinity are never chosen. Returns −1 when no
 * entry is above −Infinity.
 *
 * @example
 * ```ts
 * argmax(new Float32Array([1, 3, NaN, 3])); // 1
 * ```
 */
export function argmax(logits: Float32Array | Float64Array): number {
  let best = -1;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    // Strict `>` keeps the first (lowest) id on ties and is false for NaN.
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}
