// The backend contract: what every backend (reference, cpu, hip, xdna) answers and how a model is loaded.
import type { KernelOps } from "./kernel-ops.js";
import type { LoadedModel } from "./loaded-model.js";
import type { ModelWeights } from "./weights.js";

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
export type KvDtype = "f32" | "f16" | "int8";

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
export type ActivationQuant = "per-token" | "q8k-block";

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
   * Kernel-level entry points for the conformance suite's per-op checks. Optional: a backend
   * without them is checked end to end only.
   */
  readonly ops?: KernelOps;
}
