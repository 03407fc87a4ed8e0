// Error codes of @halo/h1b-format (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/** Every code @halo/h1b-format throws. */
export const H1bErrorCode = defineErrorCodes({
  H1B_TRUNCATED: "The file ends before a header field, table or tensor it declares.",
  H1B_BAD_MAGIC: "The first bytes are not the magic of the format being read.",
  H1B_BAD_VERSION: "The format version is not one this reader supports.",
  H1B_BAD_DIMENSION: "A dimension is zero, negative, not a whole number, inconsistent with another, or its product overflows.",
  H1B_BAD_FLAGS: "Flag bits that cannot be combined, or that the file's version does not allow.",
  H1B_BAD_OFFSET: "A tensor or table offset points outside the file, is misaligned, or overlaps another tensor.",
  H1B_UNKNOWN_DTYPE:
    "A tensor type id or dtype name this reader does not know, or a backend's packing whose codec was not passed (decoding it needs `codecs`, e.g. `openModel(path, { codecs: backendFactory.packings })`).",
  H1B_UNSUPPORTED: "A valid file feature that halo does not support (the message names it).",
  H1B_MISSING_TENSOR: "A tensor the architecture needs is not in the file.",
  H1B_BAD_TENSOR: "A tensor has the wrong shape, dtype or contents for its role.",
  H1B_BAD_METADATA: "Metadata (GGUF key/value, JSON header, config.json) is malformed or has the wrong type.",
  H1B_MISSING_FILE: "A file the format needs (shard, config.json, sidecar) does not exist.",
  H1B_CHECKSUM_MISMATCH: "A tensor's stored checksum does not match its bytes.",
  H1B_NON_FINITE: "A float tensor (embedding, LM head, norm) or a ternary scale holds NaN or ±Infinity; the message names the tensor and the element.",
  H1B_LOSSY_CONVERSION: "The conversion would change weights (for example to Sherry's 3:4 sparsity); pass force to accept it.",
  H1B_UNKNOWN_FORMAT: "The file's format could not be recognised from its bytes or name.",
  H1B_BAD_ARGUMENT: "An option or argument passed to the API or CLI is invalid.",
  H1B_TOO_LARGE: "A size declared by the file exceeds what the file can hold, so it was refused before allocating.",
  H1B_IO: "Reading or writing the file failed at the operating-system level.",
});

/** Union of the codes in {@link H1bErrorCode}. */
export type H1bErrorCodeName = Exclude<keyof typeof H1bErrorCode, "describe">;
