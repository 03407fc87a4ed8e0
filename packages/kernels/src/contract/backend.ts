// The backend contract: what every backend (reference, cpu, hip, xdna) answers and how a model is loaded.
import type { KernelOps } from "./kernel-ops.js";
import type { LoadedModel, StepOutput } from "./loaded-model.js";
import type { ModelWeights, WeightsConfig } from "./weights.js";
import type { PackingCodec } from "./packing.js";

/**
 * Version of this contract. A backend package declares the version it implements
 * ({@link BackendFactory.contractVersion}); the engine refuses a factory built for another version
 * with a message naming both, instead of calling methods it may not have.
 *
 * History: 1 — `step` only; 2 — factories and discovery, `forward` outputs (argmax, top-k, hidden
 * rows), `copySequence`, `exportSequence` / `importSequence`, `estimateMemory`, `probe().memory`,
 * `preferredBatchTokens`.
 *
 * @example
 * ```ts
 * if (factory.contractVersion !== CONTRACT_VERSION) console.warn(`${factory.name} speaks contract ${factory.contractVersion}`);
 * ```
 */
export const CONTRACT_VERSION = 2;

/**
 * Storage type of the KV cache. `f16` rounds every cached key and value to half precision. `int8`
 * stores each position's key and value rows per KV head (`headDim` values) as int8 codes with one
 * float32 scale: `a = max|x|`, `scale = f32(a / 127)`, `code = clamp(roundHalfEven(x / scale), −127, 127)`
 * (NaN → 0; a row with `scale` 0 or not finite stores zeros), read back as `f32(code · scale)` — about a
 * quarter of f32's bytes, with a quality cost each backend measures and documents.
 *
 * @example
 * ```ts
 * const kvDtype: KvDtype = "f16";
 * ```
 */
export type KvDtype = (typeof KV_DTYPES)[number];

/**
 * Every KV cache storage the contract defines, the one list the engine, server and CLI read (a
 * backend says which it runs in {@link BackendCapabilities.kvDtypes}).
 *
 * @example
 * ```ts
 * KV_DTYPES.includes("f16"); // true
 * ```
 */
export const KV_DTYPES = ["f32", "f16", "int8"] as const;

/**
 * How activations are quantised to int8 before each ternary matmul.
 * - `per-token`: BitNet's training-time quantiser, one absmax scale per token (the default).
 * - `q8k-block`: llama.cpp's Q8_K, one scale per 256 values (for parity with llama.cpp; needs
 *   every matmul K to be a multiple of 256).
 *
 * @example
 * ```ts
 * await backend.loadModel(weights, { contextLength: 512, activationQuant: "q8k-block" });
 * ```
 */
export type ActivationQuant = (typeof ACTIVATION_QUANTS)[number];

/**
 * Every activation quantisation scheme the contract defines.
 *
 * @example
 * ```ts
 * ACTIVATION_QUANTS; // ["per-token", "q8k-block"]
 * ```
 */
export const ACTIVATION_QUANTS = ["per-token", "q8k-block"] as const;

/**
 * Memory a backend allocates from (host RAM for a CPU backend, device memory for a GPU or NPU),
 * as {@link BackendProbe.memory} reports it.
 *
 * @example
 * ```ts
 * const memory: BackendMemory = { kind: "host", totalBytes: 24e9, freeBytes: 20e9 };
 * ```
 */
export interface BackendMemory {
  /** `host`: the process's RAM; `device`: memory of an accelerator. */
  readonly kind: "host" | "device";
  readonly totalBytes: number;
  /** Free now (a snapshot; other processes change it). */
  readonly freeBytes: number;
}

/**
 * What a backend would allocate for a model, from {@link Backend.estimateMemory}, before loading it.
 *
 * @example
 * ```ts
 * const e = backend.estimateMemory?.(weights.config, { contextLength: 4096, maxSequences: 4 });
 * if (e !== undefined && e.totalBytes > free) console.warn("will not fit");
 * ```
 */
export interface MemoryEstimate {
  /** Weights held (packed ternary, norms, embedding, LM head), counting file-mapped bytes too. */
  readonly weightsBytes: number;
  /**
   * Of {@link weightsBytes}: the LM head as the backend stores it — the embedding's bytes when a tied
   * head reads the embedding as it is, the quantised head's bytes when the backend keeps its own
   * (int8 / int4) copy of a tied or untied head.
   */
  readonly headBytes: number;
  /**
   * One KV position of one sequence, all layers, keys and values (scales included), before any
   * allocation rounding: the rate at which a sequence's KV grows.
   */
  readonly kvBytesPerPosition: number;
  /**
   * The whole KV cache as allocated: at least `maxSequences × contextLength × kvBytesPerPosition`,
   * more where a backend rounds each slot's allocation up (the CPU backend rounds a slot to 2 MiB).
   */
  readonly kvBytes: number;
  /** Activations and other buffers a step of `preferredBatchTokens` rows needs. */
  readonly scratchBytes: number;
  /** `weightsBytes + kvBytes + scratchBytes`. */
  readonly totalBytes: number;
  /**
   * Bytes one decode step of one sequence reads besides its KV: the packed ternary weights, the
   * norms and the LM head (the embedding row is negligible) — the numerator of a bandwidth roofline.
   */
  readonly decodeReadBytes: number;
}

/**
 * The answer of {@link Backend.probe}.
 *
 * @example
 * ```ts
 * const { available, reason } = await backend.probe();
 * if (!available) console.warn(`${backend.name}: ${reason}`);
 * ```
 */
export interface BackendProbe {
  /** True when `loadModel` can run here. */
  readonly available: boolean;
  /** Why not (or a note on what was found when available), in words. */
  readonly reason: string;
  /** The memory it allocates from, when it can tell. */
  readonly memory?: BackendMemory;
  /**
   * Facts worth showing a user (`halo doctor` prints them): the kernel path chosen, devices
   * found, driver versions. Keys are short words, values one line each.
   */
  readonly details?: Readonly<Record<string, string>>;
}

/**
 * What a backend accepts. The engine reads this to pick a backend or refuse with a clear error;
 * a backend never silently computes something else.
 *
 * @example
 * ```ts
 * const caps = backend.capabilities();
 * const ok = caps.activations.includes(model.config.activation);
 * ```
 */
export interface BackendCapabilities {
  /** Architectures (`WeightsConfig.architecture`) it runs. */
  readonly architectures: readonly string[];
  /** FFN activations it runs. */
  readonly activations: readonly string[];
  /** Ternary packings whose bytes its kernels consume as stored (no copy or repack). */
  readonly nativePackings: readonly string[];
  /**
   * Packings it accepts by repacking at load (through `decodeRows`), or `"any"` when every
   * tensor that can decode its rows is accepted.
   */
  readonly repackedPackings: readonly string[] | "any";
  /** Float dtypes it accepts for the embedding and LM head (`"any"`: anything `toFloat32` decodes). */
  readonly floatDtypes: readonly string[] | "any";
  /** KV cache dtypes. */
  readonly kvDtypes: readonly KvDtype[];
  /** Activation quantisation schemes. */
  readonly activationQuants: readonly ActivationQuant[];
  /** Most tokens one `step` takes. */
  readonly maxBatchTokens: number;
  /**
   * Rows per step the backend runs well (at most {@link maxBatchTokens}): the engine's scheduler
   * fills steps up to this many rows and splits prompts into chunks of half of it, so a GPU can ask
   * for large steps and a CPU for cache-sized ones.
   */
  readonly preferredBatchTokens: number;
  /**
   * Outputs {@link LoadedModel.forward} computes on the backend (`"logits"` always; `"argmax"`
   * and `"top-k"` save copying whole logit rows off a device). A backend's `forward` answers every
   * output all the same (the unlisted ones derived from its logits on the host, as
   * `forwardBatch` does for a backend without `forward`), equal to `argmaxRows` / `topKRows` of its
   * logits — the conformance suite checks both paths.
   */
  readonly outputs: readonly StepOutput[];
  /** Whether `forward` returns final hidden states (`StepBatch.hiddenRows`, for Medusa-style heads). */
  readonly hiddenRows: boolean;
  /** Whether loaded models implement {@link LoadedModel.copySequence}. */
  readonly copySequence: boolean;
  /** Whether loaded models implement {@link LoadedModel.exportSequence} and {@link LoadedModel.importSequence}. */
  readonly sequenceTransfer: boolean;
  /** Most sequences a loaded model holds at once. */
  readonly maxSequences: number;
  /** Most heads of width `headDim` it handles (attention kernels have limits; Infinity when none). */
  readonly maxHeadDim: number;
}

/**
 * Progress of {@link Backend.loadModel}, reported as layers are taken.
 *
 * @example
 * ```ts
 * onProgress: ({ done, total }) => bar.update(done / total)
 * ```
 */
export interface LoadProgress {
  /** Units done (layers, plus one for the embedding and head). */
  readonly done: number;
  /** Units in all. */
  readonly total: number;
}

/**
 * Options of {@link Backend.loadModel}.
 *
 * @example
 * ```ts
 * const options: LoadOptions = { contextLength: 2048, maxSequences: 4, kvDtype: "f16" };
 * ```
 */
export interface LoadOptions {
  /** KV positions per sequence; positions are `0 … contextLength-1`. At most `maxPositionEmbeddings`. */
  readonly contextLength: number;
  /** Sequences that can be allocated at once. Default 1. */
  readonly maxSequences?: number;
  /** KV cache storage. Default `"f32"`. */
  readonly kvDtype?: KvDtype;
  /** Activation quantisation. Default `"per-token"`. */
  readonly activationQuant?: ActivationQuant;
  /** Cancels loading; the promise rejects with `KERNELS_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Called as weights are taken. */
  readonly onProgress?: (progress: LoadProgress) => void;
}

/**
 * A compute backend. It owns the weights and KV cache of every model it loads; per step only
 * tokens go in and logits come out.
 *
 * @example
 * ```ts
 * const backend = referenceBackend();
 * if ((await backend.probe()).available) {
 *   const model = await backend.loadModel(weights, { contextLength: 512 });
 *   const slot = model.allocateSequence();
 *   const logits = await model.step({
 *     tokens: Int32Array.of(1, 2, 3), positions: Int32Array.of(0, 1, 2),
 *     slots: Int32Array.of(slot, slot, slot), logitRows: Int32Array.of(2),
 *   });
 *   model.dispose();
 * }
 * ```
 */
export interface Backend {
  /** Short stable name: `reference`, `cpu`, `hip`, `xdna`. */
  readonly name: string;
  /** Whether this backend can run here, and why not. Never throws. */
  probe(): Promise<BackendProbe>;
  /** What it accepts. */
  capabilities(): BackendCapabilities;
  /**
   * Takes the weights (copying or repacking them into its own memory, so the caller may close
   * the source afterwards) and allocates KV for `maxSequences` × `contextLength` positions.
   * Throws `KERNELS_UNSUPPORTED_CONFIG`, `KERNELS_BAD_WEIGHTS`, `KERNELS_BAD_OPTION`,
   * `KERNELS_UNAVAILABLE` or `KERNELS_ABORTED`.
   */
  loadModel(weights: ModelWeights, options: LoadOptions): Promise<LoadedModel>;
  /**
   * What {@link loadModel} would allocate for a model of this config with these options, without
   * loading it. Optional capability (contract 2); the engine reports it and refuses a load that
   * cannot fit {@link BackendProbe.memory}.
   */
  estimateMemory?(config: WeightsConfig, options: LoadOptions): MemoryEstimate;
  /**
   * Kernel-level entry points for the conformance suite's per-op checks. Optional: a backend
   * without them is checked end to end only.
   */
  readonly ops?: KernelOps;
}

/**
 * How a backend package plugs in: the engine discovers installed packages named `@halo/kernels-*`
 * whose `package.json` declares `"halo": { "backend": true }` and whose entry point exports
 * `backendFactory`, or takes factories (and {@link Backend} objects) passed to it directly. The
 * engine, server and CLI never import a backend by name; they list factories, probe them and
 * create the chosen one with the caller's options, untouched.
 *
 * @example
 * ```ts
 * export const backendFactory: BackendFactory = {
 *   contractVersion: CONTRACT_VERSION,
 *   name: "mygpu",
 *   priority: 200,
 *   description: "My GPU kernels",
 *   probe: async () => ({ available: false, reason: "no GPU found" }),
 *   create: (options) => createMyGpuBackend(options),
 * };
 * ```
 */
export interface BackendFactory {
  /** The {@link CONTRACT_VERSION} the backend implements. */
  readonly contractVersion: number;
  /** Short stable name users select it by (`cpu`, `hip`, …); also the key of its options in `backendOptions`. */
  readonly name: string;
  /** Order in `"auto"`: higher first (reference 0, cpu 100, GPU backends above). */
  readonly priority: number;
  /** One line on what it is, for `halo doctor`. */
  readonly description: string;
  /** Whether it can run here, without creating anything heavy. Never throws. */
  probe(): Promise<BackendProbe>;
  /**
   * Creates the backend with its own options (passed through from the caller untouched). Throws
   * `KERNELS_BAD_OPTION` for an option it does not know or a bad value, naming the option.
   */
  create(options?: Readonly<Record<string, unknown>>): Backend;
  /**
   * Read bandwidth of the memory the backend streams weights from, in GB/s (10^9 bytes/s), for
   * rooflines (`halo bench`): a decode step reading B bytes per token cannot beat this ÷ B. Takes
   * the same options as {@link create} (e.g. `threads`). Optional.
   */
  measureReadBandwidth?(options?: Readonly<Record<string, unknown>>): Promise<number>;
  /**
   * The backend's own weight layouts ({@link PackingCodec}), which converters can store a model in
   * so this backend loads it zero-copy, and which readers need to decode such a file. Optional.
   */
  readonly packings?: readonly PackingCodec[];
}
