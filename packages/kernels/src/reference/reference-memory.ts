// What the reference backend allocates for a model, computed from the config alone (its estimateMemory).
import type { BackendCapabilities, LoadOptions, MemoryEstimate } from "../contract/backend.js";
import type { WeightsConfig } from "../contract/weights.js";
import { resolveLoadOptions } from "../contract/validate-load.js";

/**
 * The reference backend's own storage for a model of `config` loaded with `options`
 * (`KERNELS_BAD_OPTION` for options a load would refuse):
 * - `weightsBytes`: one int8 trit per ternary weight (it decodes every packing to trits), float32
 *   norms, the float32 embedding and the float32 head (counted once when tied). Not counted: the
 *   ternary scales, which depend on the file (one value per tensor, row or block).
 * - `headBytes`: the float32 `[vocab][hidden]` head (the embedding when tied).
 * - `kvBytesPerPosition`: keys and values of every layer as float32 — whatever `kvDtype` is, the
 *   reference stores the rounded values in float32, so f16 and int8 caches cost as much as f32.
 * - `scratchBytes`: the arrays one step of `preferredBatchTokens` rows keeps alive at its peak (the
 *   residual stream, norms, int8 activations and scales, q/k/v, the FFN's gate and up, the residual
 *   delta) plus a logit row for every row; small per-row float64 attention buffers are left out.
 * - `decodeReadBytes`: one decode token reads every trit once, the norms, the head and one embedding row.
 *
 * @example
 * ```ts
 * referenceMemoryEstimate(config, { contextLength: 512, maxSequences: 2 }, referenceBackend().capabilities());
 * ```
 */
export function referenceMemoryEstimate(config: WeightsConfig, options: LoadOptions, capabilities: BackendCapabilities): MemoryEstimate {
  const resolved = resolveLoadOptions(config, options, capabilities);
  const { hiddenSize: hidden, intermediateSize: inter, numLayers: layers, vocabSize: vocab } = config;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  const F32 = 4;
  // q, k, v: [qDim + 2·kvDim][hidden]; o: [hidden][qDim]; gate, up: [inter][hidden]; down: [hidden][inter]
  const tritsPerLayer = (qDim + 2 * kvDim) * hidden + hidden * qDim + 2 * inter * hidden + hidden * inter;
  // attnNorm [hidden], attnSubNorm [qDim], ffnNorm [hidden], ffnSubNorm [inter]
  const normBytes = (layers * (2 * hidden + qDim + inter) + hidden) * F32;
  const embeddingBytes = vocab * hidden * F32;
  const headBytes = vocab * hidden * F32;
  const tied = config.tiedEmbeddings;
  const weightsBytes = layers * tritsPerLayer + normBytes + embeddingBytes + (tied ? 0 : headBytes);
  const kvBytesPerPosition = 2 * layers * kvDim * F32;
  const kvBytes = resolved.maxSequences * resolved.contextLength * kvBytesPerPosition;
  const n = capabilities.preferredBatchTokens;
  // Activation scales: one per row (per-token) or per 256 values (q8k-block); counting per 256 too covers both.
  const int8Activations = (width: number): number => n * width + n * Math.ceil(width / 256) * F32;
  const scratchBytes =
    n * hidden * F32 * 3 + // x, normed, residualDelta
    n * qDim * F32 * 3 + // q, attnOut, attnNormed
    n * kvDim * F32 * 2 + // k, v
    n * inter * F32 * 2 + // gate (reused for the mixed activation), up (reused for its norm)
    Math.max(int8Activations(hidden), int8Activations(qDim), int8Activations(inter)) +
    n * hidden * F32 * 2 + // the logit rows' hidden states, normed
    n * vocab * F32; // logits
  return {
    weightsBytes,
    headBytes,
    kvBytesPerPosition,
    kvBytes,
    scratchBytes,
    totalBytes: weightsBytes + kvBytes + scratchBytes,
    decodeReadBytes: layers * tritsPerLayer + normBytes + headBytes + hidden * F32,
  };
}
