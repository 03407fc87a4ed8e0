// Error codes of @halo/cli (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/** Every code the `halo` command throws itself (errors of other packages keep their codes). */
export const CliErrorCode = defineErrorCodes({
  CLI_USAGE: "Unknown command, unknown flag, missing argument or a flag value of the wrong type.",
  CLI_IO: "An output file could not be written.",
  CLI_HUB_UNREACHABLE: "The model hub (HF_ENDPOINT, default https://huggingface.co) could not be reached: no network, DNS failure or refused connection.",
  CLI_HUB_AUTH: "The hub refused the request (401/403): the repository is private or gated, or HF_TOKEN is missing or wrong.",
  CLI_HUB_NOT_FOUND: "The hub has no such repository, revision or file (404).",
  CLI_HUB_HTTP: "The hub answered with an unexpected HTTP status or a malformed file list.",
  CLI_DOWNLOAD_INTERRUPTED: "A download stopped before the expected number of bytes arrived; the partial file is kept and the next pull resumes it.",
  CLI_DOWNLOAD_CHECKSUM: "A downloaded file's size or sha256 differs from the hub's metadata; the file is deleted.",
  CLI_DISK_FULL: "The disk holding the model cache is full (ENOSPC) or not writable.",
  CLI_MODEL_NOT_CACHED:
    "`halo rm` was given a model that is not in halo's cache (the message lists what is; models in the Hugging Face cache are only read, never deleted).",
  CLI_NO_MODEL: "No --model was given and the default model is not cached and could not be downloaded.",
});

/** Union of the codes in {@link CliErrorCode}. */
export type CliErrorCodeName = Exclude<keyof typeof CliErrorCode, "describe">;
