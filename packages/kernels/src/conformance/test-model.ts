// The conformance suite's own tiny models: seeded random weights in the contract's structural types.
import type { ModelWeights, WeightsConfig, WeightsFloatTensor, WeightsLayer, WeightsTernaryScale, WeightsTernaryTensor } from "../contract/weights.js";
import { SeededRandom } from "./seeded-random.js";

/**
 * Options of {@link conformanceModel}. Dimensions default to a tiny model with awkward sizes
 * (hidden 48, FFN 80, 3 query heads over 1 KV head, vocab 97).
 *
 * @example
 * ```ts
 * const options: ConformanceModelOptions = { seed: 3, activation: "silu", scaleKind: "row" };
 * ```
 */
export interface ConformanceModelOptions {
  readonly seed?: number;
  readonly activation?: "relu2" | "silu";
  /** How ternary matrices are scaled. Default `"tensor"`. */
  readonly scaleKind?: "tensor" | "row" | "block";
  /** Block size for `scaleKind: "block"` (must divide every K). Default 16. */
  readonly blockSize?: number;
  readonly tiedEmbeddings?: boolean;
  readonly hiddenSize?: number;
  readonly intermediateSize?: number;
  readonly numLayers?: number;
  readonly numHeads?: number;
  readonly numKvHeads?: number;
  readonly headDim?: number;
  readonly vocabSize?: number;
  readonly maxPositionEmbeddings?: number;
  readonly ropeTheta?: number;
}

/**
 * An in-memory float32 tensor in the contract's shape.
 *
 * @example
 * ```ts
 * const head = floatTensorOf(values, [vocab, hidden]);
 * ```
 */
export function floatTensorOf(values: Float32Array, shape: readonly number[]): WeightsFloatTensor {
  return {
    dtype: "f32",
    shape,
    bytes: () => new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    toFloat32: () => Float32Array.from(values),
  };
}

/**
 * An in-memory ternary tensor with `int8` packing (one signed byte per trit).
 *
 * @example
 * ```ts
 * const w = ternaryTensorOf(Int8Array.of(1, 0, -1, 1), 2, 2, { kind: "tensor", value: 0.5 });
 * ```
 */
export function ternaryTensorOf(trits: Int8Array, rows: number, cols: number, scale: WeightsTernaryScale): WeightsTernaryTensor {
  return {
    rows,
    cols,
    packing: "int8",
    scale,
    bytes: () => new Uint8Array(trits.buffer, trits.byteOffset, trits.byteLength),
    decodeRows(rowStart: number, rowCount: number, out: Int8Array): void {
      out.set(trits.subarray(rowStart * cols, (rowStart + rowCount) * cols));
    },
  };
}

function randomScale(random: SeededRandom, kind: "tensor" | "row" | "block", rows: number, cols: number, blockSize: number): WeightsTernaryScale {
  // ≈ 1/sqrt(nonzeros per row) keeps activations near unit RMS through the stack.
  const base = 1 / Math.sqrt(0.6 * cols);
  const one = (): number => Math.fround(base * (0.7 + 0.6 * random.float()));
  if (kind === "tensor") return { kind, value: one() };
  if (kind === "row") return { kind, values: Float32Array.from({ length: rows }, one) };
  return { kind, blockSize, values: Float32Array.from({ length: (rows * cols) / blockSize }, one) };
}

/**
 * A seeded random BitNet model in the contract's structural types: `int8` trits, f32 norms and
 * embedding. Not trained; logits are arbitrary but deterministic, with no exact ties in practice.
 *
 * @example
 * ```ts
 * const weights = conformanceModel({ seed: 1 });
 * const model = await backend.loadModel(weights, { contextLength: 64 });
 * ```
 */
export function conformanceModel(options: ConformanceModelOptions = {}): ModelWeights {
  const random = new SeededRandom(options.seed ?? 1);
  const config: WeightsConfig = {
    architecture: "bitnet",
    hiddenSize: options.hiddenSize ?? 48,
    intermediateSize: options.intermediateSize ?? 80,
    numLayers: options.numLayers ?? 2,
    numHeads: options.numHeads ?? 3,
    numKvHeads: options.numKvHeads ?? 1,
    headDim: options.headDim ?? 16,
    vocabSize: options.vocabSize ?? 97,
    maxPositionEmbeddings: options.maxPositionEmbeddings ?? 256,
    ropeTheta: options.ropeTheta ?? 10000,
    rmsNormEps: 1e-5,
    activation: options.activation ?? "relu2",
    tiedEmbeddings: options.tiedEmbeddings ?? true,
    hadamardRotated: false,
  };
  const kind = options.scaleKind ?? "tensor";
  const blockSize = options.blockSize ?? 16;
  const h = config.hiddenSize;
  const qd = config.numHeads * config.headDim;
  const kvd = config.numKvHeads * config.headDim;
  const f = config.intermediateSize;
  const norm = (length: number): WeightsFloatTensor =>
    floatTensorOf(
      Float32Array.from({ length }, () => Math.fround(0.6 + 0.8 * random.float())),
      [length],
    );
  const ternary = (rows: number, cols: number): WeightsTernaryTensor =>
    ternaryTensorOf(random.trits(rows * cols), rows, cols, randomScale(random, kind, rows, cols, blockSize));
  const layers: WeightsLayer[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    layers.push({
      attnNorm: norm(h),
      attnSubNorm: norm(qd),
      ffnNorm: norm(h),
      ffnSubNorm: norm(f),
      q: ternary(qd, h),
      k: ternary(kvd, h),
      v: ternary(kvd, h),
      o: ternary(h, qd),
      gate: ternary(f, h),
      up: ternary(f, h),
      down: ternary(h, f),
    });
  }
  const embedding = floatTensorOf(random.floats(config.vocabSize * h, 0.5), [config.vocabSize, h]);
  return {
    config,
    tokenEmbedding: embedding,
    outputNorm: norm(h),
    lmHead: config.tiedEmbeddings ? null : floatTensorOf(random.floats(config.vocabSize * h, 0.5), [config.vocabSize, h]),
    layers,
  };
}
