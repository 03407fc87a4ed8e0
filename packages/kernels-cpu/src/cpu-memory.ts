// What the CPU backend allocates for a model, from its config alone: the arena, tables, KV cache and step scratch.
import type { KvDtype, MemoryEstimate, WeightsConfig } from "@halo/kernels";
import type { NativeHeadQuant } from "./native-binding.js";

/** Bytes of one packed 256-weight block (`halo_block_i2` in halo_cpu.h: 2 bits a weight). */
const BLOCK_BYTES = 64;
/** Positions per attention tile (`HALO_ATTN_TILE` in halo_cpu.h): a step keeps float64 partials per tile. */
const ATTN_TILE = 128;
const F32 = 4;
/** Bytes a weight of the embedding (and of a float head) as the estimate assumes it stored: f16 or bf16. */
const TABLE_BYTES_PER_WEIGHT = 2;

function blocks(cols: number): number {
  return Math.ceil(cols / 256) * BLOCK_BYTES;
}

/**
 * @internal Bytes of the packed ternary arena: every matrix (q|k|v, o, gate|up, down of every layer) as rows of
 * 64-byte blocks of 256 weights (the last block of a row padded). The loader reserves exactly this much.
 */
export function packedArenaBytes(c: WeightsConfig): number {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  return (
    c.numLayers *
    ((qDim + 2 * kvDim) * blocks(c.hiddenSize) +
      c.hiddenSize * blocks(qDim) +
      2 * c.intermediateSize * blocks(c.hiddenSize) +
      c.hiddenSize * blocks(c.intermediateSize))
  );
}

/**
 * @internal Bytes of one LM head row of `hidden` weights as the CPU backend stores it for `quant`: `none` (the float
 * table as stored, counted at 2 bytes a weight: f16 or bf16), `int8` (the codes and an f32 row scale: hidden + 4) or
 * `int4` (halo_head_i4_row in halo_cpu.h: rows padded to 64 weights, a nibble each, a u8 sub-scale per 64, an f32 row
 * scale and an i32 row sum).
 */
export function headRowBytes(quant: NativeHeadQuant, hidden: number): number {
  const stride = Math.ceil(hidden / 64) * 64;
  if (quant === "int8") return hidden + F32;
  if (quant === "int4") return stride / 2 + stride / 64 + 2 * F32;
  return hidden * TABLE_BYTES_PER_WEIGHT;
}

/** @internal Bytes one KV position of one sequence takes, all layers, keys and values (Config::kv_slot_bytes). */
export function kvBytesPerPosition(c: WeightsConfig, kvDtype: KvDtype): number {
  const kvDim = c.numKvHeads * c.headDim;
  const elem = kvDtype === "f32" ? 4 : kvDtype === "f16" ? 2 : 1;
  // int8: one f32 scale per KV head per position, for keys and for values.
  return c.numLayers * 2 * (kvDim * elem + (kvDtype === "int8" ? c.numKvHeads * F32 : 0));
}

/** Slots are allocated in 2 MiB pieces (Region::allocate in model.cpp rounds every region up to a huge page). */
export const KV_SLOT_ROUNDING = 2 * 1024 * 1024;

/**
 * @internal Bytes the native side allocates for one sequence's KV slot (Config::kv_slot_bytes: int8 codes padded to 4
 * bytes before the scales), rounded up to {@link KV_SLOT_ROUNDING} as Region::allocate maps it.
 */
export function kvSlotAllocationBytes(c: WeightsConfig, contextLength: number, kvDtype: KvDtype): number {
  const rows = c.numLayers * contextLength;
  const kvDim = c.numKvHeads * c.headDim;
  const elem = kvDtype === "f32" ? 4 : kvDtype === "f16" ? 2 : 1;
  const codes = 2 * rows * kvDim * elem;
  const slot = kvDtype === "int8" ? Math.ceil(codes / 4) * 4 + 2 * rows * c.numKvHeads * F32 : codes;
  return Math.max(64, Math.ceil(slot / KV_SLOT_ROUNDING) * KV_SLOT_ROUNDING);
}

/** @internal What {@link cpuMemoryEstimate} needs besides the config. */
export interface CpuMemoryOptions {
  readonly contextLength: number;
  readonly maxSequences: number;
  readonly kvDtype: KvDtype;
  readonly headQuant: NativeHeadQuant;
  /** Rows of the step the scratch is sized for (the backend's preferredBatchTokens). */
  readonly batchTokens: number;
  /** The sparse down lane's second copy of every down matrix ({@link sparseDownBytes}). Default false. */
  readonly sparseDown?: boolean;
}

/**
 * @internal Bytes of the sparse down lane's layout of one model (halo_sparse_masks in halo_cpu.h): per layer, for every
 * input column of down, a 64-byte line per 256 output rows — 2 bits a weight, the down matrices' bytes once more.
 */
export function sparseDownBytes(c: WeightsConfig): number {
  return c.numLayers * Math.ceil(c.hiddenSize / 256) * c.intermediateSize * 64;
}

/**
 * @internal The CPU backend's memory for a model (see the README's "Memory" section): `weightsBytes` = the packed
 * arena + norms + one f32 scale per matrix row + the embedding (2 bytes a weight) + the LM head as `headQuant` stores
 * it (nothing more for a tied f16 head: it is the embedding; `headBytes` is the head as stored: the embedding's bytes
 * for a tied f16 head, the quantised copy's for int8 / int4); `kvBytes` = `maxSequences` slots as allocated (each
 * `contextLength × kvBytesPerPosition` rounded up to 2 MiB); `kvBytesPerPosition` = the unrounded rate; `scratchBytes` = the
 * buffers a step of `batchTokens` rows at the end of the context grows to (activations, attention partials, a logit
 * row for every row); `decodeReadBytes` = the arena, norms, scales, head and one embedding row. With `sparseDown` the
 * weights hold the down matrices a second time in the sparse layout; `decodeReadBytes` stays the dense figure (the
 * sparse path reads less, by the share of zero inputs).
 */
export function cpuMemoryEstimate(c: WeightsConfig, options: CpuMemoryOptions): MemoryEstimate {
  const hidden = c.hiddenSize;
  const inter = c.intermediateSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const arena = packedArenaBytes(c);
  // One f32 scale per row of q|k|v, o, gate|up and down (tensor and row scales; block scales that vary along a row
  // take more).
  const scales = c.numLayers * (qDim + 2 * kvDim + hidden + 2 * inter + hidden) * F32;
  // attnNorm [hidden], attnSubNorm [qDim], ffnNorm [hidden], ffnSubNorm [inter]; the output norm [hidden].
  const norms = (c.numLayers * (2 * hidden + qDim + inter) + hidden) * F32;
  const embeddingBytes = c.vocabSize * hidden * TABLE_BYTES_PER_WEIGHT;
  const headBytes = c.vocabSize * headRowBytes(options.headQuant, hidden);
  const headIsEmbedding = c.tiedEmbeddings && options.headQuant === "none";
  const sparse = options.sparseDown === true ? sparseDownBytes(c) : 0;
  const weightsBytes = arena + sparse + scales + norms + embeddingBytes + (headIsEmbedding ? 0 : headBytes);
  const perPosition = kvBytesPerPosition(c, options.kvDtype);
  const kvBytes = options.maxSequences * kvSlotAllocationBytes(c, options.contextLength, options.kvDtype);

  const n = options.batchTokens;
  const widest = Math.max(hidden, qDim, inter);
  const padded = Math.ceil(widest / 256) * 256;
  const headStride = Math.ceil(hidden / 64) * 64;
  const tiles = Math.ceil(options.contextLength / ATTN_TILE);
  const scratchBytes =
    n * hidden * F32 + // x: the residual stream
    n * widest * F32 + // normed
    n * (qDim + 2 * kvDim) * F32 + // q|k|v out
    n * qDim * F32 + // attention out
    n * 2 * inter * F32 + // gate|up out
    n * Math.max(hidden, inter) * F32 + // delta
    n * (padded + (padded / 256) * F32 + F32 + Math.ceil(widest / 256) * F32) + // int8 activations, block and row sums, scales
    n * c.headDim * 8 + // RoPE cos|sin table (float64)
    n * c.numHeads * (c.headDim + 2) * 8 * tiles + // attention partials (m, l, o per head and tile, float64)
    n * hidden * F32 + // the logit rows' normed hidden states
    (options.headQuant === "none" ? 0 : n * (headStride + 8)) + // their int8 codes and scales for a quantised head
    n * c.vocabSize * F32; // a logit row for every row
  return {
    weightsBytes,
    headBytes,
    kvBytesPerPosition: perPosition,
    kvBytes,
    scratchBytes,
    totalBytes: weightsBytes + kvBytes + scratchBytes,
    decodeReadBytes: arena + scales + norms + headBytes + hidden * TABLE_BYTES_PER_WEIGHT,
  };
}
