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
 * replays the same launches): the per-step inputs, the residual stream, q|k|v, the attention output and its split-KV
 * partials, gate|up, the int8 activations with their scales and chunk sums, the output-normed rows, a logit row per
 * row, the top-k candidates and results, and the RoPE table.
 */
export function scratchBytes(c: WeightsConfig, n: number, contextLength: number): number {
  const hidden = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const inter = c.intermediateSize;
  const padded = Math.ceil(Math.max(hidden, qDim, inter) / 64) * 64;
  const splits = Math.ceil(contextLength / ATTN_TILE);
  const topKBlocks = Math.ceil(c.vocabSize / TOPK_SPAN);
  return (
    4 * n * I32 + // tokens | positions | slots | logit rows: one upload a step
    n * hidden * F32 + // x: the residual stream [n][hidden]
    n * (qDim + 2 * kvDim) * F32 + // q|k|v [n][qDim + 2·kvDim]
    n * qDim * F32 + // attention output [n][qDim]
    n * c.numHeads * splits * (c.headDim + 2) * 8 + // split-KV partials [n·heads][splits][headDim + 2] float64
    n * 2 * inter * F32 + // gate|up [n][2·inter]
    n * padded + // int8 activation codes [n][padded]
    n * F32 + // activation scales [n]
    n * (padded / 64) * I32 + // chunk sums [n][padded / 64]
    n * hidden * F32 + // output-normed logit rows [n][hidden]
    n * c.vocabSize * F32 + // logits [n][vocab]
    n * topKBlocks * TOPK_MAX * (I32 + F32) + // top-k candidates [n][blocks][64]
    n * TOPK_MAX * (I32 + F32) + // top-k ids and values [n][64]
    contextLength * (c.headDim / 2) * 2 * 8 // RoPE (cos, sin) [context][headDim / 2][2] float64
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
