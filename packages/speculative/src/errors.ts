// Error codes of @halo/speculative (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/speculative throws.
 *
 * @example
 * ```ts
 * if (isHaloError(error) && error.code === SpeculativeErrorCode.SPECULATIVE_BAD_OPTION) console.error(error.field);
 * ```
 */
export const SpeculativeErrorCode = defineErrorCodes({
  SPECULATIVE_BAD_OPTION:
    "A speculative-decoding option is unknown, of the wrong kind or out of range (drafter name, draft length, n-gram sizes, policy); the error names the field, what it takes and the value found.",
  SPECULATIVE_DRAFTER_MISMATCH:
    "A drafter does not fit the model it drafts for: a draft model with another vocabulary, Medusa heads of another hidden size, or a drafter that needs hidden states on a backend that returns none.",
});

/** Union of the codes in {@link SpeculativeErrorCode}. */
export type SpeculativeErrorCodeName = Exclude<keyof typeof SpeculativeErrorCode, "describe">;
