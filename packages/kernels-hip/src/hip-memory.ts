// What the GPU backend allocates on the device for a model, from its config: halo-g2 weights, tables, KV cache and step buffers.
import type { MemoryEstimate, WeightsConfig } from "@halo/kernels";
import { haloG2RowBytes } from "./gpu-packing.js";

const F32 = 4;
const I32 = 4;
/** Positions per split-KV attention block (HALO_ATTN_TILE in kernels/halo_kernel_args.h). */
export const ATTN_TILE = 64;
/** Largest k of the on-device top-k (HALO_TOPK_MAX). */
export const TOPK_MAX = 64;
/** Vocabulary ids per phase-1 top-k block (HALO_TOPK_SPAN). */
const TOPK_SPAN = 4096;
/**
 * Largest vocabulary ranked on the device (native/gpu_model.h kDeviceTopKMaxVocab): the merge reads at most 1024
 * candidate lists of {@link TOPK_SPAN} ids. Past it argmax and top-k rank downloaded logits on the host, and the model
 * holds no candidate buffers.
 */
export const DEVICE_TOPK_MAX_VOCAB = 1024 * TOPK_SPAN;
/** Rows one attention launch covers at most (native/gpu_model.h kAttentionRowsMax). */
export const ATTN_ROWS_MAX = 64;
/** Bytes the split-KV partials may take before a chunk holds fewer rows (kAttentionPartialBudget): 64 MiB. */
export const ATTN_PARTIAL_BUDGET = 64 * 2 ** 20;
const F64 = 8;

/**
 * @internal Rows per attention chunk, as native/gpu_model.cpp's attention_rows: a step's rows run through attention
 * (and its merge) in chunks of this many, which share one float64 partials buffer `[rows·heads][splits][headDim + 2]` —
 * at most {@link ATTN_ROWS_MAX} rows, fewer when their partials would pass {@link ATTN_PARTIAL_BUDGET}, one at least.
 */
export function attentionRows(c: WeightsConfig, batchTokens: number, contextLength: number): number {
  const rowBytes = c.numHeads * Math.ceil(contextLength / ATTN_TILE) * (c.headDim + 2) * F64;
  const fit = Math.max(1, Math.floor(ATTN_PARTIAL_BUDGET / rowBytes));
  return Math.min(fit, ATTN_ROWS_MAX, Math.max(batchTokens, 1));
}

/** @internal What {@link hipMemoryEstimate} needs besides the config. */
export interface HipMemoryOptions {
  readonly contextLength: number;
  readonly maxSequences: number;
  readonly kvDtype: "f16" | "f32";
  /** Rows of the fixed step buffers (the backend's maxBatchTokens). */
  readonly batchTokens: number;
  /** Bytes a weight of the token embedding as the device holds it: 2 (f16, bf16 and decoded dtypes) or 4 (f32). Default 2. */
  readonly embeddingBytesPerWeight?: number;
  /** Bytes a weight of an untied LM head as the device holds it (ignored when tied). Default 2. */
  readonly headBytesPerWeight?: number;
  /** f32 scale values of every matrix (block scales take more than one a row). Default one per matrix row. */
  readonly scaleValues?: number;
}

/**
 * @internal Bytes of the halo-g2 matrices of every layer: q|k|v, o, gate|up and down as rows of `ceil(K / 64)` 16-byte
 * chunks (the last chunk of a row padded).
 */
export function g2MatrixBytes(c: WeightsConfig): number {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  return (
    c.numLayers *
    ((qDim + 2 * kvDim) * haloG2RowBytes(c.hiddenSize) +
      c.hiddenSize * haloG2RowBytes(qDim) +
      2 * c.intermediateSize * haloG2RowBytes(c.hiddenSize) +
      c.hiddenSize * haloG2RowBytes(c.intermediateSize))
  );
}

/** @internal Rows of every matrix of every layer: one f32 scale each when scales are per tensor or per row. */
export function matrixRows(c: WeightsConfig): number {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  return c.numLayers * (qDim + 2 * kvDim + c.hiddenSize + 2 * c.intermediateSize + c.hiddenSize);
}

/** @internal Bytes of every norm weight: attn [hidden], attnSub [heads·headDim], ffn [hidden], ffnSub [intermediate] per layer, and the output norm. */
export function normBytes(c: WeightsConfig): number {
  return (c.numLayers * (2 * c.hiddenSize + c.numHeads * c.headDim + c.intermediateSize) + c.hiddenSize) * F32;
}

/** @internal Bytes one KV position of one sequence takes, all layers, keys and values. */
export function kvBytesPerPosition(c: WeightsConfig, kvDtype: "f16" | "f32"): number {
  return 2 * c.numLayers * c.numKvHeads * c.headDim * (kvDtype === "f32" ? 4 : 2);
}

/**
 * @internal Bytes of the device buffers a step of up to `n` rows uses (allocated once, at load, so every step of a shape
 * replays the same launches): the per-step inputs, the residual stream, q|k|v, the attention output, the split-KV
 * partials of one attention chunk ({@link attentionRows}), gate|up, the int8 activations with their scales and chunk
 * sums, the output-normed rows, a logit row per row, the top-k candidates and results (none past
 * {@link DEVICE_TOPK_MAX_VOCAB}), and the RoPE table.
 */
export function scratchBytes(c: WeightsConfig, n: number, contextLength: number): number {
  const hidden = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const inter = c.intermediateSize;
  const padded = Math.ceil(Math.max(hidden, qDim, inter) / 64) * 64;
  const splits = Math.ceil(contextLength / ATTN_TILE);
  const deviceTopK = c.vocabSize <= DEVICE_TOPK_MAX_VOCAB;
  const topKBlocks = deviceTopK ? Math.ceil(c.vocabSize / TOPK_SPAN) : 0;
  const topKRows = deviceTopK ? n : 0;
  return (
    4 * n * I32 + // tokens | positions | slots | logit rows: one upload a step
    n * hidden * F32 + // x: the residual stream [n][hidden]
    n * (qDim + 2 * kvDim) * F32 + // q|k|v [n][qDim + 2·kvDim]
    n * qDim * F32 + // attention output [n][qDim]
    attentionRows(c, n, contextLength) * c.numHeads * splits * (c.headDim + 2) * F64 + // split-KV partials [rows·heads][splits][headDim + 2] float64
    n * 2 * inter * F32 + // gate|up [n][2·inter]
    n * padded + // int8 activation codes [n][padded]
    n * F32 + // activation scales [n]
    n * (padded / 64) * I32 + // chunk sums [n][padded / 64]
    n * hidden * F32 + // output-normed logit rows [n][hidden]
    n * c.vocabSize * F32 + // logits [n][vocab]
    topKRows * topKBlocks * TOPK_MAX * (I32 + F32) + // top-k candidates [n][blocks][64]
    topKRows * TOPK_MAX * (I32 + F32) + // top-k ids and values [n][64]
    contextLength * (c.headDim / 2) * 2 * F64 // RoPE (cos, sin) [context][headDim / 2][2] float64
  );
}

/**
 * @internal The GPU backend's device memory for a model (see the README's "Memory" section): `weightsBytes` = the
 * halo-g2 matrices + their f32 scales + the norms + the embedding as held + an untied head as held (a tied head is the
 * embedding, counted once; `headBytes` is then the embedding's bytes); `kvBytes` = `maxSequences` slots of
 * `contextLength` positions of keys and values (every slot is allocated at load); `scratchBytes` = {@link scratchBytes}
 * for `batchTokens` rows; `decodeReadBytes` = the matrices, scales, norms, head and one embedding row.
 */
export function hipMemoryEstimate(c: WeightsConfig, options: HipMemoryOptions): MemoryEstimate {
  const embeddingWidth = options.embeddingBytesPerWeight ?? 2;
  const g2 = g2MatrixBytes(c);
  const scales = (options.scaleValues ?? matrixRows(c)) * F32;
  const norms = normBytes(c);
  const embeddingBytes = c.vocabSize * c.hiddenSize * embeddingWidth;
  const ownHead = c.tiedEmbeddings ? 0 : c.vocabSize * c.hiddenSize * (options.headBytesPerWeight ?? 2);
  const headBytes = c.tiedEmbeddings ? embeddingBytes : ownHead;
  const weightsBytes = g2 + scales + norms + embeddingBytes + ownHead;
  const perPosition = kvBytesPerPosition(c, options.kvDtype);
  const kvBytes = options.maxSequences * options.contextLength * perPosition;
  const scratch = scratchBytes(c, options.batchTokens, options.contextLength);
  return {
    weightsBytes,
    headBytes,
    kvBytesPerPosition: perPosition,
    kvBytes,
    scratchBytes: scratch,
    totalBytes: weightsBytes + kvBytes + scratch,
    decodeReadBytes: g2 + scales + norms + headBytes + c.hiddenSize * embeddingWidth,
  };
}
