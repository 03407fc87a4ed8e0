// Softmax, log-sum-exp and the multinomial draw, all in float64 with temperature fused in.
//
// Performance notes: at V = 128256 one Math.exp pass is the whole cost of a draw (≈ 2–4 ms on the
// shared 2-core dev box, load 4–7). A hand-written Cody–Waite + degree-13 polynomial exp (≤ 2.2e-16
// relative error, bit-identical across engines) measured 1.7–2.3× SLOWER than V8's Math.exp in the
// same loop, so it was dropped. Determinism across machines therefore relies on V8's Math.exp,
// which is a fixed software port of fdlibm (not the C library), identical on every platform.
import type { Rng } from "./rng.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkPositiveTemperature } from "./validate.js";

/**
 * Writes `softmax(logits / temperature)` into `out` (float64) and returns `out`. Computed as
 * `exp((l − max) / T) / Σ`, so large logits cannot overflow; −Infinity gets probability 0. When
 * every logit is −Infinity, every probability is 0.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `temperature` is not finite and > 0.
 * @example
 * ```ts
 * softmax(new Float32Array([0, 0])); // Float64Array [0.5, 0.5]
 * ```
 */
export function softmax(logits: Float32Array | Float64Array, temperature = 1, out: Float64Array = new Float64Array(logits.length)): Float64Array {
  checkPositiveTemperature(temperature);
  const max = maxOf(logits);
  if (max === Number.NEGATIVE_INFINITY) return out.fill(0, 0, logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    // Divide (not multiply by 1/T): 1/T overflows to Infinity for subnormal T, and 0·Infinity is NaN.
    const w = Math.exp((logits[i]! - max) / temperature);
    out[i] = w;
    total += w;
  }
  for (let i = 0; i < logits.length; i++) out[i]! /= total;
  return out;
}

/**
 * `log Σ exp(l_i)` in float64, stable for any magnitude; −Infinity when every logit is −Infinity.
 *
 * @example
 * ```ts
 * logSumExp(new Float32Array([0, 0])); // Math.LN2
 * ```
 */
export function logSumExp(logits: Float32Array | Float64Array): number {
  const max = maxOf(logits);
  if (max === Number.NEGATIVE_INFINITY) return max;
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp(logits[i]! - max);
  return max + Math.log(total);
}

/**
 * Draws one token id from `softmax(logits / temperature)` with one `rng.nextFloat()`: the first id
 * (in id order) whose running weight exceeds `r · Σ`. Zero-weight tokens are never returned.
 * Returns −1 when every logit is −Infinity. O(V), float64, no allocation when `scratch` is given.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `temperature` is not finite and > 0.
 * @example
 * ```ts
 * drawToken(new Float32Array([0, 1, 2]), 0.8, createRng(1)); // an id in 0..2
 * ```
 */
export function drawToken(logits: Float32Array | Float64Array, temperature: number, rng: Rng, scratch?: SamplerScratch): number {
  checkPositiveTemperature(temperature);
  const length = logits.length;
  const weights = scratchFor(length, scratch).weights;
  const max = maxOf(logits);
  if (max === Number.NEGATIVE_INFINITY) return -1;
  let total = 0;
  let last = -1;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    const w = v === Number.NEGATIVE_INFINITY ? 0 : Math.exp((v - max) / temperature);
    weights[i] = w;
    total += w;
    if (w > 0) last = i;
  }
  const target = rng.nextFloat() * total;
  let cumulative = 0;
  for (let i = 0; i < length; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    cumulative += w;
    if (cumulative > target) return i;
  }
  return last; // rounding left the target at the very top: the last positive-weight token
}

function maxOf(logits: Float32Array | Float64Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > max) max = v;
  }
  return max;
}
