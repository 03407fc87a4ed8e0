// Test support (not exported from the package): the HaloError a call throws, or its code.
import { HaloError } from "@halo/errors";

/** The HaloError `fn` throws; anything else it throws is rethrown, and returning normally fails the test. */
export function caught(fn: () => unknown): HaloError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HaloError) return error;
    throw error;
  }
  throw new Error("expected a HaloError");
}

/** The `code` of the HaloError `fn` throws, or "no error"; anything that is not a HaloError is rethrown. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof HaloError) return error.code;
    throw error;
  }
  return "no error";
}
