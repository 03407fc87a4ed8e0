// BitNet b1.58 absmean ternarisation of master (latent) weights, bit-for-bit the reference recipe.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../core/half.js";

/**
 * Lower clamp of the absmean, as in transformers `WeightQuant` and Microsoft's
 * `gpu/convert_checkpoint.py`: `mean|W|.clamp_(min=1e-5)`, as a float32.
 */
export const ABSMEAN_MIN_SCALE = Math.fround(1e-5);

/**
 * Running FP64 sum of `|w|` over a matrix, fed in chunks.
 *
 * Accumulation choice: the reference (PyTorch, float32 tensors) reduces in float32 with its own
 * summation order; halo sums in FP64, which for bf16 inputs is exact or within one rounding, and
 * does not depend on chunking or thread count. The mean is rounded to float32 once. The two
 * can disagree in the last float32 bit of the mean, which flips a code only when `w · (1/scale)`
 * lands exactly on ±0.5 (a third-party check found 4 of 140,378,112 codes of 2B-4T differ
 * between FP32 and FP64 accumulation; research/formats-and-peers.md §1.5).
 *
 * @example
 * ```ts
 * const sum = new AbsSum();
 * for (const chunk of chunks) sum.add(chunk, "q_proj");
 * const { inverse, scale } = sum.params("bf16");
 * ```
 */
export class AbsSum {
  private sum = 0;
  private count = 0;

  /** Adds `|values[i]|`; throws `H1B_BAD_TENSOR` on NaN or infinity. */
  add(values: Float32Array, where: string): void {
    let sum = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      sum += v < 0 ? -v : v;
    }
    if (!Number.isFinite(sum)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `${where}: master weights contain NaN or infinity`, {
        field: where,
        expected: "finite weights",
        actual: "NaN or ±Inf",
        hint: "The checkpoint is corrupt; download it again",
      });
    }
    this.sum += sum;
    this.count += values.length;
  }

  /** The ternarisation parameters of everything added so far. */
  params(masterDType: "bf16" | "f16" | "f32"): AbsmeanParams {
    const mean = this.count === 0 ? 0 : Math.fround(this.sum / this.count);
    return absmeanParams(mean, masterDType);
  }
}

/**
 * Largest relative change of a ternary scale through a Hugging Face snapshot written with bf16
 * scales (packed variant: one bf16 rounding) or as bf16 master weights (the magnitude and the
 * read-back scale are both bf16: two roundings), then read back. bf16 keeps 8 significant bits,
 * so one rounding moves a value by at most 2^-8 relative, two by 2^-7; 1% on top covers the
 * float32 roundings of the mean and its reciprocals.
 */
export const HF_SCALE_REL_TOLERANCE = 2 ** -7 * 1.01;

/** Reciprocal used for rounding and the scale the ternary matrix is multiplied by. */
export interface AbsmeanParams {
  /** `1 / max(mean|W|, 1e-5)` in float32: weights are multiplied by it before rounding. */
  readonly inverse: number;
  /**
   * The scale of the ternary matrix: `1 / inverse` rounded to the master dtype, which is what
   * transformers' online `AutoBitLinear` multiplies by (it casts `t / s` back to the weight
   * dtype) and what Microsoft's converter stores (bf16).
   */
  readonly scale: number;
}

/**
 * {@link AbsmeanParams} for a float32 mean of `|W|`.
 *
 * @example
 * ```ts
 * absmeanParams(0.02, "bf16"); // { inverse: fround(1 / fround(0.02)), scale: ≈ 0.02 in bf16 }
 * ```
 */
export function absmeanParams(mean: number, masterDType: "bf16" | "f16" | "f32"): AbsmeanParams {
  const clamped = Math.max(Math.fround(mean), ABSMEAN_MIN_SCALE);
  const inverse = Math.fround(1 / clamped);
  const scale = Math.fround(1 / inverse);
  return { inverse, scale: roundTo(scale, masterDType) };
}

/** Rounds a float32 value to `dtype` (round to nearest even) and back. */
export function roundTo(value: number, dtype: "bf16" | "f16" | "f32"): number {
  switch (dtype) {
    case "bf16":
      return bf16ToF32(f32ToBf16(value));
    case "f16":
      return f16ToF32(f32ToF16(value));
    case "f32":
      return Math.fround(value);
  }
}

/**
 * Ternarises weights with a precomputed inverse: `clamp(round(fround(w · inverse)), -1, 1)` with
 * `round` half to even like `torch.round`. Only ±0.5 is a tie that matters (±1.5 and ±2.5 clamp
 * to ±1 either way), and half-to-even sends it to 0.
 *
 * @example
 * ```ts
 * const sum = new AbsSum(); sum.add(w, "q_proj");
 * const { inverse, scale } = sum.params("bf16");
 * ternarizeInto(w, inverse, trits); // W ≈ trits × scale
 * ```
 */
export function ternarizeInto(weights: Float32Array, inverse: number, out: Int8Array, outOffset = 0): void {
  for (let i = 0; i < weights.length; i++) {
    const x = Math.fround(weights[i]! * inverse);
    out[outOffset + i] = x > 0.5 ? 1 : x < -0.5 ? -1 : 0;
  }
}

/**
 * The magnitude `m` of master weights `W = trit × m` (one value for every nonzero trit) whose
 * absmean ternarisation gives back exactly `trits` and a scale close to `scale`: the bf16 value
 * near `scale · n / nonzero` whose read-back scale is nearest `scale` (so `mean|W| ≈ scale`, and
 * `m / mean|W| = n / nonzero ≥ 1` rounds to ±1). Returns 0 for an all-zero matrix (its scale
 * cannot be kept: it reads back as 1e-5, the weights stay zero). Throws `H1B_LOSSY_CONVERSION`
 * when the 1e-5 clamp would lose the trits (scale below about 5e-6) or the value overflows bf16.
 *
 * @example
 * ```ts
 * const m = masterMagnitude(0.02, 60, 100, "q_proj"); // ≈ 0.0333 in bf16
 * // W = trit × m re-ternarises to the same trits with scale ≈ 0.02
 * ```
 */
export function masterMagnitude(scale: number, nonzero: number, count: number, where: string): number {
  if (nonzero === 0) return 0;
  const ideal = (scale * count) / nonzero;
  const center = f32ToBf16(ideal) & 0x7fff;
  let best = 0;
  let bestError = Infinity;
  for (let bits = Math.max(1, center - 2); bits <= Math.min(0x7f7f, center + 2); bits++) {
    const magnitude = bf16ToF32(bits);
    const params = absmeanParams(Math.fround((magnitude * nonzero) / count), "bf16");
    if (!(Math.fround(magnitude * params.inverse) > 0.5)) continue;
    const error = Math.abs(params.scale - scale);
    if (error < bestError) {
      best = magnitude;
      bestError = error;
    }
  }
  if (best === 0 || !Number.isFinite(scale) || scale <= 0) {
    throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, `${where}: the scale cannot be written as bf16 master weights`, {
      field: where,
      expected: "a positive finite scale whose master weights survive absmean ternarisation (≥ 1e-5)",
      actual: scale,
      hint: "Write the packed variant instead",
    });
  }
  return best;
}
