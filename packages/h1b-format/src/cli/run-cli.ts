// runCli: argument parsing, dispatch and the one-line error contract of the h1b command.
import { parseArgs } from "node:util";
import { isHaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import packageJson from "../../package.json" with { type: "json" };
import { HELP } from "./help.js";
import { convertCommand, inspectCommand, synthCommand, verifyCommand, type CommandOptions } from "./commands.js";
import type { CliIo, RunCliOptions } from "./cli-io.js";
import { checkCodecs } from "../codecs/registry.js";

const OPTIONS = {
  json: { type: "boolean" },
  progress: { type: "boolean" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  tensors: { type: "boolean" },
  output: { type: "string", short: "o" },
  format: { type: "string" },
  tokenizer: { type: "string" },
  packing: { type: "string" },
  force: { type: "boolean" },
  shape: { type: "string" },
  activation: { type: "string" },
  seed: { type: "string" },
} as const;

const COMMANDS = { inspect: inspectCommand, convert: convertCommand, verify: verifyCommand, synth: synthCommand } as const;

/**
 * Runs the `h1b` command with `argv` (without `node` and the script) and returns the exit
 * status: 0 success, 1 a file or conversion problem (one line on stderr), 2 a usage error
 * (including `runOptions.codecs` that fail {@link checkCodecs}: `H1B_BAD_ARGUMENT` on stderr).
 *
 * `runOptions.codecs` lets a program that knows backends (the `halo` command) pass their layouts;
 * the `h1b` binary writes and decodes h1b-format's own packings only.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(["inspect", "model.halo", "--json"]);
 * await runCli(["convert", "m.gguf", "-o", "m.halo"], undefined, { codecs: backendFactory.packings });
 * ```
 */
export async function runCli(argv: readonly string[], sinks: Pick<CliIo, "out" | "err"> = defaultSinks(), runOptions: RunCliOptions = {}): Promise<number> {
  let codecs;
  try {
    codecs = checkCodecs(runOptions.codecs ?? [], "runOptions.codecs");
  } catch (error) {
    // The embedding program passed something that is not a list of codecs: a usage error, one line.
    if (isHaloError(error)) {
      sinks.err(`h1b: ${error.code}: ${error.message}`);
      return error.code === H1bErrorCode.H1B_BAD_ARGUMENT ? 2 : 1;
    }
    sinks.err(`h1b: unexpected error checking runOptions.codecs: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    sinks.err(`h1b: ${(error as Error).message}. Run \`h1b --help\` for usage.`);
    return 2;
  }
  const { values, positionals } = parsed;
  const io: CliIo = { ...sinks, json: values.json ?? false, progress: values.progress ?? false, verbose: values.verbose ?? false, codecs };
  const [command, ...rest] = positionals;
  if (values.version) {
    io.out(packageJson.version);
    return 0;
  }
  if (command === undefined || values.help) {
    const help = HELP[command ?? ""];
    if (help === undefined) {
      sinks.err(`h1b: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(", ")}`);
      return 2;
    }
    io.out(help.trimEnd());
    if (command === "convert") {
      io.out(
        codecs.length === 0
          ? "\nNo backend layouts were passed in: --packing auto stores halo-v2."
          : `\nBackend layouts passed in: ${codecs.map((c) => c.packing).join(", ")}; --packing auto stores ${codecs[0]!.packing}.`,
      );
    }
    return command === undefined && !values.help ? 2 : 0;
  }
  const run = COMMANDS[command as keyof typeof COMMANDS];
  if (run === undefined) {
    sinks.err(`h1b: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(", ")}. Run \`h1b --help\`.`);
    return 2;
  }
  const options: CommandOptions = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
  try {
    return await run(rest, options, io);
  } catch (error) {
    if (isHaloError(error)) {
      sinks.err(`h1b ${command}: ${error.code}: ${error.message}`);
      if (io.verbose && error.stack !== undefined) sinks.err(error.stack);
      return error.code === H1bErrorCode.H1B_BAD_ARGUMENT ? 2 : 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    sinks.err(`h1b ${command}: unexpected error: ${message.split("\n")[0]}${io.verbose ? "" : " (--verbose for the stack)"}`);
    if (io.verbose && error instanceof Error && error.stack !== undefined) sinks.err(error.stack);
    return 1;
  }
}

function defaultSinks(): Pick<CliIo, "out" | "err"> {
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
  };
}
