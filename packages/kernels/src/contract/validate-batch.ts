// Checks a step batch against a model's state before any work, so a bad batch changes nothing.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { StepBatch } from "./loaded-model.js";

/**
 * What {@link validateBatch} needs to know about the model.
 *
 * @example
 * ```ts
 * const limits: BatchLimits = { vocabSize: 512, contextLength: 64, maxBatchTokens: 512, sequenceLength: () => 0 };
 * ```
 */
export interface BatchLimits {
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly maxBatchTokens: number;
  /** Current length of an allocated slot, or undefined when the slot is not allocated. */
  sequenceLength(slot: number): number | undefined;
}

/**
 * Validates a batch: equal lengths, 1…maxBatchTokens rows, token ids in range, allocated slots,
 * positions that continue each slot in order and stay below `contextLength`, and strictly
 * increasing `logitRows` within the batch. Throws `KERNELS_BAD_BATCH`, `KERNELS_TOKEN_OUT_OF_RANGE`,
 * `KERNELS_UNKNOWN_SLOT`, `KERNELS_CONTEXT_OVERFLOW` or `KERNELS_BAD_POSITION`.
 *
 * @example
 * ```ts
 * validateBatch(batch, { vocabSize: 512, contextLength: 256, maxBatchTokens: 4096,
 *   sequenceLength: (slot) => lengths.get(slot) });
 * ```
 */
export function validateBatch(batch: StepBatch, limits: BatchLimits): void {
  const { tokens, positions, slots, logitRows } = batch;
  for (const [field, array] of [["tokens", tokens], ["positions", positions], ["slots", slots], ["logitRows", logitRows]] as const) {
    if (!(array instanceof Int32Array)) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "batch arrays must be Int32Array", { field, expected: "Int32Array", actual: Object.prototype.toString.call(array) });
    }
  }
  const n = tokens.length;
  if (positions.length !== n || slots.length !== n) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "tokens, positions and slots must have the same length", {
      expected: `${n} positions and ${n} slots`,
      actual: `${positions.length} positions, ${slots.length} slots`,
    });
  }
  if (n === 0 || n > limits.maxBatchTokens) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "batch size out of range", {
      field: "tokens",
      expected: `1 … ${limits.maxBatchTokens} tokens`,
      actual: n,
      hint: "Split long prompts into several steps",
    });
  }
  for (let i = 0; i < logitRows.length; i++) {
    const row = logitRows[i]!;
    const previous = i === 0 ? -1 : logitRows[i - 1]!;
    if (row < 0 || row >= n || row <= previous) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "logitRows must be strictly increasing row indices of the batch", {
        field: `logitRows[${i}]`,
        expected: `an index in (${previous}, ${n})`,
        actual: row,
      });
    }
  }
  const next = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const token = tokens[i]!;
    if (token < 0 || token >= limits.vocabSize) {
      throw new HaloError(KernelsErrorCode.KERNELS_TOKEN_OUT_OF_RANGE, "token id out of range", {
        field: `tokens[${i}]`,
        expected: `an id in [0, ${limits.vocabSize})`,
        actual: token,
      });
    }
    const slot = slots[i]!;
    let expected = next.get(slot);
    if (expected === undefined) {
      expected = limits.sequenceLength(slot);
      if (expected === undefined) {
        throw new HaloError(KernelsErrorCode.KERNELS_UNKNOWN_SLOT, "slot is not allocated", {
          field: `slots[${i}]`,
          actual: slot,
          hint: "Call allocateSequence() and use the id it returns",
        });
      }
    }
    const position = positions[i]!;
    if (position >= limits.contextLength) {
      throw new HaloError(KernelsErrorCode.KERNELS_CONTEXT_OVERFLOW, "position is past the context length", {
        field: `positions[${i}]`,
        expected: `< ${limits.contextLength}`,
        actual: position,
        hint: "Load the model with a larger contextLength, or truncate the sequence",
      });
    }
    if (position !== expected) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_POSITION, `position does not continue sequence in slot ${slot}`, {
        field: `positions[${i}]`,
        expected,
        actual: position,
        hint: "Positions of a slot must be its current length, then +1 per row; truncateSequence() first to rewrite",
      });
    }
    next.set(slot, expected + 1);
  }
}
