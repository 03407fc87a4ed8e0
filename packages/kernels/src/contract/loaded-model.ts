// A model loaded into a backend: its KV slots and the one step call that serves prefill, decode and verification.
import type { ActivationQuant, KvDtype } from "./backend.js";
import type { WeightsConfig } from "./weights.js";

/**
 * One step's input: `n` rows, each a token of some sequence at its position. Rows of the same
 * slot must continue that sequence in order (`positions` = its current length, +1, +2, …); rows of
 * different slots may interleave. Prefill (many rows of one slot), decode of many sequences (one
 * row per slot) and speculative verification (a few rows per slot) are all this shape.
 *
 * @example
 * ```ts
 * // Decode one token for slots 0 and 1, which hold 7 and 12 tokens, and want both logits.
 * const batch: StepBatch = {
 *   tokens: Int32Array.of(42, 77),
 *   positions: Int32Array.of(7, 12),
 *   slots: Int32Array.of(0, 1),
 *   logitRows: Int32Array.of(0, 1),
 * };
 * ```
 */
export interface StepBatch {
  /** `[n]` token ids in `[0, vocabSize)`. */
  readonly tokens: Int32Array;
  /** `[n]` position of each token in its sequence. */
  readonly positions: Int32Array;
  /** `[n]` KV slot of each token (from `allocateSequence`). */
  readonly slots: Int32Array;
  /**
   * Indices of the rows whose logits are wanted, strictly increasing, each in `[0, n)`. Logits
   * come back in this order. Typically the last row of each sequence; every row for verification.
   */
  readonly logitRows: Int32Array;
}

/**
 * The options a model was loaded with, resolved to their defaults.
 *
 * @example
 * ```ts
 * console.log(model.options.contextLength, model.options.kvDtype);
 * ```
 */
export interface ResolvedLoadOptions {
  readonly contextLength: number;
  readonly maxSequences: number;
  readonly kvDtype: KvDtype;
  readonly activationQuant: ActivationQuant;
}

/**
 * A model held by a backend with its KV cache. Every misuse throws a typed `HaloError` before any
 * state changes, so the model stays usable after an error.
 *
 * @example
 * ```ts
 * const slot = model.allocateSequence();
 * const prompt = Int32Array.of(5, 9, 11);
 * const logits = await model.step({
 *   tokens: prompt, positions: Int32Array.of(0, 1, 2),
 *   slots: new Int32Array(3).fill(slot), logitRows: Int32Array.of(2),
 * }); // Float32Array [1][vocabSize]
 * model.freeSequence(slot);
 * model.dispose();
 * ```
 */
export interface LoadedModel {
  /** The config the weights were loaded with. */
  readonly config: WeightsConfig;
  /** Options in force. */
  readonly options: ResolvedLoadOptions;
  /** Reserves a KV slot for a new, empty sequence and returns its id. Throws `KERNELS_NO_FREE_SLOT`. */
  allocateSequence(): number;
  /** Releases a slot. Throws `KERNELS_UNKNOWN_SLOT`. */
  freeSequence(slot: number): void;
  /**
   * Forgets positions `length …` of a sequence (rejected draft tokens, a rewound turn).
   * `length` must be within `[0, sequenceLength(slot)]`.
   */
  truncateSequence(slot: number, length: number): void;
  /** Number of positions a sequence holds (the next position to step). */
  sequenceLength(slot: number): number;
  /**
   * Runs the forward pass of all rows, appends their keys and values to their slots and returns
   * the logits of `logitRows` as one Float32Array `[logitRows.length][vocabSize]`.
   */
  step(batch: StepBatch): Promise<Float32Array>;
  /** Releases weights and KV. Every later call throws `KERNELS_DISPOSED`; calling it twice is allowed. */
  dispose(): void;
}
