// Error codes of @halo/sampler (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/sampler throws.
 *
 * @example
 * ```ts
 * if (isHaloError(error) && error.code === SamplerErrorCode.SAMPLER_BAD_OPTION) console.error(error.field);
 * ```
 */
export const SamplerErrorCode = defineErrorCodes({
  SAMPLER_BAD_OPTION:
    "A sampler option is out of range, not a number of the right kind, or not a known option (the error names the field, the allowed range and the value found).",
  SAMPLER_VOCAB_MISMATCH:
    "A logits row's length differs from the vocabulary size the sampler was created for, or a logit bias names a token id outside the vocabulary.",
  SAMPLER_BAD_TOKEN: "A token id in the penalty history is not an integer in [0, vocabSize).",
  SAMPLER_NO_CANDIDATES: "After sanitising, penalties and logit bias every logit is −Infinity (or was NaN), so no token can be chosen.",
});

/** Union of the codes in {@link SamplerErrorCode}. */
export type SamplerErrorCodeName = Exclude<keyof typeof SamplerErrorCode, "describe">;
