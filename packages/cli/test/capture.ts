// Test support: a CommandContext whose stdout and stderr are collected, for running commands in-process.
import type { CommandContext } from "../src/context.js";

/** Runs-in-process context: `out` and `err` collect what the command writes. */
export function captureOutput(
  env: Readonly<Record<string, string | undefined>>,
  stdin?: CommandContext["stdin"],
): { out: string[]; err: string[]; ctx: CommandContext } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    ctx: { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, env, ...(stdin !== undefined ? { stdin } : {}) },
  };
}
