// Flags shared by the commands that load a model and sample (`run`, `chat`), and the loading itself.
import { readFileSync } from "node:fs";
import {
  BUILTIN_CHAT_TEMPLATE_NAMES,
  checkBackendChoice,
  KV_DTYPES,
  loadModel,
  type BackendOptions,
  type ChatTemplateChoice,
  type Engine,
  type LoadModelOptions,
  type SpeculativeCounts,
} from "@halo/engine";
import { HaloError, isHaloError } from "@halo/errors";
import { checkChatTemplate } from "@halo/tokenizer";
import { kvDtypeFlag, numberFlag, type FlagSpec } from "../args.js";
import { writeBackendNotice } from "../backend-notice.js";
import { BACKEND_OPTION_FLAGS, backendOptionFlagSpecs, flagsOfBackend, flagThatSet, recordSetters } from "../backend-option-flags.js";
import type { CommandContext } from "../context.js";
import { CliErrorCode } from "../errors.js";
import { resolveModel } from "../hub/resolve-model.js";
import { SPECULATIVE_FLAGS, speculativeFlag, speculativeOptionError, speculativeStatsText } from "./speculative-flags.js";

/** Help of `--chat-template` (`run`, `chat`, `serve`, `show`). */
export const CHAT_TEMPLATE_FLAG_HELP = `chat template: ${BUILTIN_CHAT_TEMPLATE_NAMES.join(" | ")} or a Jinja file (default: the model's own, else inferred; \`halo show\` says which)`;

/**
 * Reads `--chat-template`: a built-in name is passed as is, anything else must be a readable file
 * whose text is Jinja source that parses (checked here, so `halo serve` refuses it before it
 * listens). Undefined when the flag is absent; otherwise a usage error naming the built-ins.
 */
export function chatTemplateFlag(command: string, values: Record<string, unknown>): { template: string; file: string | null } | undefined {
  const raw = values["chat-template"];
  if (raw === undefined) return undefined;
  const value = String(raw);
  if ((BUILTIN_CHAT_TEMPLATE_NAMES as readonly string[]).includes(value)) return { template: value, file: null };
  let text: string;
  try {
    text = readFileSync(value, "utf8");
  } catch (cause) {
    throw new HaloError(CliErrorCode.CLI_USAGE, `--chat-template must be ${BUILTIN_CHAT_TEMPLATE_NAMES.join(", ")} or a readable Jinja file`, {
      field: "chat-template",
      actual: `${value} (${(cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : ((cause as Error).message ?? String(cause))})`,
      hint: "Name a built-in template, or give the path of a file holding the template's Jinja source",
      cause,
    });
  }
  if (text.trim() === "") {
    throw new HaloError(CliErrorCode.CLI_USAGE, `the --chat-template file is empty`, {
      field: "chat-template",
      actual: value,
      hint: `Put the template's Jinja source in it, or name a built-in: ${BUILTIN_CHAT_TEMPLATE_NAMES.join(", ")}`,
    });
  }
  try {
    checkChatTemplate(text);
  } catch (cause) {
    if (!isHaloError(cause)) throw cause;
    const parser = cause.cause instanceof Error ? cause.cause.message : cause.message;
    throw new HaloError(CliErrorCode.CLI_USAGE, `the --chat-template file does not parse as a Jinja template`, {
      field: "chat-template",
      actual: `${value}: ${parser}`,
      hint: `Fix the template's syntax, or name a built-in: ${BUILTIN_CHAT_TEMPLATE_NAMES.join(", ")}`,
      cause,
    });
  }
  return { template: text, file: value };
}

/**
 * Where an engine's chat template came from, in the CLI's words: the engine's reason, or
 * `--chat-template [file]` when the flag chose it.
 */
export function chatTemplateOrigin(choice: ChatTemplateChoice, flag: { readonly file: string | null } | undefined): string {
  if (choice.origin !== "option" || flag === undefined) return choice.reason;
  return flag.file === null ? "--chat-template" : `--chat-template ${flag.file}`;
}

/** Help of `--no-verify` (every command that loads a model). */
export const NO_VERIFY_HELP =
  "skip the load-time weight check (the .halo checksums, NaN/Inf in norms, scales and embedding); a file that passed once is remembered in $HALO_CACHE_DIR/.verified (default ~/.cache/halo/models/.verified)";

/** The load option `--no-verify` selects: `{ verify: false }` when given, else nothing. */
export function verifyOption(values: Record<string, unknown>): { readonly verify?: false } {
  return values["no-verify"] === true ? { verify: false } : {};
}

/** Help of `--no-prefix-cache` (`run`, `chat`, `serve`). */
export const NO_PREFIX_CACHE_HELP =
  "free each request's KV when it ends instead of keeping it for the next prompt that starts the same way (the prefix cache; on by default, see /metrics halo_prefix_cache_*)";

/** The load options `--no-verify` and `--no-prefix-cache` select (nothing for flags not given). */
export function loadSwitches(values: Record<string, unknown>): { readonly verify?: false; readonly prefixCache?: false } {
  return { ...verifyOption(values), ...(values["no-prefix-cache"] === true ? { prefixCache: false as const } : {}) };
}

/** The model file flag of every command that loads one (`run`, `chat`, `serve`). */
export const MODEL_FLAG: FlagSpec = {
  type: "string",
  placeholder: "path|owner/name",
  short: "m",
  description: "model file, snapshot directory or owner/name (default: microsoft/bitnet-b1.58-2B-4T, pulled once)",
};

/**
 * The flags that choose the backend and set its options, the same in every command that loads a
 * model: `--backend`, the flags of {@link BACKEND_OPTION_FLAGS} (`--threads`, `--lm-head`: the cpu
 * backend's options) and `--backend-option name.key=value`, which sets any backend's, so a new
 * backend needs no new flag.
 */
export const BACKEND_FLAGS: Record<string, FlagSpec> = {
  backend: { type: "string", placeholder: "name", description: "auto, or an installed backend (`halo doctor` lists them; default auto)" },
  ...backendOptionFlagSpecs(),
  "backend-option": {
    type: "string",
    placeholder: "name.key=value",
    multiple: true,
    description: `an option of one backend, passed to it as is (repeat), e.g. ${exampleBackendOption()}; the value is read as JSON when it parses, else as text`,
  },
};

/** `name.key=value` of the first row of {@link BACKEND_OPTION_FLAGS}, for help and error texts. */
function exampleBackendOption(): string {
  const first = BACKEND_OPTION_FLAGS[0];
  return first === undefined ? "name.key=value" : `${first.backend}.${first.key}=${first.value === "integer" ? "8" : '"…"'}`;
}

/** How the model is loaded and run: the flags `run`, `chat` and `serve` share (the speculative decoding ones included). */
export const LOAD_FLAGS: Record<string, FlagSpec> = {
  ...BACKEND_FLAGS,
  "context-length": { type: "string", placeholder: "n", description: "KV positions per sequence (default: min(model, 4096))" },
  "kv-dtype": {
    type: "string",
    placeholder: KV_DTYPES.join("|"),
    description: `KV cache storage: ${KV_DTYPES.join(" | ")} (default f16; int8 is about a quarter of f32, see docs/benchmarks.md for its cost)`,
  },
  "chat-template": { type: "string", placeholder: "name|file", description: CHAT_TEMPLATE_FLAG_HELP },
  ...SPECULATIVE_FLAGS,
  progress: { type: "boolean", description: "draw the download bar even when stderr is not a terminal" },
  "no-verify": { type: "boolean", description: NO_VERIFY_HELP },
  "no-prefix-cache": { type: "boolean", description: NO_PREFIX_CACHE_HELP },
};

/** What the backend flags ask for: `loadModel`'s `backend` and `backendOptions`. */
export interface BackendFlags {
  readonly backend: string;
  readonly backendOptions?: BackendOptions;
}

/**
 * Reads `--backend`, the flags of {@link BACKEND_OPTION_FLAGS} (`--threads`, `--lm-head`) and
 * `--backend-option` into `loadModel`'s `backend` and `backendOptions` (`--threads 4` is
 * `backendOptions.cpu.threads`; the backend checks the values, see {@link checkBackendFlags}).
 * Flags a command does not define are absent from `values` and ignored. An option set by two flags
 * is a usage error.
 *
 * @example
 * ```ts
 * backendFlags("run", { threads: "4", "backend-option": ["cpu.lmHead=\"int8\""] }); // { backend: "auto", backendOptions: { cpu: { threads: 4, lmHead: "int8" } } }
 * ```
 */
export function backendFlags(command: string, values: Record<string, unknown>, defaultBackend = "auto"): BackendFlags {
  const options: Record<string, Record<string, unknown>> = {};
  const setBy = new Map<string, string>();
  const set = (name: string, key: string, value: unknown, flag: string): void => {
    const own = (options[name] ??= {});
    const first = setBy.get(`${name}.${key}`);
    if (first !== undefined) {
      throw new HaloError(CliErrorCode.CLI_USAGE, `${name}.${key} is set twice, by ${first} and by ${flag}`, {
        field: flag.replace(/^--/, ""),
        hint: "Give it once",
      });
    }
    setBy.set(`${name}.${key}`, flag);
    own[key] = value;
  };
  for (const row of BACKEND_OPTION_FLAGS) {
    const name = row.flag.slice(2);
    if (values[name] === undefined) continue;
    set(row.backend, row.key, row.value === "integer" ? numberFlag(command, values, name, { integer: true }) : String(values[name]), row.flag);
  }
  const raw = values["backend-option"];
  for (const entry of raw === undefined ? [] : Array.isArray(raw) ? (raw as unknown[]) : [raw]) {
    const text = String(entry);
    const match = /^([a-z][a-z0-9-]*)\.([A-Za-z_$][\w$]*)=(.*)$/s.exec(text);
    if (match === null) {
      throw new HaloError(CliErrorCode.CLI_USAGE, "--backend-option must be name.key=value", {
        field: "backend-option",
        expected: `e.g. ${exampleBackendOption()}`,
        actual: text,
      });
    }
    const [, name, key, valueText] = match as unknown as [string, string, string, string];
    let value: unknown;
    try {
      value = JSON.parse(valueText);
    } catch {
      value = valueText;
    }
    set(name, key, value, `--backend-option ${name}.${key}`);
  }
  const backend = (values["backend"] as string | undefined) ?? defaultBackend;
  if (Object.keys(options).length === 0) return { backend };
  recordSetters(options, setBy);
  return { backend, backendOptions: options };
}

/**
 * An error about the backend flags in the CLI's terms, as a usage error (exit 2) naming the flag:
 * - `ENGINE_BAD_OPTION` on `backend` → `--backend: …`;
 * - `ENGINE_BAD_OPTION` on `backendOptions.<name>` (no installed backend has that name) → the flags
 *   that set that backend's options;
 * - a backend refusing one of its options (`KERNELS_BAD_OPTION`, `KERNELS_CPU_BAD_OPTION`, …) whose
 *   field is `<backend>.<key>` for an option in `given` → the flag that set it (`--threads`,
 *   `--backend-option reference.splitKvTile`).
 *
 * Any other error is returned as is: a field with no backend name (`maxSequences`, `kvDtype`: the
 * contract's checks of load options) is not a backend option's, and is not blamed on one. With
 * `early` (the error came from checking the flags alone, before any model: {@link checkBackendFlags}),
 * every `*_BAD_OPTION` came from creating a backend with `given` and is a usage error (the flag named
 * when the field says it), and `ENGINE_NO_BACKEND` is `--backend` naming no installed backend.
 * `backendField` is the `<backend>.<key>` the error is about when its own field lacks the backend's
 * name and the caller found which backend refused (see {@link checkBackendFlags}).
 *
 * @example
 * ```ts
 * const engine = await loadModel(path, options).catch((e: unknown) => { throw backendOptionError(e, options.backendOptions); });
 * ```
 */
export function backendOptionError(error: unknown, given: BackendOptions = {}, early = false, backendField?: string): unknown {
  if (!isHaloError(error)) return error;
  const field = backendField ?? error.field;
  if (error.code === "ENGINE_BAD_OPTION" || (early && error.code === "ENGINE_NO_BACKEND")) {
    if (field === "backend") return new HaloError(CliErrorCode.CLI_USAGE, `--backend: ${error.message}`, { cause: error });
    if (field?.startsWith("backendOptions.") === true) {
      return new HaloError(CliErrorCode.CLI_USAGE, `${flagsOfBackend(field.slice("backendOptions.".length))}: ${error.message}`, { cause: error });
    }
    return error;
  }
  if (!error.code.endsWith("_BAD_OPTION")) return error;
  const dot = field?.indexOf(".") ?? -1;
  const name = dot > 0 ? field!.slice(0, dot) : null;
  const key = dot > 0 ? field!.slice(dot + 1) : null;
  if (name !== null && key !== null && given[name] !== undefined && Object.hasOwn(given[name]!, key)) {
    return new HaloError(CliErrorCode.CLI_USAGE, `${flagThatSet(given, name, key)}: ${error.message}`, { cause: error });
  }
  return early ? new HaloError(CliErrorCode.CLI_USAGE, error.message, { cause: error }) : error;
}

/**
 * Checks the backend flags before anything is resolved, downloaded, opened or verified (and before
 * `halo serve` listens): `--backend` and every backend `backendOptions` names must be installed, and
 * every backend given options is created with them, so a bad value (`--lm-head q4`) is refused by
 * the backend now (the engine's `checkBackendChoice`). Errors are usage errors naming the flag
 * ({@link backendOptionError}).
 *
 * @example
 * ```ts
 * const backend = backendFlags("run", values);
 * await checkBackendFlags(backend);
 * ```
 */
export async function checkBackendFlags(flags: BackendFlags): Promise<void> {
  try {
    await checkBackendChoice(flags);
  } catch (error) {
    throw backendOptionError(error, flags.backendOptions, true, await refusingBackendField(error, flags));
  }
}

/**
 * For a backend's `*_BAD_OPTION` whose field is a bare key (`lmHead`, from a backend that does not
 * prefix its name), `<backend>.<key>` with the backend found, not guessed: each backend given that key
 * is checked alone, and it counts only when exactly one of them refuses with the same code and field.
 * Undefined otherwise (the error's own field stands).
 */
async function refusingBackendField(error: unknown, flags: BackendFlags): Promise<string | undefined> {
  if (!isHaloError(error) || error.code === "ENGINE_BAD_OPTION" || !error.code.endsWith("_BAD_OPTION")) return undefined;
  const field = error.field;
  if (field === undefined || field.includes(".")) return undefined;
  const refusing: string[] = [];
  for (const [name, options] of Object.entries(flags.backendOptions ?? {})) {
    if (!Object.hasOwn(options, field)) continue;
    try {
      await checkBackendChoice({ backendOptions: { [name]: options } });
    } catch (alone) {
      if (isHaloError(alone) && alone.code === error.code && alone.field === field) refusing.push(name);
    }
  }
  return refusing.length === 1 ? `${refusing[0]}.${field}` : undefined;
}

/**
 * `loadModel` with the backend's option errors in the CLI's terms ({@link backendOptionError}), and
 * the engine's refusals of a `speculative` option as usage errors naming the flag
 * ({@link speculativeOptionError}).
 *
 * @example
 * ```ts
 * const engine = await loadWithFlags(path, { ...backendFlags("run", values), maxSequences: 1 });
 * ```
 */
export async function loadWithFlags(source: Parameters<typeof loadModel>[0], options: LoadModelOptions): Promise<Engine> {
  try {
    return await loadModel(source, options);
  } catch (error) {
    throw speculativeOptionError(backendOptionError(error, options.backendOptions));
  }
}

/** Model and sampling flags of `halo run` and `halo chat`. */
export const MODEL_FLAGS: Record<string, FlagSpec> = {
  model: MODEL_FLAG,
  system: { type: "string", placeholder: "text", short: "s", description: "system prompt" },
  "max-tokens": { type: "string", placeholder: "n", short: "n", description: "most tokens per answer (default 512)" },
  temperature: { type: "string", placeholder: "float", short: "t", description: "sampling temperature; 0 = greedy (default 0.7)" },
  seed: { type: "string", placeholder: "int", description: "RNG seed for reproducible sampling" },
  "top-k": { type: "string", placeholder: "n", description: "keep the k most likely tokens (default 40)" },
  "top-p": { type: "string", placeholder: "float", description: "nucleus mass (default 0.95)" },
  ...LOAD_FLAGS,
};

/** Sampling options read from {@link MODEL_FLAGS}. */
export interface SamplingFlags {
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed?: number;
}

/** Reads and checks the sampling flags (`--temperature abc` is a usage error). */
export function samplingFlags(command: string, values: Record<string, unknown>): SamplingFlags {
  const seed = numberFlag(command, values, "seed", { integer: true });
  return {
    maxTokens: numberFlag(command, values, "max-tokens", { integer: true, min: 0 }) ?? 512,
    temperature: numberFlag(command, values, "temperature", { min: 0 }) ?? 0.7,
    topK: numberFlag(command, values, "top-k", { integer: true, min: 0 }) ?? 40,
    topP: numberFlag(command, values, "top-p", { min: 0, max: 1 }) ?? 0.95,
    ...(seed !== undefined ? { seed } : {}),
  };
}

/** Resolves `--model` (or the default model) and loads it with the backend/threads/context/KV/head flags (steps yield to the event loop). */
export async function loadFromFlags(command: string, values: Record<string, unknown>, ctx: CommandContext): Promise<Engine> {
  const backend = backendFlags(command, values);
  const contextLength = numberFlag(command, values, "context-length", { integer: true, min: 2 });
  const kvDtype = kvDtypeFlag(command, values);
  samplingFlags(command, values);
  const chatTemplate = chatTemplateFlag(command, values);
  // Checked before anything is resolved or pulled (only halo-tiny, named by --model, brings its own draft model).
  const speculative = speculativeFlag(command, values, values["model"] as string | undefined);
  await checkBackendFlags(backend);
  const path = await resolveModel(values["model"] as string | undefined, ctx, { progress: values["progress"] === true });
  // The engine's scheduler yields to the event loop before every step, so Ctrl-C is seen between tokens on any backend.
  const engine = await loadWithFlags(path, {
    ...backend,
    ...(contextLength !== undefined ? { contextLength } : {}),
    ...(kvDtype !== undefined ? { kvDtype } : {}),
    ...loadSwitches(values),
    ...(chatTemplate !== undefined ? { chatTemplate: chatTemplate.template } : {}),
    ...(speculative !== undefined ? { speculative } : {}),
    maxSequences: 1,
  });
  writeBackendNotice(command, engine, ctx, backend.backendOptions);
  return engine;
}

/**
 * One line of request statistics; with speculative decoding, its drafter (the engine's label) and
 * counters follow ({@link speculativeStatsText}). `speculativeLabel` is `engine.speculative?.label`.
 */
export function statsLine(
  event: {
    finishReason: string;
    usage: { promptTokens: number; completionTokens: number };
    timings: { prefillTokensPerSecond: number; decodeTokensPerSecond: number };
    speculative?: SpeculativeCounts;
  },
  backend: string,
  speculativeLabel?: string,
): string {
  return (
    `[${event.finishReason}] prompt ${event.usage.promptTokens} tok at ${event.timings.prefillTokensPerSecond.toFixed(1)} tok/s; ` +
    `answer ${event.usage.completionTokens} tok at ${event.timings.decodeTokensPerSecond.toFixed(1)} tok/s (${backend} backend)` +
    (event.speculative !== undefined ? `; ${speculativeStatsText(event.speculative, speculativeLabel)}` : "")
  );
}
