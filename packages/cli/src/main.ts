// The `halo` command's dispatcher: subcommands, help, one-line errors and exit codes.
import { closestMatch, HaloError, isHaloError } from "@halo/errors";
import { isBrokenPipe } from "./broken-pipe.js";
import { inCliTerms, isFlagOption } from "./cli-terms.js";
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
import { showCommand } from "./commands/show.js";
import { modelsCommand, rmCommand } from "./commands/models.js";
import type { CommandContext } from "./context.js";
import { CliErrorCode } from "./errors.js";
import { versionText } from "./version.js";

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
  models: { run: modelsCommand, summary: "list the cached models (halo's cache and the Hugging Face cache) with sizes" },
  rm: { run: rmCommand, summary: "delete a model from halo's cache" },
  show: { run: showCommand, summary: "what a model is and how halo runs it: config, packing, chat template, files" },
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
  lines.push(
    "",
    "Run `halo <command> --help` for a command's options and examples.",
    "Add --verbose to any command to see stack traces. `halo --version` (-V) prints the versions.",
    "",
  );
  return lines.join("\n");
}

/**
 * The one error line of `halo`: `halo <command>: <message> [CODE]`, the command named once (a
 * message that already starts with it is not prefixed again); the hint, when there is one, ends
 * the message. Option names of the JavaScript API are written as the flags that set them
 * (`contextLength` → `--context-length`), and line breaks inside it are escaped (`\n`), so the error is always one line.
 * `label` is `halo <command>` or, before a command is known, `halo`; `command` picks the command's own flag
 * for an option where it differs (`halo bench --batch` sets `maxSequences`).
 */
function errorLine(label: string, error: HaloError, command?: string): string {
  const message = error.message.startsWith(`${label}: `) ? error.message.slice(label.length + 2) : error.message;
  return `${label}: ${oneLine(inCliTerms(message, command))} [${error.code}]\n`;
}

/** A message on one line: line breaks it quotes (a file's text, a parser's excerpt) are written `\n`. */
function oneLine(text: string): string {
  return text.replace(/\r\n|\r|\n/g, "\\n");
}

/**
 * Runs `halo` with `argv` (without the node and script paths) and returns the exit code.
 * Errors print one line, `halo <command>: <message> [CODE]` (a stack trace with `--verbose`).
 *
 * @example
 * ```ts
 * const code = await main(["run", "--model", "tiny.halo", "Hello"], { stdout: process.stdout, stderr: process.stderr, env: process.env });
 * ```
 */
export async function main(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const verbose = argv.includes("--verbose");
  const args = argv.filter((a) => a !== "--verbose");
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    ctx.stdout.write(mainHelp());
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (name === "--version" || name === "-V") {
    ctx.stdout.write(versionText());
    return ExitCode.OK;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    const names = Object.keys(COMMANDS);
    const meant = closestMatch(name, names);
    const what = name.startsWith("-") ? `unknown option "${name}" before a command` : `unknown command "${name}"`;
    const error = new HaloError(CliErrorCode.CLI_USAGE, what, {
      hint: `${meant !== undefined ? `Did you mean \`halo ${meant}\`? ` : ""}Commands: ${names.join(", ")} (\`halo --help\`)`,
    });
    ctx.stderr.write(errorLine("halo", error));
    return ExitCode.USAGE;
  }
  const label = `halo ${name}`;
  try {
    return await command.run(rest, ctx);
  } catch (error) {
    // The reader of our output went away (`halo … | head`): nothing to report.
    if (isBrokenPipe(error)) return ExitCode.OK;
    if (isHaloError(error)) {
      ctx.stderr.write(errorLine(label, error, name));
      if (verbose && error.stack !== undefined) ctx.stderr.write(`${error.stack}\n`);
      // A load option the engine refused came from a flag: wrong usage, like a flag the parser refused.
      const usage = error.code === CliErrorCode.CLI_USAGE || (error.code === "ENGINE_BAD_OPTION" && isFlagOption(error.field));
      return usage ? ExitCode.USAGE : ExitCode.ERROR;
    }
    const message = error instanceof Error ? error.message.split("\n")[0]! : String(error);
    const stack = verbose && error instanceof Error && error.stack !== undefined ? `${error.stack}\n` : "";
    ctx.stderr.write(
      `${label}: internal error: ${message}${stack === "" ? " (run again with --verbose for the stack trace, and please report it)" : ""}\n${stack}`,
    );
    return ExitCode.INTERNAL;
  }
}
