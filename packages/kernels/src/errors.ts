// Error codes of @halo/kernels (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/kernels throws. Backends in other packages reuse these codes for the same
 * misuse, so callers can match on one vocabulary whatever backend runs.
 *
 * @example
 * ```ts
 * try { await model.step(batch); }
 * catch (error) {
 *   if (isHaloError(error) && error.code === KernelsErrorCode.KERNELS_CONTEXT_OVERFLOW) rollOver();
 * }
 * ```
 */
export const KernelsErrorCode = defineErrorCodes({
  KERNELS_UNAVAILABLE: "The backend cannot run on this machine (missing hardware, driver or native build); probe() says why.",
  KERNELS_UNSUPPORTED_CONFIG: "The model's architecture, activation, head layout, packing or dtype is one this backend does not support.",
  KERNELS_BAD_WEIGHTS: "A weight tensor has the wrong shape, scale count or dtype for its role in the config.",
  KERNELS_BAD_OPTION: "A load option (contextLength, maxSequences, kvDtype, activationQuant) is invalid.",
  KERNELS_ABORTED: "Loading was cancelled through the AbortSignal passed in the options.",
  KERNELS_DISPOSED: "The loaded model was used after dispose().",
  KERNELS_NO_FREE_SLOT: "allocateSequence() was called while all maxSequences slots are in use.",
  KERNELS_UNKNOWN_SLOT: "A slot id that is not allocated was passed to step, free or truncate.",
  KERNELS_SLOT_BUSY:
    "freeSequence or truncateSequence was called on a slot of a step still in flight (a backend whose steps run off the JavaScript thread); await the step's promise first.",
  KERNELS_BAD_BATCH: "A step batch is malformed: arrays of different lengths, empty, too large, or bad logit rows.",
  KERNELS_BAD_POSITION: "A token's position does not continue its sequence (gap, repeat or reorder); truncate first to rewrite.",
  KERNELS_CONTEXT_OVERFLOW: "A position or truncation length is at or past the contextLength the model was loaded with.",
  KERNELS_TOKEN_OUT_OF_RANGE: "A token id is negative or not below the vocabulary size.",
  KERNELS_BAD_ARGUMENT: "An argument of a kernel operation (shapes, lengths, options) is invalid.",
  KERNELS_CONFORMANCE_MISMATCH: "A backend's result differs from the reference beyond the named tolerance of a conformance check.",
});

/**
 * Union of the codes in {@link KernelsErrorCode}.
 *
 * @example
 * ```ts
 * const code: KernelsErrorCodeName = "KERNELS_UNKNOWN_SLOT";
 * ```
 */
export type KernelsErrorCodeName = Exclude<keyof typeof KernelsErrorCode, "describe">;
