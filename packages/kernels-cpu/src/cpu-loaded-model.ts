// The CPU backend's LoadedModel: slot bookkeeping and validation in TypeScript, the whole step in one native call.
import { HaloError } from "@halo/errors";
import {
  KernelsErrorCode,
  argmaxRows,
  requireLogitsOnly,
  topKRows,
  validateBatch,
  validateSequenceState,
  type LoadedModel,
  type ResolvedLoadOptions,
  type SequenceState,
  type StepBatch,
  type StepResult,
  type WeightsConfig,
} from "@halo/kernels";
import { checkStatus, fromNative, type NativeBinding, type NativeModelHandle, type NativeStepOptions } from "./native-binding.js";
import { KernelsCpuErrorCode } from "./errors.js";

/** @internal Whether the addon has contract 2's native calls (argmax / top-k / hidden rows, slot copy / export / import). */
export function hasContract2(native: NativeBinding): boolean {
  const prototype = native.NativeModel.prototype as Partial<NativeModelHandle>;
  return typeof prototype.copySlot === "function" && typeof prototype.exportSlot === "function" && typeof prototype.importSlot === "function";
}

/**
 * What the native side reports about a loaded model.
 *
 * @example
 * ```ts
 * const { isa, hugePages, headType } = (model as CpuLoadedModel).nativeInfo();
 * ```
 */
export interface CpuModelInfo {
  /** Kernel path in use. */
  readonly isa: string;
  readonly threads: number;
  /** Whether the weight arena was advised into transparent huge pages. */
  readonly hugePages: boolean;
  /** Bytes of packed ternary weights (arena space reserved; untouched where matrices are mapped instead). */
  readonly arenaBytes: number;
  /** How the LM head is stored: `f16`, `bf16`, `f32`, `int8` or `int4`. */
  readonly headType: string;
  /** Weight bytes borrowed from mappings of the model file (zero-copy loads of `halo-i2x256` and f16/f32 tables). */
  readonly mappedBytes: number;
  /** Bytes of the token embedding as held (copied or mapped). */
  readonly embeddingBytes: number;
  /** Bytes of the LM head as held besides the embedding: 0 for a tied f16/bf16/f32 head (it reads the embedding). */
  readonly headBytes: number;
  /** Bytes of the norms and the ternary matrices' scales. */
  readonly normAndScaleBytes: number;
  /** Bytes of one sequence's KV slot (keys, values and int8 scales for the whole context) before page rounding. */
  readonly kvSlotBytes: number;
}

/**
 * A model held by the CPU backend. Created by `createBackend().loadModel(...)`.
 *
 * @example
 * ```ts
 * const model = await createBackend().loadModel(weights, { contextLength: 512, kvDtype: "f16" });
 * ```
 */
export class CpuLoadedModel implements LoadedModel {
  readonly config: WeightsConfig;
  readonly options: ResolvedLoadOptions;
  private native: NativeModelHandle | null;
  /** `[maxSequences]` length of each allocated slot, undefined when free. */
  private readonly lengths: Array<number | undefined>;
  private readonly maxBatchTokens: number;

  /** @internal */
  constructor(config: WeightsConfig, options: ResolvedLoadOptions, native: NativeModelHandle, maxBatchTokens: number) {
    this.config = config;
    this.options = options;
    this.native = native;
    this.maxBatchTokens = maxBatchTokens;
    this.lengths = new Array<number | undefined>(options.maxSequences).fill(undefined);
  }

  private live(): NativeModelHandle {
    if (this.native === null) throw new HaloError(KernelsErrorCode.KERNELS_DISPOSED, "the model was disposed", { hint: "Load the model again" });
    return this.native;
  }

  private slotLength(slot: number, field = "slot"): number {
    const length = Number.isInteger(slot) && slot >= 0 ? this.lengths[slot] : undefined;
    if (length === undefined) {
      throw new HaloError(KernelsErrorCode.KERNELS_UNKNOWN_SLOT, "slot is not allocated", { field, actual: slot, hint: "Call allocateSequence() and use the id it returns" });
    }
    return length;
  }

  /** The native handle, refusing an addon built before contract 2 (a stale prebuild) with the fix. */
  private contract2(what: string): Required<Pick<NativeModelHandle, "copySlot" | "exportSlot" | "importSlot">> & NativeModelHandle {
    const native = this.live();
    if (typeof native.copySlot !== "function" || typeof native.exportSlot !== "function" || typeof native.importSlot !== "function") {
      throw new HaloError(KernelsCpuErrorCode.KERNELS_CPU_NATIVE_MISSING, `${what} needs a native addon built for backend contract 2`, {
        expected: "an addon with copySlot, exportSlot and importSlot",
        actual: "an addon built before contract 2 (a stale prebuild or build)",
        hint: "Rebuild it: `npm rebuild @halo/kernels-cpu`, or in a clone of halo `corepack pnpm --filter @halo/kernels-cpu build`",
      });
    }
    return native as Required<Pick<NativeModelHandle, "copySlot" | "exportSlot" | "importSlot">> & NativeModelHandle;
  }

  /** Kernel path, threads, huge pages, head type and the bytes held, as the native side reports them. */
  nativeInfo(): CpuModelInfo {
    const info = this.live().info();
    return {
      ...info,
      mappedBytes: info.mappedBytes ?? 0,
      embeddingBytes: info.embeddingBytes ?? 0,
      headBytes: info.headBytes ?? 0,
      normAndScaleBytes: info.normAndScaleBytes ?? 0,
      kvSlotBytes: info.kvSlotBytes ?? 0,
    };
  }

  allocateSequence(): number {
    const native = this.live();
    const slot = this.lengths.indexOf(undefined);
    if (slot < 0) {
      throw new HaloError(KernelsErrorCode.KERNELS_NO_FREE_SLOT, "all sequence slots are in use", {
        expected: `at most ${this.options.maxSequences} live sequences`,
        actual: this.options.maxSequences + 1,
        hint: "Free a finished sequence, or load with a larger maxSequences",
      });
    }
    checkStatus(native.allocSlot(slot), "allocating the KV cache of a sequence", "slot");
    this.lengths[slot] = 0;
    return slot;
  }

  freeSequence(slot: number): void {
    const native = this.live();
    this.slotLength(slot);
    checkStatus(native.freeSlot(slot), "freeing a sequence", "slot");
    this.lengths[slot] = undefined;
  }

  truncateSequence(slot: number, length: number): void {
    this.live();
    const current = this.slotLength(slot);
    if (!Number.isSafeInteger(length) || length < 0 || length > current) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_POSITION, "truncation length outside the sequence", { field: "length", expected: `a whole number in [0, ${current}]`, actual: length });
    }
    this.lengths[slot] = length;
  }

  sequenceLength(slot: number): number {
    this.live();
    return this.slotLength(slot);
  }

  private validate(batch: StepBatch): void {
    validateBatch(batch, {
      vocabSize: this.config.vocabSize,
      contextLength: this.options.contextLength,
      maxBatchTokens: this.maxBatchTokens,
      sequenceLength: (slot) => (Number.isInteger(slot) && slot >= 0 ? this.lengths[slot] : undefined),
    });
  }

  /** After a step: each slot's length covers the positions it stepped. */
  private advance(batch: StepBatch): void {
    for (let i = 0; i < batch.tokens.length; i++) {
      const slot = batch.slots[i]!;
      if (this.lengths[slot] !== undefined) this.lengths[slot] = Math.max(this.lengths[slot]!, batch.positions[i]! + 1);
    }
  }

  async step(batch: StepBatch): Promise<Float32Array> {
    requireLogitsOnly(batch);
    const native = this.live();
    this.validate(batch);
    let logits: Float32Array;
    try {
      logits = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows);
    } catch (error) {
      throw fromNative(error, "step");
    }
    this.advance(batch);
    return logits;
  }

  /**
   * The step with contract-2 outputs, in one native call: `output: "argmax"` / `"top-k"` are computed
   * from the logits in the native worker (only ids and k logits reach JavaScript; ties go to the
   * lowest id, NaN never wins — `argmaxRows` / `topKRows` of @halo/kernels), and `hiddenRows` returns
   * the residual stream after the last layer, before the output norm.
   *
   * @example
   * ```ts
   * const { argmax, hidden } = await model.forward({ ...batch, output: "argmax", hiddenRows: Int32Array.of(0) });
   * ```
   */
  async forward(batch: StepBatch): Promise<StepResult> {
    const native = this.live();
    if (typeof native.copySlot !== "function" && (batch.hiddenRows === undefined || batch.hiddenRows.length === 0)) {
      return this.forwardOnStaleAddon(native, batch);
    }
    this.contract2("forward with hiddenRows");
    this.validate(batch);
    const output = batch.output ?? "logits";
    const options: NativeStepOptions = { output };
    if (output === "top-k") options.topK = batch.topK!;
    if (batch.hiddenRows !== undefined) options.hiddenRows = batch.hiddenRows;
    let result;
    try {
      result = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows, options);
    } catch (error) {
      throw fromNative(error, "forward");
    }
    this.advance(batch);
    return {
      logits: result.logits,
      ...(output === "argmax" ? { argmax: result.argmax ?? new Int32Array(0) } : {}),
      ...(output === "top-k" ? { topK: { k: batch.topK!, ids: result.topKIds ?? new Int32Array(0), logits: result.topKLogits ?? new Float32Array(0) } } : {}),
      ...(batch.hiddenRows !== undefined ? { hidden: result.hidden ?? new Float32Array(0) } : {}),
    };
  }

  /** An addon built before contract 2: its step, then argmax / top-k of the logits on this thread. */
  private async forwardOnStaleAddon(native: NativeModelHandle, batch: StepBatch): Promise<StepResult> {
    this.validate(batch);
    let logits: Float32Array;
    try {
      logits = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows);
    } catch (error) {
      throw fromNative(error, "forward");
    }
    this.advance(batch);
    const rows = batch.logitRows.length;
    const vocab = this.config.vocabSize;
    const hidden = batch.hiddenRows === undefined ? {} : { hidden: new Float32Array(0) };
    if (batch.output === "argmax") return { logits: new Float32Array(0), argmax: argmaxRows(logits, rows, vocab), ...hidden };
    if (batch.output === "top-k") return { logits: new Float32Array(0), topK: topKRows(logits, rows, vocab, batch.topK!), ...hidden };
    return { logits, ...hidden };
  }

  /**
   * Makes slot `to` (allocated) an exact copy of slot `from`'s KV: the first `sequenceLength(from)`
   * positions of every layer's keys and values (and int8 scales), copied natively. Waits for a step
   * in flight. `from === to` changes nothing.
   *
   * @example
   * ```ts
   * const fork = model.allocateSequence();
   * model.copySequence(prompt, fork); // n > 1 completions share the prefilled prompt
   * ```
   */
  copySequence(from: number, to: number): void {
    const native = this.contract2("copySequence");
    const length = this.slotLength(from, "from");
    this.slotLength(to, "to");
    checkStatus(native.copySlot(from, to, length), "copying a sequence", "to");
    this.lengths[to] = length;
  }

  /**
   * The KV of a slot as float32 rows `[numLayers][length][numKvHeads·headDim]`, read natively as
   * attention reads them (f16 widened, int8 as `f32(code · scale)`). Waits for a step in flight.
   *
   * @example
   * ```ts
   * const state = model.exportSequence(slot);
   * const moved = otherModel.importSequence!(state);
   * ```
   */
  exportSequence(slot: number): SequenceState {
    const native = this.contract2("exportSequence");
    const length = this.slotLength(slot);
    const { numLayers, numKvHeads, headDim } = this.config;
    const size = numLayers * length * numKvHeads * headDim;
    const keys = new Float32Array(size);
    const values = new Float32Array(size);
    checkStatus(native.exportSlot(slot, length, keys, values), "exporting a sequence", "slot");
    return { length, numLayers, numKvHeads, headDim, keys, values };
  }

  /**
   * Allocates a slot holding `state` and returns its id: every row is written natively through the
   * step's own KV write (f16 rounding; int8 per KV head with its scale, round-half-even and clamp).
   * Checked first with `validateSequenceState` (`KERNELS_BAD_ARGUMENT`, `KERNELS_CONTEXT_OVERFLOW`),
   * then `KERNELS_NO_FREE_SLOT`.
   *
   * @example
   * ```ts
   * const slot = model.importSequence(referenceModel.exportSequence!(prefilled));
   * ```
   */
  importSequence(state: SequenceState): number {
    const native = this.contract2("importSequence");
    validateSequenceState(state, this.config, this.options.contextLength);
    const slot = this.allocateSequence();
    try {
      checkStatus(native.importSlot(slot, state.length, state.keys, state.values), "importing a sequence", "state");
    } catch (error) {
      this.freeSequence(slot);
      throw error;
    }
    this.lengths[slot] = state.length;
    return slot;
  }

  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }
}
