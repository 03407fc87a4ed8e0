// Error codes of @halo/model-tiny (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/model-tiny throws.
 *
 * @example
 * ```ts
 * if (isHaloError(error) && error.code === ModelTinyErrorCode.MODEL_TINY_FILE_MISSING) console.error(error.path);
 * ```
 */
export const ModelTinyErrorCode = defineErrorCodes({
  MODEL_TINY_FILE_MISSING:
    "A model file @halo/model-tiny ships (models/halo-tiny.halo, models/halo-tiny-draft.halo or models/halo-tiny.h1b-medusa) is not on disk: the package install is incomplete.",
});

/** Union of the codes in {@link ModelTinyErrorCode}. */
export type ModelTinyErrorCodeName = Exclude<keyof typeof ModelTinyErrorCode, "describe">;
