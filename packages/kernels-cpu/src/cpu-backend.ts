// createBackend(): the CPU backend — option checks, capabilities, repacking loader and the per-op entry points.
import { statSync } from "node:fs";
import { HaloError } from "@halo/errors";
import {
  KernelsErrorCode,
  STEP_OUTPUTS,
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
  type ModelWeights,
  type WeightsConfig,
  type WeightsFileRange,
  type WeightsFloatTensor,
  type WeightsTernaryTensor,
} from "@halo/kernels";
import { badOption, KernelsCpuErrorCode } from "./errors.js";
import {
  nativeBinding,
  checkStatus,
  fromNative,
  type CpuIsa,
  type NativeBinding,
  type NativeFloatDtype,
  type NativeHeadQuant,
  type NativeModelHandle,
} from "./native-binding.js";
import { CpuLoadedModel, hasContract2 } from "./cpu-loaded-model.js";
import { cpuMemoryEstimate, packedArenaBytes } from "./cpu-memory.js";
import { cpuOps } from "./cpu-ops.js";
import { cpuPacking } from "./packing.js";

/**
 * Options of {@link createBackend}.
 *
 * @example
 * ```ts
 * const backend = createBackend({ threads: 2, isa: "avx2", lmHead: "int8" });
 * ```
 */
export interface CpuBackendOptions {
  /** Worker threads (the stepping thread included). Whole number in [1, 1024]. Default: hardware threads. */
  readonly threads?: number;
  /**
   * Kernel path. Default `process.env.HALO_CPU_ISA`, else `"auto"`: the best this CPU runs (`amx` where the CPU, the
   * OS and the process permission allow it, then `avx512vnni`, `avx2`, `scalar`; `neondotprod`, `neon`, `scalar` on
   * aarch64).
   */
  readonly isa?: CpuIsa;
  /**
   * LM head storage: `"f16"` (default: the weights as stored — f16, bf16 or f32, exact; other dtypes as f32),
   * `"int8"` (per-row absmax scale: half the bytes of f16) or `"int4"` (groups of 64 with a u8 sub-scale and an f32 row
   * scale: 4.15 bits per weight at hidden 2560, about a quarter of f16's bytes). Both quantised forms have a measured
   * quality cost — see the README.
   */
  readonly lmHead?: CpuLmHead;
  /** Advise the weight arena into transparent huge pages. Default true (`HALO_CPU_HUGEPAGES=0` turns it off). */
  readonly hugePages?: boolean;
  /** Most tokens per step. Default 4096. */
  readonly maxBatchTokens?: number;
  /**
   * The sparse down lane (lossless): every down projection is also held input-major (2 bits a weight: the down
   * matrices' bytes once more, 133 MB for the 2B-4T shape, built at load: ~0.26 s there on 2 threads), and a one-row
   * step multiplies a layer's down input by reading only the weight columns of its nonzero entries when at most
   * {@link SPARSE_DOWN_MAX_DENSITY} of them are nonzero (ReLU² leaves most of them zero in trained models), the dense
   * kernel otherwise. Same logits either way. Default `process.env.HALO_CPU_SPARSE_DOWN === "1"`. Refused on the
   * `scalar`, `neon` and `neondotprod` paths (no vector kernel: it could only be slower).
   */
  readonly sparseDown?: boolean;
}

/**
 * The share of nonzero down inputs under which the sparse down lane's kernel beats the dense one, per kernel path
 * (`packages/kernels-cpu/dev/sparse_lab.cpp` on the Zen 4 VM, 2026-12-08: the 30 down matrices of the 2B-4T shape, 2
 * threads; at 30 % nonzero the sparse kernel took 0.92× the dense time with AVX-512, 0.98× with AVX2, at 20 % 0.61× and
 * 0.65×), set below that break-even to 0.25 because in a step the sparse product also pays its column list and its own
 * pool dispatch (the synthetic 2B, 68 % zeros, decoded 0–4 % slower with the lane at 0.3). `HALO_CPU_SPARSE_MAX`
 * overrides it (a lab knob).
 */
export const SPARSE_DOWN_MAX_DENSITY: Readonly<Record<string, number>> = { avx512vnni: 0.25, amx: 0.25, avx2: 0.25 };

/** The widest hidden size the int4 head's int32 SIMD lanes stay exact for (HALO_HEAD_I4_MAX_HIDDEN in halo_cpu.h). */
const INT4_HEAD_MAX_HIDDEN = 65536;

/** Refuses the int4 head for a model wider than its int32 lanes stay exact for (loadModel and estimateMemory alike). */
function checkHeadFits(headQuant: NativeHeadQuant, c: WeightsConfig): void {
  if (headQuant === "int4" && c.hiddenSize > INT4_HEAD_MAX_HIDDEN) {
    throw badOption(
      "lmHead",
      "the int4 LM head takes models with a hidden size up to 65,536",
      `hiddenSize ≤ ${INT4_HEAD_MAX_HIDDEN}`,
      c.hiddenSize,
      'Use lmHead "int8" or "f16" for this model',
    );
  }
}

/** LM head storages `createBackend` takes (see {@link CpuBackendOptions.lmHead}). */
export type CpuLmHead = "f16" | "int8" | "int4";
const LM_HEADS: readonly CpuLmHead[] = ["f16", "int8", "int4"];

const ISAS: readonly CpuIsa[] = ["auto", "scalar", "avx2", "avx512vnni", "amx", "neon", "neondotprod"];
/** Rows decoded per `decodeRows` call while repacking: bounds the int8 staging buffer to ~4 MiB. */
const STAGING_BYTES = 4 << 20;

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new HaloError(KernelsErrorCode.KERNELS_ABORTED, "model loading was cancelled", { cause: signal.reason });
}

/** f16 and bf16 tensors as their raw 16-bit patterns (copied when unaligned); anything else decoded to f32. */
function floatPayload(tensor: WeightsFloatTensor): { readonly values: Uint16Array | Float32Array; readonly dtype: NativeFloatDtype } {
  if (tensor.dtype === "f16" || tensor.dtype === "bf16") {
    const bytes = tensor.bytes();
    const values =
      bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(Uint8Array.from(bytes).buffer);
    return { values, dtype: tensor.dtype };
  }
  return { values: tensor.toFloat32(), dtype: "f32" };
}

/** An f16/bf16/f32 tensor's file range (with its dtype), when it can be mapped as is. */
function floatRange(tensor: WeightsFloatTensor, native: NativeModelHandle, field: string): (WeightsFileRange & { readonly dtype: NativeFloatDtype }) | null {
  if (tensor.dtype !== "f16" && tensor.dtype !== "bf16" && tensor.dtype !== "f32") return null;
  const range = mappable(tensor, native, field);
  return range === null ? null : { ...range, dtype: tensor.dtype };
}

/** @internal The path `auto` runs: the first (best) the native addon lists. */
export function autoIsa(isas: readonly string[]): string {
  return isas[0] ?? "scalar";
}

interface ResolvedCpuOptions {
  readonly threads: number;
  readonly isa: string;
  readonly headQuant: NativeHeadQuant;
  readonly hugePages: boolean;
  readonly maxBatchTokens: number;
  readonly sparseDown: boolean;
}

function resolveOptions(options: CpuBackendOptions, native: NativeBinding | null): ResolvedCpuOptions {
  const threads = options.threads ?? (native?.hardwareThreads() || 1);
  if (typeof threads !== "number" || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw badOption("threads", "threads must be a whole number from 1 to 1024", "an integer in [1, 1024]", threads);
  }
  const isa = options.isa ?? ((process.env.HALO_CPU_ISA as CpuIsa | undefined) || "auto");
  if (!ISAS.includes(isa)) throw badOption("isa", "unknown instruction-set path", ISAS.join(", "), isa);
  const lmHead = options.lmHead ?? "f16";
  if (!LM_HEADS.includes(lmHead)) throw badOption("lmHead", "unknown LM head storage", LM_HEADS.join(", "), lmHead);
  const maxBatchTokens = options.maxBatchTokens ?? 4096;
  if (!Number.isSafeInteger(maxBatchTokens) || maxBatchTokens < 1)
    throw badOption("maxBatchTokens", "maxBatchTokens must be a whole number ≥ 1", "≥ 1", maxBatchTokens);
  const hugePages = options.hugePages ?? process.env.HALO_CPU_HUGEPAGES !== "0";
  if (native !== null && isa !== "auto" && !native.isas().includes(isa)) {
    throw new HaloError(KernelsCpuErrorCode.KERNELS_CPU_ISA_UNSUPPORTED, `this CPU cannot run the ${isa} kernels`, {
      field: "isa",
      expected: native.isas().join(", "),
      actual: isa,
      hint: "Pick one of the listed paths, or leave isa (and HALO_CPU_ISA) unset for the best available",
    });
  }
  const sparseDown = options.sparseDown ?? process.env.HALO_CPU_SPARSE_DOWN === "1";
  if (typeof sparseDown !== "boolean") throw badOption("sparseDown", "sparseDown must be true or false", "a boolean", sparseDown);
  return { threads, isa, headQuant: lmHead === "f16" ? "none" : lmHead, hugePages, maxBatchTokens, sparseDown };
}

/**
 * The sparse down lane's density for a kernel path: {@link SPARSE_DOWN_MAX_DENSITY}, or `HALO_CPU_SPARSE_MAX` (in (0, 1]).
 * A path without a vector kernel is refused: the lane could only make it slower.
 */
function sparseDownDensity(isa: string): number {
  const measured = SPARSE_DOWN_MAX_DENSITY[isa];
  if (measured === undefined) {
    throw badOption(
      "sparseDown",
      `the sparse down lane has no vector kernel on the ${isa} path (it could only be slower there)`,
      Object.keys(SPARSE_DOWN_MAX_DENSITY).join(", "),
      isa,
      "Leave sparseDown off (and HALO_CPU_SPARSE_DOWN unset) on this CPU",
    );
  }
  const knob = process.env.HALO_CPU_SPARSE_MAX;
  if (knob === undefined || knob === "") return measured;
  const value = Number(knob);
  if (!(value > 0 && value <= 1)) throw badOption("HALO_CPU_SPARSE_MAX", "HALO_CPU_SPARSE_MAX must be a share in (0, 1]", "(0, 1]", knob);
  return value;
}

/** An addon built before a feature this load needs (a stale prebuild). */
function staleAddon(field: string): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_UNAVAILABLE, `the CPU backend's native addon predates ${field}`, {
    field,
    expected: `an addon built from this package's sources (it has ${field})`,
    actual: "a stale prebuild or build",
    hint: "Rebuild it: pnpm --filter @halo/kernels-cpu run build:native",
  });
}

const ROLE_QKV = 0;
const ROLE_O = 1;
const ROLE_GATE_UP = 2;
const ROLE_DOWN = 3;

/**
 * Ternary packings the native loader repacks straight from `bytes()` (one call per tensor, rows
 * split across the pool; codes `11` read as 0 like their decoders, int8 values outside {-1, 0, 1}
 * refused; `halo-i2x256` is the kernels' own layout, only checked and copied — or mapped, see `mappable`);
 * every other packing (`tq1_0`, the seed packings, …) goes through `decodeRows` in int8 chunks.
 */
/** The kernels' own layout ({@link cpuPacking}, 64-byte blocks of 256 codes): mapped from the file with no copy when it comes from one. */
const KERNEL_PACKING = cpuPacking.packing;
const NATIVE_PACKINGS: ReadonlySet<string> = new Set(["halo-v2", "tq2_0", "int8", "i2_s", "hf-packed", KERNEL_PACKING]);

/**
 * The tensor's file range when the backend can map it (a file source, and an addon that has the map calls),
 * checked against the file so that a file that vanished or shrank since it was opened gets a precise error
 * rather than the binding's generic refusal.
 */
function mappable(tensor: { fileRange?(): WeightsFileRange | null }, native: NativeModelHandle, field: string): WeightsFileRange | null {
  if (typeof native.mapCodes !== "function" || typeof native.mapFloat !== "function" || process.env.HALO_CPU_MAP === "0") return null;
  const range = tensor.fileRange?.() ?? null;
  if (range === null) return null;
  let size: number;
  try {
    size = statSync(range.path).size;
  } catch (cause) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "cannot map the model file", {
      field,
      expected: `a readable file at ${range.path}`,
      actual: (cause as NodeJS.ErrnoException).code ?? String(cause),
      hint: "The file was moved or deleted after it was opened: open the model again",
      cause,
    });
  }
  if (range.offset + range.length > size) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "the tensor's bytes lie past the end of the model file", {
      field,
      expected: `at least ${range.offset + range.length} bytes in ${range.path}`,
      actual: `${size} bytes`,
      hint: "The file was truncated or replaced after it was opened: open the model again",
    });
  }
  return range;
}

async function packMatrix(native: NativeModelHandle, layer: number, role: number, parts: readonly WeightsTernaryTensor[], field: string): Promise<void> {
  const cols = parts[0]!.cols;
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const scales = fuseScales(parts.map((p) => ({ rows: p.rows, cols: p.cols, scales: nativeScales(p.scale, p.rows, p.cols) })));
  checkStatus(native.setMatrix(layer, role, rows, cols, scales.block, scales.values), "allocating a weight matrix", field);
  const chunkRows = Math.max(1, Math.floor(STAGING_BYTES / cols));
  let staging: Int8Array | undefined;
  let offset = 0;
  for (const part of parts) {
    const range = part.packing === KERNEL_PACKING ? mappable(part, native, field) : null;
    if (range !== null) {
      checkStatus(native.mapCodes!(layer, role, offset, range.path, range.offset, range.length, part.rows), `mapping ${KERNEL_PACKING} rows`, field);
      offset += part.rows;
      continue;
    }
    // An addon built before packCodes existed (a stale prebuild) falls back to decodeRows.
    if (NATIVE_PACKINGS.has(part.packing) && typeof native.packCodes === "function") {
      checkStatus(native.packCodes(layer, role, offset, part.bytes(), part.rows, part.packing), `packing ${part.packing} rows`, field);
      offset += part.rows;
      continue;
    }
    for (let start = 0; start < part.rows; start += chunkRows) {
      const count = Math.min(chunkRows, part.rows - start);
      staging ??= new Int8Array(Math.min(chunkRows, Math.max(...parts.map((p) => p.rows))) * cols);
      const view = staging.subarray(0, count * cols);
      part.decodeRows(start, count, view);
      checkStatus(native.packRows(layer, role, offset + start, view, count), "packing ternary rows", field);
    }
    offset += part.rows;
  }
}

/**
 * Makes the CPU backend: C++ kernels through node-addon-api with the SIMD path chosen at run time
 * (AVX-512 VNNI, AVX2, or scalar), a persistent thread pool, ternary weights repacked once at
 * load into 2-bit `vpdpbusd`-ready blocks (q|k|v and gate|up fused), weights in huge pages, an f16
 * (or int8 / int4) LM head and an f32/f16/int8 KV cache. One `step` (or `forward`) is one native
 * async call; `forward` computes argmax / top-k natively and returns hidden rows, loaded models copy,
 * export and import a sequence's KV, and `estimateMemory` sizes a load before it happens.
 *
 * @example
 * ```ts
 * import { createBackend } from "@halo/kernels-cpu";
 * import { synthModel } from "@halo/h1b-format";
 * const backend = createBackend({ threads: 2 });
 * const model = await backend.loadModel(synthModel({ shape: "tiny" }), { contextLength: 256, kvDtype: "f16" });
 * const slot = model.allocateSequence();
 * const logits = await model.step({ tokens: Int32Array.of(1), positions: Int32Array.of(0),
 *   slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
 * const { argmax } = await model.forward!({ tokens: Int32Array.of(7), positions: Int32Array.of(1),
 *   slots: Int32Array.of(slot), logitRows: Int32Array.of(0), output: "argmax" });
 * const estimate = backend.estimateMemory!(model.config, { contextLength: 256, kvDtype: "f16" });
 * ```
 */
export function createBackend(options: CpuBackendOptions = {}): Backend {
  let native: NativeBinding | null = null;
  let missing: HaloError | null = null;
  try {
    native = nativeBinding();
  } catch (error) {
    missing = error as HaloError;
  }
  const resolved = resolveOptions(options, native);
  // An addon built before contract 2 (a stale prebuild) has no native argmax, top-k, hidden rows or slot transfers.
  const contract2 = native !== null && hasContract2(native);
  const capabilities: BackendCapabilities = {
    architectures: ["bitnet"],
    activations: ["relu2", "silu"],
    nativePackings: [],
    repackedPackings: "any",
    floatDtypes: "any",
    kvDtypes: ["f16", "f32", "int8"],
    activationQuants: ["per-token", "q8k-block"],
    maxBatchTokens: resolved.maxBatchTokens,
    preferredBatchTokens: Math.min(resolved.maxBatchTokens, 512),
    outputs: contract2 ? [...STEP_OUTPUTS] : ["logits"],
    hiddenRows: contract2,
    copySequence: contract2,
    sequenceTransfer: contract2,
    maxSequences: 256,
    maxHeadDim: Infinity,
  };
  const isaName = resolved.isa === "auto" && native !== null ? autoIsa(native.isas()) : resolved.isa;
  const sparseDensity = resolved.sparseDown ? sparseDownDensity(isaName) : 0;
  const backend: Backend = {
    name: "cpu",
    async probe(): Promise<BackendProbe> {
      if (native === null) return { available: false, reason: missing?.message ?? "native addon missing" };
      const lane = resolved.sparseDown ? `, sparse down under ${Math.round(sparseDensity * 100)} % nonzero inputs` : "";
      return { available: true, reason: `native ${isaName} kernels, ${resolved.threads} threads${lane} (CPU has ${native.isas().join(", ")})` };
    },
    capabilities: () => capabilities,
    estimateMemory(config: WeightsConfig, loadOptions: LoadOptions): MemoryEstimate {
      const options = resolveLoadOptions(config, loadOptions, capabilities);
      checkHeadFits(resolved.headQuant, config);
      return cpuMemoryEstimate(config, {
        ...options,
        headQuant: resolved.headQuant,
        batchTokens: capabilities.preferredBatchTokens,
        sparseDown: resolved.sparseDown,
      });
    },
    async loadModel(weights: ModelWeights, loadOptions: LoadOptions): Promise<LoadedModel> {
      checkAborted(loadOptions.signal);
      if (native === null) {
        throw new HaloError(KernelsErrorCode.KERNELS_UNAVAILABLE, "the CPU backend's native addon is not available", {
          cause: missing,
          hint: missing?.message ?? "",
        });
      }
      const options = validateLoad(weights, loadOptions, capabilities);
      const c = weights.config;
      checkHeadFits(resolved.headQuant, c);
      const arenaBytes = packedArenaBytes(c);
      let model: NativeModelHandle;
      try {
        model = new native.NativeModel(
          {
            hidden: c.hiddenSize,
            intermediate: c.intermediateSize,
            layers: c.numLayers,
            heads: c.numHeads,
            kvHeads: c.numKvHeads,
            headDim: c.headDim,
            vocab: c.vocabSize,
            context: options.contextLength,
            maxSequences: options.maxSequences,
            ropeTheta: c.ropeTheta,
            eps: c.rmsNormEps,
            relu2: c.activation === "relu2",
            kvDtype: options.kvDtype,
            perToken: options.activationQuant === "per-token",
          },
          isaName,
          resolved.threads,
          arenaBytes,
          resolved.hugePages,
        );
      } catch (error) {
        throw fromNative(error, "creating the native model");
      }
      try {
        const total = c.numLayers + 1;
        // f16/bf16/f32 embedding and head in a file are borrowed from its mapping; anything else is decoded and copied.
        const embeddingRange = floatRange(weights.tokenEmbedding, model, "tokenEmbedding");
        if (embeddingRange !== null) {
          checkStatus(
            model.mapFloat!("embedding", embeddingRange.path, embeddingRange.offset, embeddingRange.length, embeddingRange.dtype, "none"),
            "mapping the token embedding",
            "tokenEmbedding",
          );
        } else {
          const embedding = floatPayload(weights.tokenEmbedding);
          checkStatus(model.setEmbedding(embedding.values, embedding.dtype === "bf16"), "copying the token embedding", "tokenEmbedding");
        }
        if (c.tiedEmbeddings || weights.lmHead === null) {
          checkStatus(model.setHead("tied", null, resolved.headQuant), "preparing the LM head", "tokenEmbedding");
        } else {
          const headRange = floatRange(weights.lmHead, model, "lmHead");
          if (headRange !== null) {
            checkStatus(
              model.mapFloat!("head", headRange.path, headRange.offset, headRange.length, headRange.dtype, resolved.headQuant),
              "mapping the LM head",
              "lmHead",
            );
          } else {
            const head = floatPayload(weights.lmHead);
            checkStatus(model.setHead(head.dtype, head.values, resolved.headQuant), "preparing the LM head", "lmHead");
          }
        }
        checkStatus(model.setNorm(-1, 0, weights.outputNorm.toFloat32()), "copying the output norm", "outputNorm");
        loadOptions.onProgress?.({ done: 1, total });
        for (let l = 0; l < c.numLayers; l++) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          checkAborted(loadOptions.signal);
          const layer = weights.layers[l]!;
          const norms = [layer.attnNorm, layer.attnSubNorm, layer.ffnNorm, layer.ffnSubNorm];
          norms.forEach((norm, which) => checkStatus(model.setNorm(l, which, norm.toFloat32()), "copying a norm", `layers[${l}]`));
          await packMatrix(model, l, ROLE_QKV, [layer.q, layer.k, layer.v], `layers[${l}].q|k|v`);
          await packMatrix(model, l, ROLE_O, [layer.o], `layers[${l}].o`);
          await packMatrix(model, l, ROLE_GATE_UP, [layer.gate, layer.up], `layers[${l}].gate|up`);
          await packMatrix(model, l, ROLE_DOWN, [layer.down], `layers[${l}].down`);
          loadOptions.onProgress?.({ done: l + 2, total });
        }
        if (resolved.sparseDown) {
          if (model.buildSparseDown === undefined) throw staleAddon("sparseDown");
          checkStatus(model.buildSparseDown(sparseDensity), "building the sparse down layout", "sparseDown");
        }
      } catch (error) {
        model.dispose();
        throw fromNative(error, "loading");
      }
      return new CpuLoadedModel(c, options, model, resolved.maxBatchTokens);
    },
  };
  if (native !== null) Object.assign(backend, { ops: cpuOps(native, isaName, resolved.threads) });
  return backend;
}
