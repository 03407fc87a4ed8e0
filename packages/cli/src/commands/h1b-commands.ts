// `halo inspect`, `halo convert`, `halo verify`: the h1b command's own implementations, run under the halo name.
import { runCli } from "@halo/h1b-format";
import type { CommandContext } from "../context.js";

/** The h1b subcommands halo exposes unchanged. */
export const H1B_COMMANDS = ["inspect", "convert", "verify"] as const;

/** Renames `h1b <command>` to `halo <command>` in help and error lines. */
function rename(text: string): string {
  return text.replace(/\bh1b (inspect|convert|verify|synth|--help)\b/g, "halo $1").replace(/^h1b\b/, "halo");
}

/**
 * A halo command that runs `h1b <name>` with the same flags, output and exit codes
 * (0 success, 1 a file or conversion problem, 2 a usage error).
 *
 * @example
 * ```ts
 * await h1bCommand("inspect")(["model.halo", "--json"], ctx);
 * ```
 */
export function h1bCommand(name: (typeof H1B_COMMANDS)[number]): (argv: readonly string[], ctx: CommandContext) => Promise<number> {
  return (argv, ctx) =>
    runCli([name, ...argv], {
      out: (text) => ctx.stdout.write(`${argv.includes("--help") || argv.includes("-h") ? rename(text) : text}\n`),
      err: (text) => ctx.stderr.write(`${rename(text)}\n`),
    });
}
