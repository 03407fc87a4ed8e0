// Temperature: divides logits by T in place; T = 0 keeps only the argmax (llama.cpp's convention).
import { clampLogit } from "./float-limits.js";
import { argmax } from "./greedy.js";
import { checkTemperature } from "./validate.js";

/**
 * Scales a logits row by `1 / temperature` in place. `temperature = 0` keeps only the greedy token
 * (lowest id on ties) and sets every other logit to −Infinity, as llama.cpp's temperature sampler
 * does for `t ≤ 0`. Results that would overflow float32 are clamped to ±3.4e38; −Infinity stays.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `temperature` is negative, NaN or infinite.
 * @example
 * ```ts
 * const row = new Float32Array([2, 1]);
 * applyTemperature(row, 0.5); // row = [4, 2]
 * ```
 */
export function applyTemperature(logits: Float32Array, temperature: number): void {
  checkTemperature(temperature);
  if (temperature === 1) return;
  if (temperature === 0) {
    const keep = argmax(logits);
    for (let i = 0; i < logits.length; i++) if (i !== keep) logits[i] = Number.NEGATIVE_INFINITY;
    return;
  }
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    // Divide rather than multiply by 1/T: for subnormal T, 1/T is Infinity and 0·Infinity is NaN.
    logits[i] = clampLogit(v / temperature, v);
  }
}
