// Checks a step batch against a model's state before any work, so a bad batch changes nothing.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import { STEP_OUTPUTS, type StepBatch } from "./loaded-model.js";

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
  for (const [field, array] of [
    ["tokens", tokens],
    ["positions", positions],
    ["slots", slots],
    ["logitRows", logitRows],
  ] as const) {
    if (!(array instanceof Int32Array)) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "batch arrays must be Int32Array", {
        field,
        expected: "Int32Array",
        actual: Object.prototype.toString.call(array),
      });
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
  validateOutputs(batch, limits.vocabSize);
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

/**
 * Validates a batch's contract-2 output fields: `output` one of `logits`, `argmax`, `top-k`; `topK`
 * a whole number in `[1, vocabSize]` with `top-k` (and absent otherwise); `hiddenRows` an
 * Int32Array of strictly increasing row indices. Throws `KERNELS_BAD_BATCH`. {@link validateBatch}
 * calls it; {@link forwardBatch} calls it before falling back to `step`.
 *
 * @example
 * ```ts
 * validateOutputs({ ...batch, output: "top-k", topK: 5 }, 512);
 * ```
 */
export function validateOutputs(batch: StepBatch, vocabSize: number): void {
  const output = batch.output ?? "logits";
  if (!(STEP_OUTPUTS as readonly string[]).includes(output)) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "unknown step output", { field: "output", expected: STEP_OUTPUTS.join(", "), actual: output });
  }
  if (output === "top-k") {
    const k = batch.topK;
    if (typeof k !== "number" || !Number.isSafeInteger(k) || k < 1 || k > vocabSize) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "topK must be a whole number from 1 to the vocabulary size", {
        field: "topK",
        expected: `an integer in [1, ${vocabSize}]`,
        actual: k,
      });
    }
  } else if (batch.topK !== undefined) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, 'topK only applies to output "top-k"', {
      field: "topK",
      expected: "absent",
      actual: batch.topK,
      hint: 'Pass output: "top-k" with it, or leave topK out',
    });
  }
  const hidden = batch.hiddenRows;
  if (hidden === undefined) return;
  if (!(hidden instanceof Int32Array)) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "batch arrays must be Int32Array", {
      field: "hiddenRows",
      expected: "Int32Array",
      actual: Object.prototype.toString.call(hidden),
    });
  }
  const n = batch.tokens.length;
  for (let i = 0; i < hidden.length; i++) {
    const row = hidden[i]!;
    const previous = i === 0 ? -1 : hidden[i - 1]!;
    if (row < 0 || row >= n || row <= previous) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "hiddenRows must be strictly increasing row indices of the batch", {
        field: `hiddenRows[${i}]`,
        expected: `an index in (${previous}, ${n})`,
        actual: row,
      });
    }
  }
}

/**
 * Refuses contract-2 outputs in a plain `step` call (which returns logits only), pointing at
 * `forward` / `forwardBatch`. Throws `KERNELS_BAD_BATCH`.
 *
 * @example
 * ```ts
 * requireLogitsOnly(batch); // at the top of a backend's step()
 * ```
 */
export function requireLogitsOnly(batch: StepBatch): void {
  if ((batch.output !== undefined && batch.output !== "logits") || (batch.hiddenRows !== undefined && batch.hiddenRows.length > 0)) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_BATCH, "step() returns logits only", {
      field: batch.output !== undefined && batch.output !== "logits" ? "output" : "hiddenRows",
      expected: 'output "logits" and no hiddenRows',
      actual: batch.output ?? "hiddenRows",
      hint: "Call forward() (or forwardBatch(model, batch) from @halo/kernels) for argmax, top-k or hidden rows",
    });
  }
}
