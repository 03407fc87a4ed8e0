// Test support (not exported from the package): the HaloError code a call throws.
import { isHaloError } from "@halo/errors";

/** The `code` of the HaloError `fn` throws, or "no error"; anything that is not a HaloError is rethrown. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isHaloError(error)) return error.code;
    throw error;
  }
  return "no error";
}
