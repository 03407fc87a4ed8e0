// Activation quantisers: BitNet's per-token absmax int8 and llama.cpp's Q8_K (per 256 values).
import type { ActivationQuant } from "../contract/backend.js";
import type { QuantizedActivations } from "../contract/kernel-ops.js";
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import { roundHalfEven } from "./rounding.js";

/** Floor of the per-token absmax (BitNet's `clamp(min=1e-5)`), as a float32. */
export const PER_TOKEN_ABSMAX_FLOOR = Math.fround(1e-5);
/** Values per Q8_K block (ggml `QK_K`). */
export const Q8K_BLOCK = 256;

/**
 * Per-token absmax quantisation (BitNet b1.58 `ActQuant`): per row, `s = f32(127 / max(absmax,
 * 1e-5))`, `q = clamp(roundHalfEven(x · s), −128, 127)`; the product `x · s` of two float32 values
 * is exact in float64, so the rounding point is well defined.
 *
 * @example
 * ```ts
 * const { values, scales } = quantizePerToken(Float32Array.of(0.5, -1), 2); // values [64, -127], scales [127]
 * ```
 */
export function quantizePerToken(x: Float32Array, width: number): QuantizedActivations {
  const n = x.length / width;
  const values = new Int8Array(x.length);
  const scales = new Float32Array(n);
  for (let row = 0; row < n; row++) {
    const base = row * width;
    let max = 0;
    for (let i = 0; i < width; i++) max = Math.max(max, Math.abs(x[base + i]!));
    const s = Math.fround(127 / Math.max(max, PER_TOKEN_ABSMAX_FLOOR));
    scales[row] = s;
    for (let i = 0; i < width; i++) {
      const q = roundHalfEven(x[base + i]! * s);
      values[base + i] = q > 127 ? 127 : q < -128 ? -128 : q;
    }
  }
  return { values, scales, blockSize: width };
}

/**
 * llama.cpp's Q8_K (`quantize_row_q8_K_ref` in ggml-quants.c): per block of 256, `max` is the
 * signed value of largest magnitude (first one on ties), `iscale = f32(−127 / max)`,
 * `q = min(127, nearest(f32(iscale · x)))` with ties to even, `d = f32(1 / iscale)`; an all-zero
 * block has `d = 0`. Rows must be a multiple of 256 wide.
 *
 * @example
 * ```ts
 * const { values, scales } = quantizeQ8K(x, 512); // scales: 2 per row
 * ```
 */
export function quantizeQ8K(x: Float32Array, width: number): QuantizedActivations {
  const blocks = x.length / Q8K_BLOCK;
  const values = new Int8Array(x.length);
  const scales = new Float32Array(blocks);
  if (width % Q8K_BLOCK !== 0) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "Q8_K quantisation needs rows a multiple of 256 wide", {
      field: "width",
      expected: "a multiple of 256",
      actual: width,
      hint: "Use activationQuant 'per-token' for this model, or a model whose widths are multiples of 256",
    });
  }
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8K_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < Q8K_BLOCK; j++) {
      const v = x[base + j]!;
      const a = Math.abs(v);
      if (a > amax) {
        amax = a;
        max = v;
      }
    }
    if (amax === 0) continue; // d = 0 and q = 0 already
    const iscale = Math.fround(-127 / max);
    for (let j = 0; j < Q8K_BLOCK; j++) {
      const q = roundHalfEven(Math.fround(iscale * x[base + j]!));
      values[base + j] = q > 127 ? 127 : q;
    }
    scales[b] = Math.fround(1 / iscale);
  }
  return { values, scales, blockSize: Q8K_BLOCK };
}

/**
 * Quantises rows of `x [n][width]` under `scheme`.
 *
 * @example
 * ```ts
 * const qa = quantizeActivations(hidden, 256, "per-token");
 * ```
 */
export function quantizeActivations(x: Float32Array, width: number, scheme: ActivationQuant): QuantizedActivations {
  return scheme === "per-token" ? quantizePerToken(x, width) : quantizeQ8K(x, width);
}
