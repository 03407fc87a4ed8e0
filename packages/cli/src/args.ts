// Typed flag parsing on top of node:util parseArgs, with one-line usage errors.
import { parseArgs } from "node:util";
import { KV_DTYPES, type KvDtype } from "@halo/engine";
import { closestMatch, HaloError } from "@halo/errors";
import { CliErrorCode } from "./errors.js";

/** A flag of a command. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly description: string;
  readonly multiple?: boolean;
  /** What a string flag's value is, shown in help as `--name <placeholder>` (`n`, `float`, `path`, `port`…). */
  readonly placeholder?: string;
}

/** Node's parseArgs message, in CLI words: `Unknown option '--bogus'. To specify…` → `unknown flag --bogus. Did you mean --bogs?` */
function usageFromParseArgs(command: string, error: Error & { code?: string }, flags: Readonly<Record<string, FlagSpec>>): HaloError {
  const hint = `Run \`halo ${command} --help\` for its flags`;
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(error.message);
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== null) {
    const [, dashes, name] = unknown;
    const meant = dashes === "--" ? closestMatch(name!, Object.keys(flags)) : undefined;
    return new HaloError(CliErrorCode.CLI_USAGE, `unknown flag ${dashes}${name}`, {
      hint: meant !== undefined ? `Did you mean --${meant}? ${hint}` : hint,
    });
  }
  const missing = /^Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument missing/.exec(error.message);
  if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && missing !== null) {
    const spec = flags[missing[1]!.slice(2)];
    return new HaloError(CliErrorCode.CLI_USAGE, `${missing[1]} needs a value${spec?.placeholder !== undefined ? ` (<${spec.placeholder}>)` : ""}`, { hint });
  }
  return new HaloError(CliErrorCode.CLI_USAGE, error.message.replace(/\.$/, ""), { hint });
}

/** Parses `argv` against `flags`; unknown flags and stray positionals are usage errors. */
export function parseFlags(
  command: string,
  argv: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
  positionals = 0,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        Object.entries(flags).map(([name, spec]) => [
          name,
          { type: spec.type, ...(spec.short !== undefined ? { short: spec.short } : {}), ...(spec.multiple === true ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > positionals) {
      throw new HaloError(CliErrorCode.CLI_USAGE, "unexpected argument", {
        actual: parsed.positionals[positionals],
        hint: `Run \`halo ${command} --help\``,
      });
    }
    return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
  } catch (error) {
    if (error instanceof HaloError) throw error;
    throw usageFromParseArgs(command, error as Error & { code?: string }, flags);
  }
}

/** A required string flag. */
export function requireString(command: string, values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value.length === 0) {
    throw new HaloError(CliErrorCode.CLI_USAGE, `--${name} is required`, {
      hint: `Run \`halo ${command} --help\``,
    });
  }
  return value;
}

/** An optional number flag within bounds (`--threads abc` is a usage error, not NaN). */
export function numberFlag(
  command: string,
  values: Record<string, unknown>,
  name: string,
  options: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  const min = options.min ?? -Infinity;
  const max = options.max ?? Infinity;
  if (!Number.isFinite(value) || (options.integer === true && !Number.isInteger(value)) || value < min || value > max) {
    throw new HaloError(
      CliErrorCode.CLI_USAGE,
      `--${name} must be ${options.integer === true ? "a whole number" : "a number"}${Number.isFinite(min) ? ` ≥ ${min}` : ""}${Number.isFinite(max) ? ` ≤ ${max}` : ""}`,
      {
        field: name,
        actual: raw,
      },
    );
  }
  return value;
}

/** Reads a flag that must be one of `choices` (undefined when absent); anything else is a usage error. */
function choiceFlag<T extends string>(command: string, values: Record<string, unknown>, name: string, choices: readonly T[]): T | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !(choices as readonly string[]).includes(raw)) {
    throw new HaloError(CliErrorCode.CLI_USAGE, `--${name} must be ${choices.join(", ")}; got "${String(raw)}"`, {
      field: name,
      actual: raw,
    });
  }
  return raw as T;
}

/** Reads `--kv-dtype` (undefined when absent); anything but one of the contract's `KV_DTYPES` is a usage error. */
export function kvDtypeFlag(command: string, values: Record<string, unknown>): KvDtype | undefined {
  return choiceFlag(command, values, "kv-dtype", KV_DTYPES);
}

/** Renders a command's help text. */
export function helpText(usage: string, summary: string, flags: Readonly<Record<string, FlagSpec>>, examples: readonly string[]): string {
  const lefts = Object.entries(flags).map(
    ([name, spec]) => `${spec.short !== undefined ? `-${spec.short}, ` : "    "}--${name}${spec.type === "string" ? ` <${spec.placeholder ?? "value"}>` : ""}`,
  );
  // At least two spaces after the longest flag with its placeholder (`--chat-template <name|file>`).
  const width = Math.max(Math.max(...Object.keys(flags).map((n) => n.length)) + 18, ...lefts.map((left) => left.length + 2));
  const lines = [`Usage: ${usage}`, "", summary, "", "Options:"];
  Object.values(flags).forEach((spec, i) => lines.push(`  ${lefts[i]!.padEnd(width)}${spec.description}`));
  lines.push("", "Examples:", ...examples.map((e) => `  ${e}`), "");
  return lines.join("\n");
}
