// Sanitising a logits row: NaN becomes −Infinity (never chosen), +Infinity the largest float32.
import { FLOAT32_MAX } from "./float-limits.js";

/**
 * Makes a logits row safe for the other processors, in place: NaN → −Infinity (the token can never
 * be chosen) and +Infinity → the largest finite float32 (so `l − max` never computes
 * `Infinity − Infinity`). Finite values and −Infinity are untouched. Returns how many entries
 * remain above −Infinity.
 *
 * @example
 * ```ts
 * const row = new Float32Array([NaN, Infinity, 1]);
 * sanitizeLogits(row); // row = [-Infinity, 3.4028234663852886e38, 1], returns 2
 * ```
 */
export function sanitizeLogits(logits: Float32Array): number {
  let alive = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v !== v) logits[i] = Number.NEGATIVE_INFINITY;
    else if (v === Number.POSITIVE_INFINITY) {
      logits[i] = FLOAT32_MAX;
      alive++;
    } else if (v !== Number.NEGATIVE_INFINITY) alive++;
  }
  return alive;
}
