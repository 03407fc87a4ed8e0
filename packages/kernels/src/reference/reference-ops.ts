// The reference backend's ops as a KernelOps object: the definition the conformance suite checks other backends against.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { AttentionInput, KernelOps, QuantizedActivations } from "../contract/kernel-ops.js";
import type { ActivationQuant } from "../contract/backend.js";
import type { WeightsFloatTensor, WeightsTernaryTensor } from "../contract/weights.js";
import { rmsNormRows } from "./rms-norm.js";
import { quantizeActivations } from "./quantize.js";
import { ternaryMatmulQuantized, type DecodedTernary } from "./ternary-matmul.js";
import { applyRope, ropeAngles } from "./rope.js";
import { attendRow } from "./attention.js";
import { lmHeadRows } from "./lm-head.js";

function badArgument(field: string, summary: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, summary, { field, expected, actual });
}

function checkRows(field: string, length: number, width: number): void {
  if (!Number.isSafeInteger(width) || width <= 0 || length % width !== 0) {
    throw badArgument(field, "array length is not a whole number of rows", `a multiple of ${width}`, length);
  }
}

/**
 * Decodes a ternary tensor to trits once (any packing, through `decodeRows`) and checks every
 * value is in {-1, 0, 1}.
 *
 * @example
 * ```ts
 * const decoded = decodeTernary(layer.q);
 * ```
 */
export function decodeTernary(tensor: WeightsTernaryTensor, field = "weight"): DecodedTernary {
  const trits = new Int8Array(tensor.rows * tensor.cols);
  tensor.decodeRows(0, tensor.rows, trits);
  for (let i = 0; i < trits.length; i++) {
    const t = trits[i]!;
    if (t < -1 || t > 1) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, "ternary tensor decoded to a value outside {-1, 0, 1}", {
        field,
        offset: i,
        expected: "-1, 0 or 1",
        actual: t,
      });
    }
  }
  return { rows: tensor.rows, cols: tensor.cols, trits, scale: tensor.scale };
}

/**
 * Runs attention for every query of `input` (see {@link AttentionInput}).
 *
 * @example
 * ```ts
 * const out = attention({ queries, keys, values, queryPositions, numHeads: 4, numKvHeads: 2, headDim: 64 });
 * ```
 */
export function attention(input: AttentionInput): Float32Array {
  const { queries, keys, values, queryPositions, numHeads, numKvHeads, headDim } = input;
  if (numHeads % numKvHeads !== 0) throw badArgument("numKvHeads", "query heads must be a multiple of KV heads", `a divisor of ${numHeads}`, numKvHeads);
  const width = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  checkRows("queries", queries.length, width);
  checkRows("keys", keys.length, kvWidth);
  if (values.length !== keys.length) throw badArgument("values", "values and keys differ in length", keys.length, values.length);
  const n = queries.length / width;
  if (queryPositions.length !== n) throw badArgument("queryPositions", "one position per query", n, queryPositions.length);
  const length = keys.length / kvWidth;
  const out = new Float32Array(queries.length);
  for (let t = 0; t < n; t++) {
    const last = queryPositions[t]!;
    if (last < 0 || last >= length) throw badArgument(`queryPositions[${t}]`, "query position outside the keys", `[0, ${length})`, last);
    attendRow(input, queries, t * width, keys, values, last, input.tileSize ?? 0, out, t * width);
  }
  return out;
}

/**
 * The reference numerics as {@link KernelOps}. Every function is synchronous.
 *
 * @example
 * ```ts
 * const normed = referenceOps.rmsNorm(x, weight, 1e-5);
 * const y = referenceOps.ternaryMatmul(layer.gate, normed, "per-token");
 * ```
 */
export const referenceOps: KernelOps & {
  quantize(x: Float32Array, width: number, scheme: ActivationQuant): QuantizedActivations;
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array;
  ternaryMatmul(weight: WeightsTernaryTensor, x: Float32Array, scheme: ActivationQuant): Float32Array;
  rope(x: Float32Array, positions: Int32Array, numHeads: number, headDim: number, theta: number): Float32Array;
  attention(input: AttentionInput): Float32Array;
  lmHead(x: Float32Array, head: WeightsFloatTensor): Float32Array;
} = {
  rmsNorm(x, weight, eps) {
    checkRows("x", x.length, weight.length);
    return rmsNormRows(x, weight, eps);
  },
  quantize(x, width, scheme) {
    checkRows("x", x.length, width);
    return quantizeActivations(x, width, scheme);
  },
  ternaryMatmul(weight, x, scheme) {
    checkRows("x", x.length, weight.cols);
    return ternaryMatmulQuantized(decodeTernary(weight), quantizeActivations(x, weight.cols, scheme), scheme === "per-token");
  },
  rope(x, positions, numHeads, headDim, theta) {
    if (headDim % 2 !== 0) throw badArgument("headDim", "RoPE needs an even head width", "even", headDim);
    checkRows("x", x.length, numHeads * headDim);
    if (x.length / (numHeads * headDim) !== positions.length)
      throw badArgument("positions", "one position per row", x.length / (numHeads * headDim), positions.length);
    return applyRope(Float32Array.from(x), positions, numHeads, headDim, ropeAngles("float64", headDim, theta));
  },
  attention,
  lmHead(x, head) {
    const [vocab, hidden] = head.shape;
    if (head.shape.length !== 2 || vocab === undefined || hidden === undefined) throw badArgument("head", "LM head must be 2-D", "[vocab, hidden]", head.shape);
    checkRows("x", x.length, hidden);
    return lmHeadRows(x, head.toFloat32(), vocab, hidden);
  },
};
