// Checks a SequenceState against a model before importing it, so a bad state changes nothing.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { SequenceState } from "./loaded-model.js";
import type { WeightsConfig } from "./weights.js";

/**
 * Validates a {@link SequenceState} for `importSequence` into a model of `config` loaded with
 * `contextLength`: an object; `numLayers`, `numKvHeads` and `headDim` equal to the config's
 * (`KERNELS_BAD_ARGUMENT` with expected and actual); `length` a whole number ≥ 0
 * (`KERNELS_BAD_ARGUMENT`) and at most `contextLength` (`KERNELS_CONTEXT_OVERFLOW`); `keys` and
 * `values` Float32Arrays of exactly `numLayers · length · numKvHeads · headDim` values, all finite
 * (`KERNELS_BAD_ARGUMENT` naming the first bad index — no step of finite weights writes NaN or
 * ±Infinity, and one would poison every later attention row). Backends call it before taking a slot.
 *
 * @example
 * ```ts
 * validateSequenceState(state, model.config, model.options.contextLength);
 * ```
 */
export function validateSequenceState(state: SequenceState, config: WeightsConfig, contextLength: number): void {
  if (typeof state !== "object" || state === null) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "a sequence state must be an object", {
      field: "state",
      expected: "a SequenceState from exportSequence()",
      actual: state === null ? "null" : typeof state,
    });
  }
  for (const field of ["numLayers", "numKvHeads", "headDim"] as const) {
    if (state[field] !== config[field]) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `the sequence state's ${field} does not match this model`, {
        field,
        expected: config[field],
        actual: state[field],
        hint: "Import a sequence exported from the same model (same layers and KV heads)",
      });
    }
  }
  const { length } = state;
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "the sequence state's length must be a whole number ≥ 0", {
      field: "length",
      expected: "a whole number ≥ 0",
      actual: length,
    });
  }
  if (length > contextLength) {
    throw new HaloError(KernelsErrorCode.KERNELS_CONTEXT_OVERFLOW, "the sequence is longer than this model's context", {
      field: "length",
      expected: `≤ ${contextLength}`,
      actual: length,
      hint: "Load the model with a larger contextLength, or truncate the sequence before exporting it",
    });
  }
  const size = config.numLayers * length * config.numKvHeads * config.headDim;
  for (const field of ["keys", "values"] as const) {
    const array = state[field];
    if (!(array instanceof Float32Array)) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `the sequence state's ${field} must be a Float32Array`, {
        field,
        expected: "Float32Array",
        actual: Object.prototype.toString.call(array),
      });
    }
    if (array.length !== size) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `the sequence state's ${field} has the wrong length`, {
        field,
        expected: `${size} values (numLayers ${config.numLayers} × length ${length} × numKvHeads ${config.numKvHeads} × headDim ${config.headDim})`,
        actual: array.length,
      });
    }
    for (let i = 0; i < size; i++) {
      if (!Number.isFinite(array[i]!)) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `the sequence state's ${field} hold a value that is not finite`, {
          field: `${field}[${i}]`,
          expected: "a finite number",
          actual: array[i],
          hint: "A step never caches NaN or ±Infinity; the state is corrupt",
        });
      }
    }
  }
}
