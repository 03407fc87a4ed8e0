// The CPU backend's LoadedModel: slot bookkeeping and validation in TypeScript, the whole step in one native call.
import { HaloError } from "@halo/errors";
import {
  KernelsErrorCode,
  deriveOutputs,
  requireLogitsOnly,
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

/** The native handle of an addon built for contract 2: slot copy / export / import, the step's output options. */
type Contract2Handle = Required<Pick<NativeModelHandle, "copySlot" | "exportSlot" | "importSlot">> & NativeModelHandle;

/** @internal Whether the addon has contract 2's native calls (argmax / top-k / hidden rows, slot copy / export / import). */
export function hasContract2(native: NativeBinding): boolean {
  return handleHasContract2(native.NativeModel.prototype as Partial<NativeModelHandle>);
}

function handleHasContract2(handle: Partial<NativeModelHandle>): handle is Contract2Handle {
  return typeof handle.copySlot === "function" && typeof handle.exportSlot === "function" && typeof handle.importSlot === "function";
}

/** The rebuild hint of every refusal of an addon built before contract 2. */
const REBUILD_HINT = "Rebuild it: `npm rebuild @halo/kernels-cpu`, or in a clone of halo `corepack pnpm --filter @halo/kernels-cpu build`";

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
  /**
   * Weight bytes borrowed from mappings of the model file (zero-copy loads of `halo-i2x256` and f16/f32 tables). A
   * float head copied into huge pages counts as copied from the load on, though the copy runs in the background
   * ({@link headCopyPending}).
   */
  readonly mappedBytes: number;
  /**
   * True while the float head's copy into huge pages (a thread of its own, at idle priority, so the load does not wait
   * for it) has not been switched to: steps read the head from the file mapping until the first step after it is done.
   */
  readonly headCopyPending: boolean;
  /** Bytes of the token embedding as held (copied or mapped). */
  readonly embeddingBytes: number;
  /** Bytes of the LM head as held besides the embedding: 0 for a tied f16/bf16/f32 head (it reads the embedding). */
  readonly headBytes: number;
  /** Bytes of the norms and the ternary matrices' scales. */
  readonly normAndScaleBytes: number;
  /** Bytes of one sequence's KV slot (keys, values and int8 scales for the whole context) before page rounding. */
  readonly kvSlotBytes: number;
  /**
   * The sparse down lane (`CpuBackendOptions.sparseDown`): its layout's bytes (0 when off), the density it runs
   * under, and over this model's one-row steps so far the down products that took it or were too dense, with their
   * input columns and how many were nonzero (1 − nonzeroColumns / columns is the measured zero share).
   */
  readonly sparseDown: CpuSparseDownInfo;
}

/** The sparse down lane's figures in {@link CpuModelInfo}. */
export interface CpuSparseDownInfo {
  /** Bytes of the sparse layout (0: the lane is off). */
  readonly bytes: number;
  /** The share of nonzero inputs under which a layer takes the sparse kernel. */
  readonly maxDensity: number;
  /** Down products of one-row steps that took the sparse kernel. */
  readonly sparseCalls: number;
  /** Down products of one-row steps whose input was too dense for it (the dense kernel ran). */
  readonly denseCalls: number;
  /** Input columns of those products. */
  readonly columns: number;
  /** How many of those columns were nonzero. */
  readonly nonzeroColumns: number;
}

/**
 * A model held by the CPU backend. Created by `createBackend().loadModel(...)`. `copySequence`,
 * `exportSequence` and `importSequence` are own properties only when the native addon was built for
 * contract 2 (as `capabilities()` says); on an older addon they are absent, as callers that decide
 * by method presence expect.
 *
 * @example
 * ```ts
 * const model = await createBackend().loadModel(weights, { contextLength: 512, kvDtype: "f16" });
 * ```
 */
export class CpuLoadedModel implements LoadedModel {
  readonly config: WeightsConfig;
  readonly options: ResolvedLoadOptions;
  /**
   * Makes slot `to` (allocated) an exact copy of slot `from`'s KV: the first `sequenceLength(from)`
   * positions of every layer's keys and values (and int8 scales), copied natively once no step is in
   * flight (the slots' lengths are read then, so a copy never claims positions of a step still
   * running). `from === to` changes nothing. Absent on an addon built before contract 2.
   *
   * @example
   * ```ts
   * const fork = model.allocateSequence();
   * await model.copySequence!(prompt, fork); // n > 1 completions share the prefilled prompt
   * ```
   */
  declare readonly copySequence?: (from: number, to: number) => Promise<void>;
  /**
   * The KV of a slot as float32 rows `[numLayers][length][numKvHeads·headDim]`, read natively as
   * attention reads them (f16 widened, int8 as `f32(code · scale)`) once no step is in flight.
   * Absent on an addon built before contract 2.
   *
   * @example
   * ```ts
   * const state = await model.exportSequence!(slot);
   * const moved = await otherModel.importSequence!(state);
   * ```
   */
  declare readonly exportSequence?: (slot: number) => Promise<SequenceState>;
  /**
   * Allocates a slot holding `state` and returns its id: every row is written natively through the
   * step's own KV write (f16 rounding; int8 per KV head with its scale, round-half-even and clamp).
   * Checked first with `validateSequenceState` (`KERNELS_BAD_ARGUMENT`, `KERNELS_CONTEXT_OVERFLOW`),
   * then `KERNELS_NO_FREE_SLOT`; written once no step is in flight. Absent on an addon built before
   * contract 2.
   *
   * @example
   * ```ts
   * const slot = await model.importSequence!(await referenceModel.exportSequence!(prefilled));
   * ```
   */
  declare readonly importSequence?: (state: SequenceState) => Promise<number>;
  private native: NativeModelHandle | null;
  /** `[maxSequences]` length of each allocated slot, undefined when free. */
  private readonly lengths: Array<number | undefined>;
  private readonly maxBatchTokens: number;
  /** Steps in flight (each settles, never rejects): copy / export / import wait for all of them. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Slot → number of in-flight steps that write it: freeSequence / truncateSequence refuse these. */
  private readonly busy = new Map<number, number>();

  /** @internal */
  constructor(config: WeightsConfig, options: ResolvedLoadOptions, native: NativeModelHandle, maxBatchTokens: number) {
    this.config = config;
    this.options = options;
    this.native = native;
    this.maxBatchTokens = maxBatchTokens;
    this.lengths = new Array<number | undefined>(options.maxSequences).fill(undefined);
    if (handleHasContract2(native)) {
      // Own properties only on a contract-2 addon: method presence matches capabilities().
      Object.defineProperties(this, {
        copySequence: { value: (from: number, to: number) => this.copySlot(from, to), enumerable: true },
        exportSequence: { value: (slot: number) => this.exportSlot(slot), enumerable: true },
        importSequence: { value: (state: SequenceState) => this.importSlot(state), enumerable: true },
      });
    }
  }

  private live(): NativeModelHandle {
    if (this.native === null) throw new HaloError(KernelsErrorCode.KERNELS_DISPOSED, "the model was disposed", { hint: "Load the model again" });
    return this.native;
  }

  /** The live handle with contract 2's slot calls (only reached through the properties defined for such an addon). */
  private live2(): Contract2Handle {
    return this.live() as Contract2Handle;
  }

  private slotLength(slot: number, field = "slot"): number {
    const length = Number.isInteger(slot) && slot >= 0 ? this.lengths[slot] : undefined;
    if (length === undefined) {
      throw new HaloError(KernelsErrorCode.KERNELS_UNKNOWN_SLOT, "slot is not allocated", {
        field,
        actual: slot,
        hint: "Call allocateSequence() and use the id it returns",
      });
    }
    return length;
  }

  /** Refuses to change a slot a step in flight writes (its promise would then set the length back). */
  private notBusy(slot: number, what: string): void {
    if (this.busy.has(slot)) {
      throw new HaloError(KernelsErrorCode.KERNELS_SLOT_BUSY, `${what} of a slot whose step is still in flight`, {
        field: "slot",
        expected: "a slot no running step writes",
        actual: slot,
        hint: "Await the step's (or forward's) promise, then free or truncate the sequence",
      });
    }
  }

  /** Resolves once no step is in flight (steps started meanwhile are waited for too). */
  private async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /**
   * Runs a step (the native call and its length bookkeeping), marking its slots busy until it
   * settles; {@link idle} waits for it, so a copy / export / import never runs before the lengths
   * the step sets.
   */
  private track<T>(batch: StepBatch, run: () => Promise<T>): Promise<T> {
    const slots = new Set(batch.slots);
    for (const slot of slots) this.busy.set(slot, (this.busy.get(slot) ?? 0) + 1);
    const done = run().finally(() => {
      for (const slot of slots) {
        const count = this.busy.get(slot)! - 1;
        if (count === 0) this.busy.delete(slot);
        else this.busy.set(slot, count);
      }
    });
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return done;
  }

  /** Kernel path, threads, huge pages, head type and the bytes held, as the native side reports them. */
  nativeInfo(): CpuModelInfo {
    const info = this.live().info();
    return {
      ...info,
      mappedBytes: info.mappedBytes ?? 0,
      headCopyPending: info.headCopyPending ?? false,
      embeddingBytes: info.embeddingBytes ?? 0,
      headBytes: info.headBytes ?? 0,
      normAndScaleBytes: info.normAndScaleBytes ?? 0,
      kvSlotBytes: info.kvSlotBytes ?? 0,
      sparseDown: info.sparseDown ?? { bytes: 0, maxDensity: 0, sparseCalls: 0, denseCalls: 0, columns: 0, nonzeroColumns: 0 },
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

  /** Releases a slot. `KERNELS_SLOT_BUSY` while a step that writes it is in flight. */
  freeSequence(slot: number): void {
    const native = this.live();
    this.slotLength(slot);
    this.notBusy(slot, "freeSequence");
    checkStatus(native.freeSlot(slot), "freeing a sequence", "slot");
    this.lengths[slot] = undefined;
  }

  /** Forgets positions `length …`. `KERNELS_SLOT_BUSY` while a step that writes the slot is in flight. */
  truncateSequence(slot: number, length: number): void {
    this.live();
    const current = this.slotLength(slot);
    this.notBusy(slot, "truncateSequence");
    if (!Number.isSafeInteger(length) || length < 0 || length > current) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_POSITION, "truncation length outside the sequence", {
        field: "length",
        expected: `a whole number in [0, ${current}]`,
        actual: length,
      });
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
    return this.track(batch, async () => {
      let logits: Float32Array;
      try {
        logits = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows);
      } catch (error) {
        throw fromNative(error, "step");
      }
      this.advance(batch);
      return logits;
    });
  }

  /**
   * The step with contract-2 outputs, in one native call: `output: "argmax"` / `"top-k"` are computed
   * from the logits in the native worker (only ids and k logits reach JavaScript; ties go to the
   * lowest id, NaN never wins — `argmaxRows` / `topKRows` of @halo/kernels), and `hiddenRows` returns
   * the residual stream after the last layer, before the output norm (`hidden` exactly when
   * `hiddenRows` was given). On an addon built before contract 2: its step with argmax / top-k
   * derived on this thread (`deriveOutputs`), and hidden rows refused with `KERNELS_UNSUPPORTED_CONFIG`.
   *
   * @example
   * ```ts
   * const { argmax, hidden } = await model.forward({ ...batch, output: "argmax", hiddenRows: Int32Array.of(0) });
   * ```
   */
  async forward(batch: StepBatch): Promise<StepResult> {
    const native = this.live();
    if (!handleHasContract2(native)) return this.forwardOnStaleAddon(native, batch);
    this.validate(batch);
    const output = batch.output ?? "logits";
    const options: NativeStepOptions = { output };
    if (output === "top-k") options.topK = batch.topK!;
    if (batch.hiddenRows !== undefined) options.hiddenRows = batch.hiddenRows;
    const result = await this.track(batch, async () => {
      try {
        const stepped = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows, options);
        this.advance(batch);
        return stepped;
      } catch (error) {
        throw fromNative(error, "forward");
      }
    });
    return {
      logits: result.logits,
      ...(output === "argmax" ? { argmax: result.argmax ?? new Int32Array(0) } : {}),
      ...(output === "top-k" ? { topK: { k: batch.topK!, ids: result.topKIds ?? new Int32Array(0), logits: result.topKLogits ?? new Float32Array(0) } } : {}),
      ...(batch.hiddenRows !== undefined ? { hidden: result.hidden ?? new Float32Array(0) } : {}),
    };
  }

  /** An addon built before contract 2: its step, then argmax / top-k of the logits on this thread; hidden rows refused. */
  private async forwardOnStaleAddon(native: NativeModelHandle, batch: StepBatch): Promise<StepResult> {
    if (batch.hiddenRows !== undefined && batch.hiddenRows.length > 0) {
      throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "this CPU addon does not return hidden states: it was built before backend contract 2", {
        field: "hiddenRows",
        expected: "an addon built for contract 2 (capabilities().hiddenRows true)",
        actual: `${batch.hiddenRows.length} hidden rows on an addon built before contract 2 (a stale prebuild or build)`,
        hint: REBUILD_HINT,
      });
    }
    this.validate(batch);
    const logits = await this.track(batch, async () => {
      try {
        const stepped = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows);
        this.advance(batch);
        return stepped;
      } catch (error) {
        throw fromNative(error, "forward");
      }
    });
    const result = deriveOutputs(logits, batch.logitRows.length, this.config.vocabSize, batch.output, batch.topK);
    return batch.hiddenRows === undefined ? result : { ...result, hidden: new Float32Array(0) };
  }

  private async copySlot(from: number, to: number): Promise<void> {
    this.live();
    this.slotLength(from, "from");
    this.slotLength(to, "to");
    await this.idle();
    // Lengths as they are once every step has landed (a step of `from` in flight is part of the copy).
    const native = this.live2();
    const length = this.slotLength(from, "from");
    this.slotLength(to, "to");
    checkStatus(native.copySlot(from, to, length), "copying a sequence", "to");
    this.lengths[to] = length;
  }

  private async exportSlot(slot: number): Promise<SequenceState> {
    this.live();
    this.slotLength(slot);
    await this.idle();
    const native = this.live2();
    const length = this.slotLength(slot);
    const { numLayers, numKvHeads, headDim } = this.config;
    const size = numLayers * length * numKvHeads * headDim;
    const keys = new Float32Array(size);
    const values = new Float32Array(size);
    checkStatus(native.exportSlot(slot, length, keys, values), "exporting a sequence", "slot");
    return { length, numLayers, numKvHeads, headDim, keys, values };
  }

  private async importSlot(state: SequenceState): Promise<number> {
    this.live();
    validateSequenceState(state, this.config, this.options.contextLength);
    await this.idle();
    const native = this.live2();
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
