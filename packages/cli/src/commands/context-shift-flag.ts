// `--context-shift` of `halo chat` and `halo serve`: what a conversation does when it fills the context.
import { CONTEXT_SHIFT_POLICIES } from "@halo/engine";
import { HaloError } from "@halo/errors";
import type { FlagSpec } from "../args.js";
import { CliErrorCode } from "../errors.js";

/** The named policies as flag values. */
export type ContextShiftFlag = (typeof CONTEXT_SHIFT_POLICIES)[number];

/** The flag's spec (shared by `chat` and `serve`). */
export const CONTEXT_SHIFT_FLAG: FlagSpec = {
  type: "string",
  placeholder: "drop-oldest|error",
  description: `when a conversation fills the context: ${CONTEXT_SHIFT_POLICIES.join(" | ")} (default drop-oldest: drop the oldest turns, keep the system prompt)`,
};

/**
 * Reads `--context-shift` (undefined when absent); anything but `drop-oldest` or `error` is a usage error.
 *
 * @example
 * ```ts
 * contextShiftFlag("chat", { "context-shift": "error" }); // "error"
 * ```
 */
export function contextShiftFlag(command: string, values: Record<string, unknown>): ContextShiftFlag | undefined {
  const raw = values["context-shift"];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !(CONTEXT_SHIFT_POLICIES as readonly string[]).includes(raw)) {
    throw new HaloError(CliErrorCode.CLI_USAGE, `--context-shift must be ${CONTEXT_SHIFT_POLICIES.join(" or ")}`, {
      field: "context-shift",
      actual: raw,
      hint: "drop-oldest drops the oldest turns when the context is full; error stops with an error instead",
    });
  }
  return raw as ContextShiftFlag;
}
