// Error codes of @halo/engine (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/** Every code @halo/engine throws. */
export const EngineErrorCode = defineErrorCodes({
  ENGINE_BAD_OPTION: "An option has the wrong type or an impossible value (the message names it).",
  ENGINE_NO_BACKEND: "No available backend can run this model (each candidate's reason is listed).",
  ENGINE_NO_TOKENIZER: "Text was given but the model file carries no tokenizer; pass `tokenizer` or token ids.",
  ENGINE_CONTEXT_OVERFLOW: "The prompt does not fit in the context window.",
  ENGINE_TOKEN_OUT_OF_RANGE: "A token id is not in [0, vocabSize).",
  ENGINE_DISPOSED: "The engine was used after dispose().",
  ENGINE_ABORTED: "Loading was cancelled through its AbortSignal.",
  ENGINE_BAD_MODEL: "The model's config cannot be run (mismatched vocabulary, missing tensors).",
  ENGINE_OUT_OF_MEMORY:
    "The model with the chosen contextLength, maxSequences and kvDtype needs more memory than any backend that could run it has (its estimateMemory against probe().memory); lower them or pick another backend.",
  ENGINE_MODEL_CHANGED: "The model file was replaced or modified after its weights were verified and before the backend had taken them; load it again.",
});

/** Union of the codes in {@link EngineErrorCode}. */
export type EngineErrorCodeName = Exclude<keyof typeof EngineErrorCode, "describe">;
