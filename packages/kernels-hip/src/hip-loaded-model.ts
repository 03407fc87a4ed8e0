// The GPU backend's LoadedModel: slot bookkeeping and validation in TypeScript, each step one native call (one upload, the launches, one download).
import { HaloError } from "@halo/errors";
import {
  KernelsErrorCode,
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
import { checkStatus, fromNative, statusError, STEP_NOT_APPLIED, type GpuModelHandle, type NativeStepOptions } from "./native-binding.js";
import { TOPK_MAX } from "./hip-memory.js";

/**
 * What the native side reports about a loaded model: the device, the device bytes held, and the
 * launch counts (graph replays included).
 *
 * @example
 * ```ts
 * const { arch, launchesPerStep, graphReplays } = (model as HipLoadedModel).nativeInfo();
 * ```
 */
export interface HipModelInfo {
  /** `hip`, `cuda` or `emulator`. */
  readonly kind: string;
  /** The device's name ("AMD Radeon 8060S Graphics", "halo GPU emulator (CPU)"). */
  readonly name: string;
  /** The target whose code object runs ("gfx1151", "sm_90", "emulator"). */
  readonly arch: string;
  /** Device bytes of the halo-g2 matrices, their scales and the norms. */
  readonly weightsBytes: number;
  /** Device bytes of an untied LM head (0 when tied: the head reads the embedding). */
  readonly headBytes: number;
  readonly embeddingBytes: number;
  /** Device bytes of the KV cache: every slot, allocated at load. */
  readonly kvBytes: number;
  /** Device bytes of the fixed step buffers and the RoPE table. */
  readonly scratchBytes: number;
  /** Kernel launches of the last step. */
  readonly launchesPerStep: number;
  /** Kernel launches since the device was opened (graph replays count their kernels). */
  readonly launches: number;
  /** Whether repeated step shapes replay a recorded graph. */
  readonly graphs: boolean;
  /** Steps served by replaying a graph. */
  readonly graphReplays: number;
}

/**
 * A model held by the GPU backend. Created by `createBackend().loadModel(...)`. Every slot's KV is
 * allocated on the device at load, so allocating and freeing a sequence is bookkeeping here; a step
 * is one asynchronous native call, run one at a time per model in the order they were made.
 *
 * @example
 * ```ts
 * const model = await createBackend({ device: "emulator" }).loadModel(weights, { contextLength: 64, kvDtype: "f16" });
 * const slot = model.allocateSequence();
 * const { argmax } = await model.forward({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(0, 1),
 *   slots: Int32Array.of(slot, slot), logitRows: Int32Array.of(1), output: "argmax" });
 * ```
 */
export class HipLoadedModel implements LoadedModel {
  readonly config: WeightsConfig;
  readonly options: ResolvedLoadOptions;
  private native: GpuModelHandle | null;
  /** `[maxSequences]` length of each allocated slot, undefined when free. */
  private readonly lengths: Array<number | undefined>;
  private readonly maxBatchTokens: number;
  /** The last native call queued: steps run on the device one after another, in call order. */
  private queue: Promise<void> = Promise.resolve();
  /** Steps queued or running (each settles, never rejects): copy / export / import / dispose wait for all of them. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Slot → number of queued or running steps that write it: freeSequence / truncateSequence refuse these. */
  private readonly busy = new Map<number, number>();

  /** @internal */
  constructor(config: WeightsConfig, options: ResolvedLoadOptions, native: GpuModelHandle, maxBatchTokens: number) {
    this.config = config;
    this.options = options;
    this.native = native;
    this.maxBatchTokens = maxBatchTokens;
    this.lengths = new Array<number | undefined>(options.maxSequences).fill(undefined);
  }

  private live(): GpuModelHandle {
    if (this.native === null) throw new HaloError(KernelsErrorCode.KERNELS_DISPOSED, "the model was disposed", { hint: "Load the model again" });
    return this.native;
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

  /** Refuses to change a slot a queued or running step writes (its promise would then set the length back). */
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

  /** Resolves once no step is queued or running (steps started meanwhile are waited for too). */
  private async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /**
   * Queues a step behind the model's earlier steps, marking its slots busy until it settles;
   * {@link idle} waits for it, so a copy / export / import never runs before the lengths it sets.
   */
  private track<T>(batch: StepBatch, run: () => Promise<T>): Promise<T> {
    const slots = new Set(batch.slots);
    for (const slot of slots) this.busy.set(slot, (this.busy.get(slot) ?? 0) + 1);
    const done = this.queue.then(run).finally(() => {
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
    this.queue = settled;
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return done;
  }

  /**
   * The device, the bytes held and the launch counts, as the native side reports them (while a step
   * runs: as of the last step's end, or, during the first step, as loaded — no launches yet).
   * `KERNELS_DISPOSED` after dispose.
   *
   * @example
   * ```ts
   * const { arch, kvBytes, launchesPerStep } = model.nativeInfo();
   * ```
   */
  nativeInfo(): HipModelInfo {
    const native = this.live();
    const info = native.info();
    if (typeof info === "number") throw statusError(info, "reading the model's info", native.lastError());
    return { ...info };
  }

  allocateSequence(): number {
    this.live();
    const slot = this.lengths.indexOf(undefined);
    if (slot < 0) {
      throw new HaloError(KernelsErrorCode.KERNELS_NO_FREE_SLOT, "all sequence slots are in use", {
        expected: `at most ${this.options.maxSequences} live sequences`,
        actual: this.options.maxSequences + 1,
        hint: "Free a finished sequence, or load with a larger maxSequences",
      });
    }
    this.lengths[slot] = 0;
    return slot;
  }

  /** Releases a slot (its device KV stays allocated for the next sequence). `KERNELS_SLOT_BUSY` while a step that writes it is in flight. */
  freeSequence(slot: number): void {
    this.live();
    this.slotLength(slot);
    this.notBusy(slot, "freeSequence");
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

  /** After a step: each slot's length covers the positions it stepped (the lengths validate() saw, plus the rows). */
  private advance(batch: StepBatch): void {
    for (let i = 0; i < batch.tokens.length; i++) {
      const slot = batch.slots[i]!;
      if (this.lengths[slot] !== undefined) this.lengths[slot] = Math.max(this.lengths[slot]!, batch.positions[i]! + 1);
    }
  }

  /**
   * One native step of a validated batch. A failure (an injected or real device fault) rejects with its HaloError and
   * changes no length: the rows it may have written lie at or past each slot's length, where the next step writes again.
   * `native` is the handle at the call: a step made before dispose() still runs (dispose waits for it).
   */
  private async run(native: GpuModelHandle, batch: StepBatch, options: NativeStepOptions, what: string) {
    let result;
    try {
      result = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows, options);
    } catch (error) {
      throw fromNative(error, what);
    }
    if (result.status !== 0 || !("logits" in result)) {
      throw statusError(result.status, what, "message" in result ? result.message : "", "batch", undefined, STEP_NOT_APPLIED);
    }
    this.advance(batch);
    return result;
  }

  async step(batch: StepBatch): Promise<Float32Array> {
    requireLogitsOnly(batch);
    const native = this.live();
    this.validate(batch);
    const copy = snapshot(batch);
    return this.track(copy, async () => (await this.run(native, copy, { output: "logits" }, "step")).logits);
  }

  /**
   * The step with contract-2 outputs, in one native call: `output: "argmax"` and `"top-k"` with
   * `topK` ≤ 64 are ranked on the device (only ids and k logits are downloaded; ties go to the
   * lowest id, NaN never wins — `argmaxRows` / `topKRows` of @halo/kernels); a larger `topK`
   * downloads the logits and ranks them with `topKRows` on this thread. `hiddenRows` returns the
   * residual stream after the last layer, before the output norm (`hidden` exactly when
   * `hiddenRows` was given).
   *
   * @example
   * ```ts
   * const { topK } = await model.forward({ ...batch, output: "top-k", topK: 40 });
   * ```
   */
  async forward(batch: StepBatch): Promise<StepResult> {
    const native = this.live();
    this.validate(batch);
    const copy = snapshot(batch);
    const output = copy.output ?? "logits";
    const k = copy.topK;
    const onHost = output === "top-k" && k! > TOPK_MAX;
    const options: NativeStepOptions = { output: onHost ? "logits" : output };
    if (output === "top-k" && !onHost) options.topK = k!;
    if (copy.hiddenRows !== undefined) options.hiddenRows = copy.hiddenRows;
    const result = await this.track(copy, () => this.run(native, copy, options, "forward"));
    const rows = copy.logitRows.length;
    const hidden = copy.hiddenRows !== undefined ? { hidden: result.hidden ?? new Float32Array(0) } : {};
    if (output === "logits") return { logits: result.logits, ...hidden };
    if (output === "argmax") return { logits: new Float32Array(0), argmax: result.argmax ?? new Int32Array(0), ...hidden };
    if (onHost) return { logits: new Float32Array(0), topK: topKRows(result.logits, rows, this.config.vocabSize, k!), ...hidden };
    return {
      logits: new Float32Array(0),
      topK: { k: k!, ids: result.topKIds ?? new Int32Array(0), logits: result.topKLogits ?? new Float32Array(0) },
      ...hidden,
    };
  }

  /**
   * Makes slot `to` (allocated) an exact copy of slot `from`'s KV — the first
   * `sequenceLength(from)` positions of every layer, copied on the device once no step is in flight
   * (the lengths are read then). `from === to` changes nothing.
   *
   * @example
   * ```ts
   * const fork = model.allocateSequence();
   * await model.copySequence(prompt, fork); // n > 1 completions share the prefilled prompt
   * ```
   */
  async copySequence(from: number, to: number): Promise<void> {
    this.live();
    this.slotLength(from, "from");
    this.slotLength(to, "to");
    await this.idle();
    const native = this.live();
    const length = this.slotLength(from, "from");
    this.slotLength(to, "to");
    if (from !== to) checkStatus(native, native.copySlot(from, to, length), "copying a sequence", "to");
    this.lengths[to] = length;
  }

  /**
   * The KV of a slot as float32 rows `[numLayers][length][numKvHeads·headDim]`, downloaded as
   * attention reads them (f16 widened) once no step is in flight.
   *
   * @example
   * ```ts
   * const state = await model.exportSequence(slot);
   * const moved = await otherModel.importSequence!(state);
   * ```
   */
  async exportSequence(slot: number): Promise<SequenceState> {
    this.live();
    this.slotLength(slot);
    await this.idle();
    const native = this.live();
    const length = this.slotLength(slot);
    const { numLayers, numKvHeads, headDim } = this.config;
    const size = numLayers * length * numKvHeads * headDim;
    const keys = new Float32Array(size);
    const values = new Float32Array(size);
    if (length > 0) checkStatus(native, native.exportSlot(slot, length, keys, values), "exporting a sequence", "slot");
    return { length, numLayers, numKvHeads, headDim, keys, values };
  }

  /**
   * Allocates a slot holding `state` and returns its id: every row is uploaded and rounded through
   * the KV dtype as a step's KV write rounds it. Checked first with `validateSequenceState`
   * (`KERNELS_BAD_ARGUMENT`, `KERNELS_CONTEXT_OVERFLOW`), then `KERNELS_NO_FREE_SLOT`; written once no
   * step is in flight.
   *
   * @example
   * ```ts
   * const slot = await model.importSequence(await referenceModel.exportSequence!(prefilled));
   * ```
   */
  async importSequence(state: SequenceState): Promise<number> {
    this.live();
    validateSequenceState(state, this.config, this.options.contextLength);
    await this.idle();
    const native = this.live();
    const slot = this.allocateSequence();
    try {
      if (state.length > 0) checkStatus(native, native.importSlot(slot, state.length, state.keys, state.values), "importing a sequence", "state");
    } catch (error) {
      this.lengths[slot] = undefined;
      throw error;
    }
    this.lengths[slot] = state.length;
    return slot;
  }

  /** Releases the device memory once the steps in flight have finished; every later call throws `KERNELS_DISPOSED`. Twice is allowed. */
  dispose(): void {
    const native = this.native;
    if (native === null) return;
    this.native = null;
    if (this.inFlight.size === 0) native.dispose();
    else void this.idle().then(() => native.dispose());
  }
}

/** The batch's arrays copied, so a caller reusing its buffers while the step waits in the queue changes nothing. */
function snapshot(batch: StepBatch): StepBatch {
  return {
    ...batch,
    tokens: Int32Array.from(batch.tokens),
    positions: Int32Array.from(batch.positions),
    slots: Int32Array.from(batch.slots),
    logitRows: Int32Array.from(batch.logitRows),
    ...(batch.hiddenRows === undefined ? {} : { hiddenRows: Int32Array.from(batch.hiddenRows) }),
  };
}
