// createBackend(): the GPU backend — options, capabilities, the memory check and the loader that puts a model on the device.
import { HaloError } from "@halo/errors";
import {
  KernelsErrorCode,
  fuseScales,
  nativeScales,
  resolveLoadOptions,
  validateLoad,
  type Backend,
  type BackendCapabilities,
  type BackendProbe,
  type LoadOptions,
  type LoadedModel,
  type MemoryEstimate,
  type NativeScales,
  type ModelWeights,
  type WeightsConfig,
  type WeightsFloatTensor,
  type WeightsTernaryTensor,
} from "@halo/kernels";
import { badOption, KernelsHipErrorCode } from "./errors.js";
import {
  checkStatus,
  codeDirectory,
  fromNative,
  MatrixRole,
  NativeStatus,
  statusError,
  tryNativeBinding,
  type GpuModelHandle,
  type HipDevice,
  type HipNativeBinding,
  type NativeFloatDtype,
} from "./native-binding.js";
import { HipLoadedModel } from "./hip-loaded-model.js";
import { ATTN_TILE, hipMemoryEstimate, kvBytesPerPosition } from "./hip-memory.js";
import { checkScaleBlock } from "./scales.js";
import { gpuPacking, haloG2RowBytes } from "./gpu-packing.js";
import { probeHip, resolveDevice } from "./hip-probe.js";
import { toF16Bits } from "./f16.js";

/**
 * Options of {@link createBackend}.
 *
 * @example
 * ```ts
 * const backend = createBackend({ device: "hip", maxBatchTokens: 1024 });
 * ```
 */
export interface HipBackendOptions {
  /**
   * Which device to open. Default `process.env.HALO_HIP_DEVICE`, else `"auto"`: HIP (AMD) first, then CUDA
   * (NVIDIA). `"emulator"` runs the same kernels on the CPU — correct and very slow, for tests; never chosen by `"auto"`.
   */
  readonly device?: HipDevice;
  /**
   * Most tokens per step, and the rows of the step buffers allocated at load (a logit row of `vocabSize` floats per
   * row among them). Whole number in [1, 65536]. Default 512.
   */
  readonly maxBatchTokens?: number;
  /** Replay recorded launch sequences (HIP / CUDA graphs) for repeated step shapes. Default true. */
  readonly graphs?: boolean;
}

/** Default {@link HipBackendOptions.maxBatchTokens}. */
const DEFAULT_MAX_BATCH_TOKENS = 512;
const MAX_BATCH_TOKENS_LIMIT = 65536;
/** Rows decoded per `decodeRows` call while packing: bounds the int8 staging buffer to ~4 MiB. */
const STAGING_BYTES = 4 << 20;
/** The hint of every refusal another backend handles. */
const USE_CPU = 'Load this model with the cpu backend (backend: "cpu"), which supports it';

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new HaloError(KernelsErrorCode.KERNELS_ABORTED, "model loading was cancelled", { cause: signal.reason });
}

interface ResolvedHipOptions {
  readonly device: HipDevice;
  readonly maxBatchTokens: number;
  readonly graphs: boolean;
}

function resolveOptions(options: HipBackendOptions): ResolvedHipOptions {
  if (typeof options !== "object" || options === null) throw badOption("options", "createBackend takes an options object", "an object", options);
  const device = resolveDevice(options.device);
  const maxBatchTokens = options.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS;
  if (!Number.isSafeInteger(maxBatchTokens) || maxBatchTokens < 1 || maxBatchTokens > MAX_BATCH_TOKENS_LIMIT) {
    throw badOption(
      "maxBatchTokens",
      `maxBatchTokens must be a whole number from 1 to ${MAX_BATCH_TOKENS_LIMIT}`,
      `[1, ${MAX_BATCH_TOKENS_LIMIT}]`,
      maxBatchTokens,
    );
  }
  const graphs = options.graphs ?? true;
  if (typeof graphs !== "boolean") throw badOption("graphs", "graphs must be true or false", "a boolean", graphs);
  return { device, maxBatchTokens, graphs };
}

/**
 * Refusals of what the contract allows but these kernels do not run: the int8 KV cache, Q8_K activations and heads
 * wider than 256 — `KERNELS_UNSUPPORTED_CONFIG` naming the cpu backend, before the generic option checks.
 */
function refuseUnsupported(c: WeightsConfig, options: LoadOptions): void {
  if (options.kvDtype === "int8") {
    throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "the GPU backend keeps the KV cache in f16 or f32, not int8", {
      field: "kvDtype",
      expected: "f16 or f32",
      actual: "int8",
      hint: `Load with kvDtype "f16" (half of f32's bytes), or: ${USE_CPU}`,
    });
  }
  if (options.activationQuant === "q8k-block") {
    throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "the GPU backend quantises activations per token only", {
      field: "activationQuant",
      expected: "per-token",
      actual: "q8k-block",
      hint: `Load with activationQuant "per-token" (BitNet's own quantiser), or, for llama.cpp parity: ${USE_CPU}`,
    });
  }
  if (Number.isSafeInteger(c.headDim) && c.headDim > 256) {
    throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "the GPU attention kernels take heads up to 256 wide", {
      field: "headDim",
      expected: "≤ 256 (HALO_MAX_HEAD_DIM)",
      actual: c.headDim,
      hint: USE_CPU,
    });
  }
}

/** The attention grid holds one block per {@link ATTN_TILE} positions in a dimension of at most 65535 blocks. */
const MAX_CONTEXT = 65535 * ATTN_TILE;

/** A contextLength past what the attention grid covers (the native check_config refuses it too, later). */
function refuseLongContext(contextLength: number): void {
  if (contextLength > MAX_CONTEXT) {
    throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "the GPU attention kernels cover at most 4194240 positions", {
      field: "contextLength",
      expected: `≤ ${MAX_CONTEXT} (65535 attention blocks of ${ATTN_TILE} positions)`,
      actual: contextLength,
      hint: `Load with a smaller contextLength, or: ${USE_CPU}`,
    });
  }
}

/** One fused matrix of a layer as the device holds it: its parts in row order and their scales stacked. */
interface MatrixPlan {
  readonly layer: number;
  readonly role: number;
  readonly field: string;
  readonly parts: readonly WeightsTernaryTensor[];
  readonly rows: number;
  readonly cols: number;
  readonly scales: NativeScales;
}

function planMatrices(weights: ModelWeights): MatrixPlan[] {
  const plans: MatrixPlan[] = [];
  weights.layers.forEach((layer, l) => {
    const roles: Array<[number, string, WeightsTernaryTensor[]]> = [
      [MatrixRole.QKV, `layers[${l}].q|k|v`, [layer.q, layer.k, layer.v]],
      [MatrixRole.O, `layers[${l}].o`, [layer.o]],
      [MatrixRole.GATE_UP, `layers[${l}].gate|up`, [layer.gate, layer.up]],
      [MatrixRole.DOWN, `layers[${l}].down`, [layer.down]],
    ];
    for (const [role, field, parts] of roles) {
      const cols = parts[0]!.cols;
      const scales = fuseScales(parts.map((p) => ({ rows: p.rows, cols: p.cols, scales: nativeScales(p.scale, p.rows, p.cols) })));
      checkScaleBlock(scales, cols, field);
      plans.push({ layer: l, role, field, parts, rows: parts.reduce((n, p) => n + p.rows, 0), cols, scales });
    }
  });
  return plans;
}

/** Bytes a weight of a float table takes on the device: f32 as stored, everything else as 16 bits. */
function tableWidth(tensor: WeightsFloatTensor): number {
  return tensor.dtype === "f32" ? 4 : 2;
}

/**
 * A float table as the device holds it: f16 and bf16 as their 16-bit patterns (copied when unaligned), f32 as is, and
 * any other dtype (q8_0, …) decoded with `toFloat32` and rounded to f16.
 */
function floatPayload(tensor: WeightsFloatTensor): { readonly values: Uint16Array | Float32Array; readonly dtype: NativeFloatDtype } {
  if (tensor.dtype === "f16" || tensor.dtype === "bf16") {
    const bytes = tensor.bytes();
    const values =
      bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(Uint8Array.from(bytes).buffer);
    return { values, dtype: tensor.dtype };
  }
  if (tensor.dtype === "f32") return { values: tensor.toFloat32(), dtype: "f32" };
  return { values: toF16Bits(tensor.toFloat32()), dtype: "f16" };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** HIP_OUT_OF_MEMORY before anything is allocated: what the model needs, what is free, and the contextLength that would fit. */
function checkFits(
  estimate: MemoryEstimate,
  freeBytes: number | undefined,
  c: WeightsConfig,
  options: { contextLength: number; maxSequences: number; kvDtype: "f16" | "f32" },
): void {
  if (freeBytes === undefined || estimate.totalBytes <= freeBytes) return;
  const perSequencePosition = kvBytesPerPosition(c, options.kvDtype);
  const room = freeBytes - estimate.weightsBytes - estimate.scratchBytes;
  const fitting = Math.floor(room / (options.maxSequences * perSequencePosition));
  const advice =
    fitting >= 1
      ? `Load with contextLength ≤ ${fitting} at maxSequences ${options.maxSequences}` +
        (options.maxSequences > 1
          ? `, or fewer sequences (maxSequences 1 fits contextLength ≤ ${Math.min(c.maxPositionEmbeddings, Math.floor(room / perSequencePosition))})`
          : "") +
        (options.kvDtype === "f32" ? ', or kvDtype "f16" (half the KV bytes)' : "")
      : "The weights and step buffers alone do not fit: free GPU memory held by other processes, lower maxBatchTokens, or use the cpu backend";
  throw new HaloError(KernelsHipErrorCode.HIP_OUT_OF_MEMORY, "the model does not fit the GPU's free memory", {
    field: "contextLength",
    expected: `at most ${gib(freeBytes)} (${freeBytes} bytes free now)`,
    actual:
      `${gib(estimate.totalBytes)}: weights ${gib(estimate.weightsBytes)}, KV ${gib(estimate.kvBytes)} ` +
      `(${options.maxSequences} × ${options.contextLength} positions × ${perSequencePosition} bytes), step buffers ${gib(estimate.scratchBytes)}`,
    hint: advice,
  });
}

async function uploadMatrix(model: GpuModelHandle, plan: MatrixPlan): Promise<void> {
  const { layer, role, field, cols } = plan;
  const block = plan.scales.block === cols ? 0 : plan.scales.block;
  checkStatus(model, model.setMatrix(layer, role, plan.rows, cols, block, plan.scales.values), "allocating a weight matrix", field);
  const chunkRows = Math.max(1, Math.floor(STAGING_BYTES / cols));
  let staging: Int8Array | undefined;
  let offset = 0;
  for (const part of plan.parts) {
    if (part.packing === gpuPacking.packing) {
      // The kernels' own layout: uploaded as stored, no repacking (the native side still refuses a code 3).
      const bytes = part.bytes();
      const expected = part.rows * haloG2RowBytes(cols);
      if (bytes.byteLength !== expected) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, "a halo-g2 tensor has the wrong byte length", {
          field,
          expected: `${part.rows} rows × ${haloG2RowBytes(cols)} bytes = ${expected}`,
          actual: bytes.byteLength,
          hint: "The tensor's data is truncated or not halo-g2: download or convert the model file again",
        });
      }
      checkStatus(model, model.uploadG2(layer, role, offset, bytes, part.rows), "uploading halo-g2 rows", field);
      offset += part.rows;
      continue;
    }
    for (let start = 0; start < part.rows; start += chunkRows) {
      const count = Math.min(chunkRows, part.rows - start);
      staging ??= new Int8Array(Math.min(chunkRows, Math.max(...plan.parts.map((p) => p.rows))) * cols);
      const view = staging.subarray(0, count * cols);
      part.decodeRows(start, count, view);
      checkStatus(model, model.packRows(layer, role, offset + start, view, count), "packing ternary rows", field);
    }
    offset += part.rows;
  }
}

/** What the backend accepts, for step buffers of `maxBatchTokens` rows. */
function hipCapabilities(maxBatchTokens: number): BackendCapabilities {
  return {
    architectures: ["bitnet"],
    activations: ["relu2", "silu"],
    nativePackings: [gpuPacking.packing],
    repackedPackings: "any",
    // f16, bf16 and f32 tables are held as stored; any other dtype (q8_0, …) is decoded and held as f16.
    floatDtypes: "any",
    kvDtypes: ["f16", "f32"],
    activationQuants: ["per-token"],
    maxBatchTokens,
    preferredBatchTokens: maxBatchTokens,
    outputs: ["logits", "argmax", "top-k"],
    hiddenRows: true,
    copySequence: true,
    sequenceTransfer: true,
    maxSequences: 256,
    maxHeadDim: 256,
  };
}

/**
 * Options of {@link estimateHipMemory}: the load options, the backend's `maxBatchTokens`, and the dtypes the tables
 * are stored in (a model's config alone does not say).
 *
 * @example
 * ```ts
 * const options: HipMemoryEstimateOptions = { contextLength: 4096, maxSequences: 4, kvDtype: "f16", embeddingDtype: "bf16" };
 * ```
 */
export interface HipMemoryEstimateOptions extends LoadOptions {
  /** Rows of the step buffers ({@link HipBackendOptions.maxBatchTokens}). Default 512. */
  readonly maxBatchTokens?: number;
  /** Dtype of the token embedding as stored: `f32` is held as 4 bytes a weight, anything else as 2. Default `"f16"`. */
  readonly embeddingDtype?: string;
  /** Dtype of an untied LM head as stored (as for the embedding). Default `"f16"`. */
  readonly headDtype?: string;
}

/**
 * The device memory the GPU backend allocates for a model of `config`, without loading it or
 * opening a device — what `backend.estimateMemory` returns, and what `loadModel` checks against
 * the device's free memory first. `weightsBytes`: the halo-g2 matrices (`rows · ceil(K / 64) · 16`
 * bytes each), one f32 scale a row, the norms, the embedding and an untied head as held (a tied
 * head is the embedding, counted once; `headBytes` is then the embedding's bytes). `kvBytes`:
 * `2 · layers · contextLength · kvHeads · headDim · (2 for f16, 4 for f32) · maxSequences` (every
 * slot is allocated at load). `scratchBytes`: the step buffers for `maxBatchTokens` rows and the
 * RoPE table. Refuses what a load refuses (`KERNELS_UNSUPPORTED_CONFIG` for int8 KV and Q8_K
 * activations, `KERNELS_BAD_OPTION` for bad numbers).
 *
 * @example
 * ```ts
 * import { estimateHipMemory } from "@halo/kernels-hip";
 * const e = estimateHipMemory(model.config, { contextLength: 4096, maxSequences: 4, kvDtype: "f16" });
 * console.log(`${(e.totalBytes / 2 ** 30).toFixed(1)} GiB on the GPU`);
 * ```
 */
export function estimateHipMemory(config: WeightsConfig, options: HipMemoryEstimateOptions): MemoryEstimate {
  const maxBatchTokens = options.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS;
  if (!Number.isSafeInteger(maxBatchTokens) || maxBatchTokens < 1 || maxBatchTokens > MAX_BATCH_TOKENS_LIMIT) {
    throw badOption(
      "maxBatchTokens",
      `maxBatchTokens must be a whole number from 1 to ${MAX_BATCH_TOKENS_LIMIT}`,
      `[1, ${MAX_BATCH_TOKENS_LIMIT}]`,
      maxBatchTokens,
    );
  }
  refuseUnsupported(config, options);
  const resolved = resolveLoadOptions(config, options, hipCapabilities(maxBatchTokens));
  return hipMemoryEstimate(config, {
    ...resolved,
    kvDtype: resolved.kvDtype as "f16" | "f32",
    batchTokens: maxBatchTokens,
    embeddingBytesPerWeight: options.embeddingDtype === "f32" ? 4 : 2,
    headBytesPerWeight: options.headDtype === "f32" ? 4 : 2,
  });
}

/**
 * Makes the GPU backend: one kernel source compiled for AMD (HIP), NVIDIA (CUDA) and a CPU
 * emulator. Ternary weights live on the device in halo-g2 (2 bits a weight; a `.halo` file stored
 * in it uploads with no repacking, anything else is packed at load), q|k|v and gate|up fused; the
 * KV cache (f16 or f32) of every slot is allocated at load; a step is one upload of its inputs, 11
 * launches a layer (replayed as a graph for a repeated shape) and one download of the logits — or,
 * for `forward` with `output: "argmax"` / `"top-k"` (k ≤ 64), of the ids only. `loadModel` checks
 * {@link Backend.estimateMemory} against the device's free memory before allocating.
 *
 * @example
 * ```ts
 * import { createBackend } from "@halo/kernels-hip";
 * import { synthModel } from "@halo/h1b-format";
 * const backend = createBackend({ device: "emulator" }); // the CPU emulator; "auto" opens a GPU
 * console.log((await backend.probe()).reason); // "CPU emulator (tests only; slow)"
 * const model = await backend.loadModel(synthModel({ shape: "tiny" }), { contextLength: 64, kvDtype: "f16" });
 * const slot = model.allocateSequence();
 * const { argmax } = await model.forward!({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(0, 1),
 *   slots: Int32Array.of(slot, slot), logitRows: Int32Array.of(1), output: "argmax" });
 * ```
 */
export function createBackend(options: HipBackendOptions = {}): Backend {
  const resolved = resolveOptions(options);
  const capabilities = hipCapabilities(resolved.maxBatchTokens);
  return {
    name: "hip",
    async probe(): Promise<BackendProbe> {
      return probeHip(resolved.device);
    },
    capabilities: () => capabilities,
    estimateMemory(config: WeightsConfig, loadOptions: LoadOptions): MemoryEstimate {
      return estimateHipMemory(config, { ...loadOptions, maxBatchTokens: resolved.maxBatchTokens });
    },
    async loadModel(weights: ModelWeights, loadOptions: LoadOptions): Promise<LoadedModel> {
      checkAborted(loadOptions.signal);
      // Everything the weights and options alone decide is refused first, the same with or without the addon.
      refuseUnsupported(weights.config, loadOptions);
      const options = validateLoad(weights, loadOptions, capabilities);
      refuseLongContext(options.contextLength);
      const kvDtype = options.kvDtype as "f16" | "f32";
      const c = weights.config;
      const plans = planMatrices(weights);
      const { native, missing } = tryNativeBinding();
      if (native === null) {
        throw new HaloError(KernelsErrorCode.KERNELS_UNAVAILABLE, "the GPU backend's native addon is not available", { cause: missing, hint: missing.message });
      }
      const estimate = hipMemoryEstimate(c, {
        ...options,
        kvDtype,
        batchTokens: resolved.maxBatchTokens,
        embeddingBytesPerWeight: tableWidth(weights.tokenEmbedding),
        headBytesPerWeight: weights.lmHead === null ? 2 : tableWidth(weights.lmHead),
        scaleValues: plans.reduce((n, p) => n + p.scales.values.length, 0),
      });
      const model = openModel(native, resolved, c, options.contextLength, options.maxSequences, kvDtype, estimate);
      try {
        const total = c.numLayers + 1;
        const embedding = floatPayload(weights.tokenEmbedding);
        checkStatus(model, model.setEmbedding(embedding.values, embedding.dtype), "uploading the token embedding", "tokenEmbedding");
        if (c.tiedEmbeddings || weights.lmHead === null) {
          checkStatus(model, model.setHead("tied", null), "preparing the LM head", "tokenEmbedding");
        } else {
          const head = floatPayload(weights.lmHead);
          checkStatus(model, model.setHead(head.dtype, head.values), "uploading the LM head", "lmHead");
        }
        checkStatus(model, model.setNorm(-1, 0, weights.outputNorm.toFloat32()), "uploading the output norm", "outputNorm");
        loadOptions.onProgress?.({ done: 1, total });
        for (let l = 0; l < c.numLayers; l++) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          checkAborted(loadOptions.signal);
          const layer = weights.layers[l]!;
          const norms = [layer.attnNorm, layer.attnSubNorm, layer.ffnNorm, layer.ffnSubNorm];
          norms.forEach((norm, which) => checkStatus(model, model.setNorm(l, which, norm.toFloat32()), "uploading a norm", `layers[${l}]`));
          for (const plan of plans) if (plan.layer === l) await uploadMatrix(model, plan);
          loadOptions.onProgress?.({ done: l + 2, total });
        }
        finalizeModel(model);
      } catch (error) {
        model.dispose();
        throw fromNative(error, "loading");
      }
      return new HipLoadedModel(c, options, model, resolved.maxBatchTokens);
    },
  };
}

/**
 * @internal Finalizes a native model whose tensors were all sent: allocates the KV cache and step buffers. A NOT_READY
 * refusal means a tensor (or some of its rows) never reached the device — the model never finished loading, which is
 * a weights problem, not a disposed model.
 */
export function finalizeModel(model: GpuModelHandle): void {
  const status = model.finalize();
  if (status === NativeStatus.NOT_READY) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, "loading: the model never finished loading: the device refused to finalize it", {
      expected: "every matrix row, norm, the embedding and the LM head sent before finalize",
      actual: model.lastError(),
      hint:
        "A tensor's parts do not cover the rows its config asks for: convert or download the model file again; " +
        "if it is intact, report this as a bug in @halo/kernels-hip with the message",
    });
  }
  checkStatus(model, status, "allocating the KV cache and step buffers");
}

/** Probes the device for its free memory, refuses a model that cannot fit, then opens the native model on it. */
function openModel(
  native: HipNativeBinding,
  resolved: ResolvedHipOptions,
  c: WeightsConfig,
  contextLength: number,
  maxSequences: number,
  kvDtype: "f16" | "f32",
  estimate: MemoryEstimate,
): GpuModelHandle {
  const directory = codeDirectory();
  let probe;
  try {
    probe = native.probe(resolved.device, directory);
  } catch (error) {
    throw fromNative(error, "probing the GPU");
  }
  if (!probe.available) throw statusError(probe.status, `opening the ${resolved.device} device`, probe.reason, "device");
  checkFits(estimate, probe.freeBytes, c, { contextLength, maxSequences, kvDtype });
  let model: GpuModelHandle;
  try {
    model = new native.GpuModel(
      {
        hidden: c.hiddenSize,
        intermediate: c.intermediateSize,
        layers: c.numLayers,
        heads: c.numHeads,
        kvHeads: c.numKvHeads,
        headDim: c.headDim,
        vocab: c.vocabSize,
        context: contextLength,
        maxSequences,
        maxBatchTokens: resolved.maxBatchTokens,
        ropeTheta: c.ropeTheta,
        eps: c.rmsNormEps,
        relu2: c.activation === "relu2",
        kvDtype,
        graphs: resolved.graphs,
      },
      resolved.device,
      directory,
    );
  } catch (error) {
    throw fromNative(error, "creating the native model");
  }
  const status = model.openStatus();
  if (status !== 0) {
    const error = statusError(status, `opening the ${resolved.device} device`, model.lastError(), "device");
    model.dispose();
    throw error;
  }
  return model;
}
