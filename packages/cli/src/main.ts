// The `halo` command's dispatcher: subcommands, help, one-line errors and exit codes.
import { isHaloError } from "@halo/errors";
import { benchCommand } from "./commands/bench.js";
import { evalCommand } from "./commands/eval.js";
import { generateCommand } from "./commands/generate.js";
import { chatCommand } from "./commands/chat.js";
import { doctorCommand } from "./commands/doctor.js";
import { h1bCommand } from "./commands/h1b-commands.js";
import { pplCommand } from "./commands/ppl.js";
import { pullCommand } from "./commands/pull.js";
import { runCommand } from "./commands/run.js";
import { serveCommand } from "./commands/serve.js";
import type { CommandContext } from "./context.js";

/** Exit codes of `halo` (documented in the package README). */
export const ExitCode = {
  OK: 0,
  /** A HaloError: bad input, bad file, bad option. */
  ERROR: 1,
  /** Wrong usage (unknown command or flag). */
  USAGE: 2,
  /** An unexpected internal error (a bug: please report it). */
  INTERNAL: 70,
  /** Interrupted by Ctrl-C. */
  INTERRUPTED: 130,
} as const;

type Command = (argv: readonly string[], ctx: CommandContext) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  generate: { run: generateCommand, summary: "stream a completion of a prompt" },
  eval: { run: evalCommand, summary: "run token ids and write the logits of every position" },
  run: { run: runCommand, summary: "answer one prompt, streaming (default model pulled on first use)" },
  chat: { run: chatCommand, summary: "talk with a model in the terminal" },
  pull: { run: pullCommand, summary: "download a model from the Hugging Face hub into the cache" },
  inspect: { run: h1bCommand("inspect"), summary: "show a model file's format, config, tensors and sizes" },
  convert: { run: h1bCommand("convert"), summary: "convert a model to another format (.halo, .h1b, GGUF, HF)" },
  verify: { run: h1bCommand("verify"), summary: "check a model file is sound (exit 0 only then)" },
  ppl: { run: pplCommand, summary: "perplexity of a text file" },
  doctor: { run: doctorCommand, summary: "CPU, SIMD path, backends, memory, cache and versions" },
  bench: { run: benchCommand, summary: "load, prefill and decode speed with the bandwidth roofline" },
  serve: { run: serveCommand, summary: "OpenAI-compatible HTTP server with live stats and a chat page" },
};

/** Top-level help. */
export function mainHelp(): string {
  const lines = ["Usage: halo <command> [options]", "", "Commands:"];
  for (const [name, { summary }] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${summary}`);
  lines.push("", "Run `halo <command> --help` for a command's options and examples.", "Add --verbose to any command to see stack traces.", "");
  return lines.join("\n");
}

/**
 * Runs `halo` with `argv` (without the node and script paths) and returns the exit code.
 * Errors print one line (a stack trace with `--verbose`).
 */
export async function main(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const verbose = argv.includes("--verbose");
  const args = argv.filter((a) => a !== "--verbose");
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    ctx.stdout.write(mainHelp());
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    ctx.stderr.write(`halo: unknown command "${name}". Commands: ${Object.keys(COMMANDS).join(", ")}. Run \`halo --help\`.\n`);
    return ExitCode.USAGE;
  }
  try {
    return await command.run(rest, ctx);
  } catch (error) {
    if (isHaloError(error)) {
      ctx.stderr.write(`halo ${name}: ${error.message} [${error.code}]\n`);
      if (verbose && error.stack !== undefined) ctx.stderr.write(`${error.stack}\n`);
      return error.code === "CLI_USAGE" ? ExitCode.USAGE : ExitCode.ERROR;
    }
    ctx.stderr.write(`halo ${name}: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
    if (verbose && error instanceof Error && error.stack !== undefined) ctx.stderr.write(`${error.stack}\n`);
    else ctx.stderr.write("Run again with --verbose for the stack trace, and please report it.\n");
    return ExitCode.INTERNAL;
  }
}
