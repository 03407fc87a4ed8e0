// The CPU backend's LoadedModel: slot bookkeeping and validation in TypeScript, the whole step in one native call.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, validateBatch, type LoadedModel, type ResolvedLoadOptions, type StepBatch, type WeightsConfig } from "@halo/kernels";
import { checkStatus, fromNative, type NativeModelHandle } from "./native-binding.js";

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

  private slotLength(slot: number): number {
    const length = Number.isInteger(slot) && slot >= 0 ? this.lengths[slot] : undefined;
    if (length === undefined) {
      throw new HaloError(KernelsErrorCode.KERNELS_UNKNOWN_SLOT, "slot is not allocated", { field: "slot", actual: slot, hint: "Call allocateSequence() and use the id it returns" });
    }
    return length;
  }

  /** Kernel path, threads, huge pages and head type in use. */
  nativeInfo(): CpuModelInfo {
    const info = this.live().info();
    return { ...info, mappedBytes: info.mappedBytes ?? 0 };
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

  async step(batch: StepBatch): Promise<Float32Array> {
    const native = this.live();
    validateBatch(batch, {
      vocabSize: this.config.vocabSize,
      contextLength: this.options.contextLength,
      maxBatchTokens: this.maxBatchTokens,
      sequenceLength: (slot) => (Number.isInteger(slot) && slot >= 0 ? this.lengths[slot] : undefined),
    });
    let logits: Float32Array;
    try {
      logits = await native.step(batch.tokens, batch.positions, batch.slots, batch.logitRows);
    } catch (error) {
      throw fromNative(error, "step");
    }
    for (let i = 0; i < batch.tokens.length; i++) {
      const slot = batch.slots[i]!;
      if (this.lengths[slot] !== undefined) this.lengths[slot] = Math.max(this.lengths[slot]!, batch.positions[i]! + 1);
    }
    return logits;
  }

  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }
}
