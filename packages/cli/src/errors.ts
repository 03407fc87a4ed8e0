// Error codes of @halo/cli (documented in docs/errors.md).
import { defineErrorCodes } from "@halo/errors";

/** Every code the `halo` command throws itself (errors of other packages keep their codes). */
export const CliErrorCode = defineErrorCodes({
  CLI_USAGE: "Unknown command, unknown flag, missing argument or a flag value of the wrong type.",
  CLI_IO: "An output file could not be written.",
});

/** Union of the codes in {@link CliErrorCode}. */
export type CliErrorCodeName = Exclude<keyof typeof CliErrorCode, "describe">;
