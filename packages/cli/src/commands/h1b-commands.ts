// `halo inspect`, `halo convert`, `halo verify`: the h1b command's own implementations, run under the halo name, with the installed backends' layouts.
import { runCli } from "@halo/h1b-format";
import type { CommandContext } from "../context.js";
import { installedPackings } from "../installed-packings.js";

/** The h1b subcommands halo exposes unchanged. */
export const H1B_COMMANDS = ["inspect", "convert", "verify"] as const;

/** Renames `h1b <command>` to `halo <command>` in help and error lines. */
function rename(text: string, name: string): string {
  return text
    .replace(/`h1b --help`/g, `\`halo ${name} --help\``)
    .replace(/\bh1b (inspect|convert|verify|synth|--help)\b/g, "halo $1")
    .replace(/^h1b\b/, "halo");
}

/**
 * An h1b error line in halo's one error format, `halo <command>: <message> [CODE]`: h1b writes
 * `h1b <command>: CODE: message`, and `h1b: …` for flags it cannot parse (a usage error).
 */
export function haloErrorLine(line: string, name: string): string {
  const coded = /^h1b [\w-]+: ([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(line);
  if (coded !== null) return `halo ${name}: ${rename(coded[2]!, name)} [${coded[1]}]`;
  const unknown = /^h1b: Unknown option '([^']+)'/.exec(line);
  if (unknown !== null) return `halo ${name}: unknown flag ${unknown[1]}. Run \`halo ${name} --help\` for its flags [CLI_USAGE]`;
  const usage = /^h1b: ([\s\S]*?)\.?$/.exec(line);
  if (usage !== null) return `halo ${name}: ${rename(usage[1]!, name)} [CLI_USAGE]`;
  return rename(line, name);
}

/**
 * A halo command that runs `h1b <name>` with the same flags, output and exit codes
 * (0 success, 1 a file or conversion problem, 2 a usage error), and one difference: it passes the
 * installed backends' packings ({@link installedPackings}), so `halo convert --packing auto`
 * (the default) stores the own layout of the best installed backend that runs here and every command decodes files
 * stored in an installed backend's layout (`h1b` itself sees no backends and writes `halo-v2`).
 *
 * @example
 * ```ts
 * await h1bCommand("inspect")(["model.halo", "--json"], ctx);
 * ```
 */
export function h1bCommand(name: (typeof H1B_COMMANDS)[number]): (argv: readonly string[], ctx: CommandContext) => Promise<number> {
  return async (argv, ctx) =>
    runCli(
      [name, ...argv],
      {
        out: (text) => ctx.stdout.write(`${argv.includes("--help") || argv.includes("-h") ? rename(text, name) : text}\n`),
        err: (text) => ctx.stderr.write(`${haloErrorLine(text, name)}\n`),
      },
      { codecs: await installedPackings(ctx.env) },
    );
}
