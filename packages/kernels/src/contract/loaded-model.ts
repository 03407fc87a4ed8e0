// A model loaded into a backend: its KV slots and the one step call that serves prefill, decode and verification.
import type { ActivationQuant, KvDtype } from "./backend.js";
import type { WeightsConfig } from "./weights.js";

/**
 * What {@link LoadedModel.forward} returns for the rows in `logitRows`: whole logit rows, the
 * greedy token only, or the `topK` best ids with their logits.
 *
 * @example
 * ```ts
 * const output: StepOutput = "argmax";
 * ```
 */
export type StepOutput = (typeof STEP_OUTPUTS)[number];

/**
 * Every {@link StepOutput} the contract defines, the one list validators and backends read.
 *
 * @example
 * ```ts
 * STEP_OUTPUTS.includes("argmax"); // true
 * ```
 */
export const STEP_OUTPUTS = ["logits", "argmax", "top-k"] as const;

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
  /**
   * What `forward` returns for `logitRows` (contract 2). Default `"logits"`. `step` takes only
   * `"logits"` (or none).
   */
  readonly output?: StepOutput;
  /** With `output: "top-k"`: how many ids per row, 1 … vocabSize. */
  readonly topK?: number;
  /**
   * Rows whose final hidden state (the residual stream after the last layer, before the output
   * norm) `forward` returns, strictly increasing (contract 2; needs `capabilities.hiddenRows`).
   */
  readonly hiddenRows?: Int32Array;
}

/**
 * The result of {@link LoadedModel.forward}.
 *
 * @example
 * ```ts
 * const { argmax } = await forwardBatch(model, { ...batch, output: "argmax" });
 * ```
 */
export interface StepResult {
  /** `[logitRows.length][vocabSize]` with output `"logits"`; empty otherwise. */
  readonly logits: Float32Array;
  /**
   * `[logitRows.length]` the greedy token of each row (lowest id on ties) with output `"argmax"`;
   * −1 for a row with no logit above −∞ (a broken row: nothing can be sampled from it).
   */
  readonly argmax?: Int32Array;
  /**
   * With output `"top-k"`: `[logitRows.length][k]` ids and their logits, best first (higher logit,
   * then lower id).
   */
  readonly topK?: { readonly k: number; readonly ids: Int32Array; readonly logits: Float32Array };
  /**
   * `[hiddenRows.length][hiddenSize]` final hidden states: present exactly when `hiddenRows` was
   * given (an empty `hiddenRows` gives an empty Float32Array), absent otherwise.
   */
  readonly hidden?: Float32Array;
}

/**
 * One sequence's KV cache in a backend-neutral form ({@link LoadedModel.exportSequence}): keys
 * (after RoPE) and values of every layer and position as float32 rows, holding the values the
 * source cache stored (its f16 or int8 rounding already applied). Another backend imports it to
 * continue the sequence: prefill on one backend, decode on another.
 *
 * @example
 * ```ts
 * const state = prefillModel.exportSequence!(slot);
 * const continued = decodeModel.importSequence!(state);
 * ```
 */
export interface SequenceState {
  /** Positions held. */
  readonly length: number;
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** `[numLayers][length][numKvHeads·headDim]` */
  readonly keys: Float32Array;
  /** `[numLayers][length][numKvHeads·headDim]` */
  readonly values: Float32Array;
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
  /**
   * Releases a slot. Throws `KERNELS_UNKNOWN_SLOT`; a backend whose steps run off the calling
   * thread throws `KERNELS_SLOT_BUSY` for a slot of a step still in flight (await the step first).
   */
  freeSequence(slot: number): void;
  /**
   * Forgets positions `length …` of a sequence (rejected draft tokens, a rewound turn).
   * `length` must be within `[0, sequenceLength(slot)]`. Throws `KERNELS_SLOT_BUSY` as
   * {@link freeSequence} does.
   */
  truncateSequence(slot: number, length: number): void;
  /** Number of positions a sequence holds (the next position to step). */
  sequenceLength(slot: number): number;
  /**
   * Runs the forward pass of all rows, appends their keys and values to their slots and returns
   * the logits of `logitRows` as one Float32Array `[logitRows.length][vocabSize]`.
   */
  step(batch: StepBatch): Promise<Float32Array>;
  /**
   * The step with contract-2 outputs: `batch.output` (`argmax` / `top-k` computed where the backend
   * lists them in `capabilities.outputs`) and `batch.hiddenRows`. Optional: {@link forwardBatch}
   * falls back to `step` and derives argmax / top-k on the host.
   */
  forward?(batch: StepBatch): Promise<StepResult>;
  /**
   * Makes slot `to` (allocated, any length) an exact copy of slot `from`'s KV (same length, same
   * cached values), for prefix sharing and `n > 1` completions; afterwards the two sequences are
   * independent (stepping or truncating one never changes the other). `from === to` is allowed and
   * changes nothing. Asynchronous: a backend runs it after any step in flight has finished (a copy
   * never sees half a step) and may copy off the calling thread. Rejects with `KERNELS_UNKNOWN_SLOT`
   * when either slot is not allocated (checked once the copy runs). Optional capability
   * (`capabilities.copySequence`).
   */
  copySequence?(from: number, to: number): Promise<void>;
  /**
   * The KV of a slot in backend-neutral form: a copy the caller may keep and change (the model's
   * cache is not affected). Asynchronous like {@link copySequence} (a slot's KV can be hundreds of
   * MB). Rejects with `KERNELS_UNKNOWN_SLOT`. Optional capability (`capabilities.sequenceTransfer`).
   */
  exportSequence?(slot: number): Promise<SequenceState>;
  /**
   * Allocates a slot holding `state` and returns its id; the next position to step is
   * `state.length`. Every row is rounded through this model's KV dtype exactly as a step's own rows
   * are, and copied (the caller may change `state` afterwards). Checks as `validateSequenceState`
   * does before taking a slot: `KERNELS_BAD_ARGUMENT` when the shape does not match this model, the
   * arrays are not Float32Arrays of `numLayers · length · numKvHeads · headDim` values, or a value is
   * not finite; `KERNELS_CONTEXT_OVERFLOW` when `length > contextLength`; then
   * `KERNELS_NO_FREE_SLOT` (rejections, as the method is asynchronous like {@link copySequence}).
   * Optional capability (`capabilities.sequenceTransfer`).
   */
  importSequence?(state: SequenceState): Promise<number>;
  /** Releases weights and KV. Every later call throws `KERNELS_DISPOSED`; calling it twice is allowed. */
  dispose(): void;
}
