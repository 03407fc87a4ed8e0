// Kernel-level entry points a backend may expose so the conformance suite can check each op alone.
import type { ActivationQuant } from "./backend.js";
import type { WeightsFloatTensor, WeightsTernaryTensor } from "./weights.js";

/**
 * A value or a promise of it: native ops may run on a worker.
 *
 * @example
 * ```ts
 * const y = await (ops.rmsNorm(x, w, 1e-5) as MaybePromise<Float32Array>);
 * ```
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Int8 activations and their scales, as a quantiser produced them.
 * - `per-token`: one scale per row (`blockSize` = row width); `scales[i]` is `s = 127 / absmax`,
 *   so `x ≈ q / s`.
 * - `q8k-block`: one scale per 256 values; `scales[b]` is ggml's `d`, so `x ≈ q · d`.
 *
 * @example
 * ```ts
 * const { values, scales } = ops.quantize(x, 256, "per-token");
 * const approx = values[0]! / scales[0]!;
 * ```
 */
export interface QuantizedActivations {
  /** `[rows][width]` int8 codes. */
  readonly values: Int8Array;
  /** `[rows][width / blockSize]` scales, meaning as above. */
  readonly scales: Float32Array;
  /** Values per scale. */
  readonly blockSize: number;
}

/**
 * Inputs of one attention call: queries of `n` tokens against the keys and values of one
 * sequence. Query `i` attends to keys `0 … queryPositions[i]` (causal).
 *
 * @example
 * ```ts
 * const out = ops.attention({ queries, keys, values, queryPositions: Int32Array.of(4),
 *   numHeads: 4, numKvHeads: 2, headDim: 64 });
 * ```
 */
export interface AttentionInput {
  /** `[n][numHeads·headDim]` queries, RoPE applied. */
  readonly queries: Float32Array;
  /** `[length][numKvHeads·headDim]` keys, RoPE applied. */
  readonly keys: Float32Array;
  /** `[length][numKvHeads·headDim]` values. */
  readonly values: Float32Array;
  /** `[n]` last key position each query sees; each `< length`. */
  readonly queryPositions: Int32Array;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /**
   * Split-KV tile (positions per tile, merged by log-sum-exp). 0 or absent: one pass over all
   * positions. Both ways must agree within `TOLERANCES.splitKv`.
   */
  readonly tileSize?: number;
}

/**
 * The ops of one forward pass, each callable alone. Shapes are row-major; `n` is the number of
 * tokens (rows). Results are fresh arrays.
 *
 * @example
 * ```ts
 * const ops = referenceOps;
 * const y = await ops.ternaryMatmul(layer.q, hidden, "per-token"); // [n][q.rows]
 * ```
 */
export interface KernelOps {
  /** `x [n][d]`, `weight [d]` → `x · rsqrt(mean(x²) + eps) · weight`, `[n][d]`. */
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number): MaybePromise<Float32Array>;
  /** Quantises `x [n][width]` to int8 under a scheme. */
  quantize(x: Float32Array, width: number, scheme: ActivationQuant): MaybePromise<QuantizedActivations>;
  /** Quantises `x [n][weight.cols]` and multiplies by the ternary matrix: `[n][weight.rows]`. */
  ternaryMatmul(weight: WeightsTernaryTensor, x: Float32Array, scheme: ActivationQuant): MaybePromise<Float32Array>;
  /** NeoX half-split RoPE of `x [n][numHeads·headDim]` at `positions [n]`. */
  rope(x: Float32Array, positions: Int32Array, numHeads: number, headDim: number, theta: number): MaybePromise<Float32Array>;
  /** GQA causal attention: `[n][numHeads·headDim]`. */
  attention(input: AttentionInput): MaybePromise<Float32Array>;
  /** Logits `x [n][hidden] · head[vocab][hidden]ᵀ`: `[n][vocab]`. */
  lmHead(x: Float32Array, head: WeightsFloatTensor): MaybePromise<Float32Array>;
}
