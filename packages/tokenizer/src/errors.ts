// Error codes of @halo/tokenizer (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/tokenizer throws.
 *
 * @example
 * ```ts
 * try { tokenizer.decode([999999]); }
 * catch (error) { if (isHaloError(error) && error.code === TokenizerErrorCode.TOKENIZER_BAD_TOKEN_ID) … }
 * ```
 */
export const TokenizerErrorCode = defineErrorCodes({
  TOKENIZER_BAD_JSON: "tokenizer.json or tokenizer_config.json is not valid JSON, or is truncated.",
  TOKENIZER_BAD_FIELD: "A field of the tokenizer data is missing or has the wrong type or value.",
  TOKENIZER_UNSUPPORTED: "A model, pre-tokenizer, normalizer, decoder or post-processor type halo does not implement.",
  TOKENIZER_BAD_MERGE: "A merge names a token that is not in the vocabulary, or is not two tokens.",
  TOKENIZER_BAD_TOKEN_ID: "A token id passed to decode or to a lookup is outside the vocabulary.",
  TOKENIZER_BAD_TEMPLATE: "The chat template failed to parse or render, or no template is available.",
  TOKENIZER_BAD_ARGUMENT: "An option passed to the tokenizer API is invalid.",
});

/** Union of the codes in {@link TokenizerErrorCode}. */
export type TokenizerErrorCodeName = Exclude<keyof typeof TokenizerErrorCode, "describe">;
