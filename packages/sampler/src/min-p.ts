// Min-p: drops tokens whose probability is below minP times the top token's probability.
import { checkMinP } from "./validate.js";

/**
 * Min-p filter (llama.cpp PR #3841), in place: a token survives when `p_i ≥ minP · p_max`, i.e.
 * `exp(l_i − l_max) ≥ minP` computed in float64 at temperature 1. The top token always survives.
 * `minP = 0` is a no-op. O(V).
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `minP` is outside [0, 1].
 * @example
 * ```ts
 * const row = new Float32Array([0, Math.log(0.5), Math.log(0.01)]);
 * applyMinP(row, 0.05); // the last token (ratio 0.01 < 0.05) becomes -Infinity
 * ```
 */
export function applyMinP(logits: Float32Array, minP: number): void {
  checkMinP(minP);
  if (minP === 0) return;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY) return;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v !== Number.NEGATIVE_INFINITY && Math.exp(v - max) < minP) logits[i] = Number.NEGATIVE_INFINITY;
  }
}
