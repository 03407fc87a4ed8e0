// loadModel: open any model file h1b-format reads, build its tokenizer, pick a backend, start an Engine.
import { freemem, totalmem } from "node:os";
import { HaloError, isHaloError } from "@halo/errors";
import { changedFile, openModel, verifyModelWeights, type HaloModel, type ModelFormat, type VerifiedFile } from "@halo/h1b-format";
import {
  KV_DTYPES,
  type ActivationQuant,
  type Backend,
  type BackendCapabilities,
  type BackendFactory,
  type BackendMemory,
  type BackendProbe,
  type KvDtype,
  type LoadOptions,
  type MemoryEstimate,
  type PackingCodec,
} from "@halo/kernels";
import { checkSpeculativeOptions, type SpeculativeOptions } from "@halo/speculative";
import { Tokenizer } from "@halo/tokenizer";
import { discoverBackends, isBackendFactory, isBackendObject, type BackendDiscovery } from "./backend-registry.js";
import { chooseChatTemplate } from "./chat-template-choice.js";
import { Engine, type EngineParts } from "./engine.js";
import { EngineErrorCode } from "./errors.js";
import { checkInteger, checkOptionKeys, type UnlistedKeys } from "./generate-options.js";
import { buildSpeculation } from "./speculation-load.js";
import type { Speculation } from "./speculation.js";

/** Progress of {@link loadModel}: opening the file, then the backend taking the weights. */
export interface LoadModelProgress {
  readonly phase: "open" | "weights";
  /** Fraction done in [0, 1] within the phase. */
  readonly fraction: number;
}

/**
 * Options each backend is created with, by backend name: `{ cpu: { threads: 8, lmHead: "int8" } }`.
 * Each entry reaches that backend's factory (`BackendFactory.create`) untouched; the factory checks
 * it and refuses what it does not know (`KERNELS_BAD_OPTION`, naming the option).
 */
export type BackendOptions = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * `"auto"` (default) tries every installed backend (see {@link discoverBackends}), highest
   * priority first — e.g. `hip` (package `@halo/kernels-hip`, where a GPU opens), `cpu` (package
   * `@halo/kernels-cpu`; both installed with the engine) then `reference` — and runs the first that is
   * available, supports the model and fits in its memory. A name forces that backend (refused with its
   * probe's reason when it cannot run here); a {@link BackendFactory} or {@link Backend} object is used directly;
   * a list is tried in order. Backends passed over are listed in {@link Engine.skippedBackends} with why.
   */
  readonly backend?: BackendChoice | readonly BackendChoice[];
  /**
   * Options of each backend, by its name (`{ cpu: { threads: 8, lmHead: "int8" } }`), passed to its
   * factory untouched (see {@link BackendOptions}). A key naming no installed backend is refused
   * (`ENGINE_BAD_OPTION`, listing the installed ones); a bad option is refused by the backend
   * (`KERNELS_BAD_OPTION` or the backend's own `*_BAD_OPTION`, e.g. `KERNELS_CPU_BAD_OPTION`), never skipped over.
   * A backend given options is asked whether it can run as created with them (its `Backend.probe()`: an option may
   * choose what it opens, e.g. `{ hip: { device: "emulator" } }`), one without by its factory's `probe()`.
   */
  readonly backendOptions?: BackendOptions;
  /** KV positions per sequence. Default min(model's trained context, 4096). */
  readonly contextLength?: number;
  /** Sequences that can run at once (each holds a KV slot). Default 4. */
  readonly maxSequences?: number;
  /** KV cache dtype, one of `KV_DTYPES` (`@halo/kernels`). Default: `f16` where the backend runs it, else its first. */
  readonly kvDtype?: KvDtype;
  /** Activation quantisation. Default `per-token` (BitNet's). */
  readonly activationQuant?: ActivationQuant;
  /** Read the file as this format instead of sniffing it. */
  readonly format?: ModelFormat;
  /** A tokenizer file (`tokenizer.json` or `.htok`) to use instead of the model's own. */
  readonly tokenizer?: string;
  /**
   * The chat template `chat` and sessions use: a built-in name (`bitnet`, `llama3`, `plain`) or Jinja
   * source. Default: the model file's own, else one inferred from the architecture and vocabulary
   * (see {@link chooseChatTemplate}); {@link Engine.chatTemplate} says which and why. Jinja that does
   * not parse is refused here (`TOKENIZER_BAD_TEMPLATE`), before the weights load.
   */
  readonly chatTemplate?: string;
  /** Called as loading advances. */
  readonly onProgress?: (progress: LoadModelProgress) => void;
  /** Cancels loading (rejects with `ENGINE_ABORTED`). */
  readonly signal?: AbortSignal;
  /**
   * Check the weights before the backend takes them (default true): a `.halo` file's stored CRC-32
   * of every tensor, and for every format the float tensors (embedding, head, norms) and ternary
   * scales for NaN/Infinity (`H1B_CHECKSUM_MISMATCH`, `H1B_NON_FINITE`). The pass runs in worker
   * threads and a file that passed is remembered in `$HALO_CACHE_DIR/.verified/` (default `~/.cache/halo/models`), so
   * only the first load of a file pays it (see `verifyModelWeights` in `@halo/h1b-format`).
   * `false` skips it and loads whatever the bytes say.
   */
  readonly verify?: boolean;
  /**
   * Speculative decoding: a drafter proposes tokens and one batched step verifies them, losslessly
   * (greedy output is token-for-token the same; sampled output has the same distribution).
   * `{ drafter: "ngram" }` (prompt lookup; best on text that quotes or edits its input),
   * `{ drafter: "draft-model", draftModel: path }` (a smaller model with the same vocabulary, on
   * `draftBackend` or this model's backend) or `{ drafter: "medusa", medusa: path }` (`.h1b-medusa`
   * heads; needs a backend returning hidden rows). The step cost is calibrated at load and the
   * policy drafts only when it pays (`policy: "always"` drafts whenever it can). Requests may turn it
   * off (`speculative: false`). See {@link SpeculativeOptions}.
   */
  readonly speculative?: SpeculativeOptions;
  /**
   * The prefix cache: a finished generation's KV slot is kept (until a slot is needed) with the tokens it holds, and a
   * later generation whose prompt starts with at least `minTokens` of them (default 16) continues from a copy of that
   * KV instead of computing the shared part again — a system prompt, few-shot examples, a chat's earlier turns. Kept
   * slots are freed least recently used first whenever a request or a session needs one, so it never holds back work.
   * Default true; `false` frees every slot when its request ends. Requests may skip it (`cachePrompt: false`).
   */
  readonly prefixCache?: boolean | { readonly minTokens?: number };
}

/**
 * Every key {@link LoadModelOptions} takes; {@link loadModel} refuses any other (a misspelt
 * `context_length` would otherwise load with the default). A new option is one line here.
 *
 * @example
 * ```ts
 * LOAD_MODEL_OPTION_KEYS.includes("contextLength"); // true
 * ```
 */
export const LOAD_MODEL_OPTION_KEYS = [
  "backend",
  "backendOptions",
  "contextLength",
  "maxSequences",
  "kvDtype",
  "activationQuant",
  "format",
  "tokenizer",
  "chatTemplate",
  "onProgress",
  "signal",
  "verify",
  "speculative",
  "prefixCache",
] as const satisfies ReadonlyArray<keyof LoadModelOptions>;

// The build fails naming any option added to LoadModelOptions but not to LOAD_MODEL_OPTION_KEYS (it would be refused at run time).
const everyLoadOptionListed: Record<UnlistedKeys<LoadModelOptions, typeof LOAD_MODEL_OPTION_KEYS>, never> = {};
void everyLoadOptionListed;

// Options of one backend that loadModel took before backends had their own options (contract 1), and where they went.
const MOVED_LOAD_OPTIONS: Readonly<Record<string, string>> = { threads: "backendOptions.cpu.threads", lmHead: "backendOptions.cpu.lmHead" };

/**
 * One entry of {@link LoadModelOptions.backend}: `"auto"`, an installed backend's name (`"cpu"`,
 * `"reference"`, …), a {@link BackendFactory} (created with its `backendOptions` entry) or a
 * {@link Backend} object (used as it is).
 */
export type BackendChoice = string | Backend | BackendFactory;

/** A backend {@link loadModel} passed over, and why (not installed, refused, unavailable, does not support the model, does not fit). */
export interface SkippedBackend {
  /** The backend's name, or the package's when the package was refused before its name was known. */
  readonly name: string;
  readonly reason: string;
}

/**
 * The load-time weight check ({@link LoadModelOptions.verify}); a cancelled pass rejects with
 * `ENGINE_ABORTED`. Resolves with the files whose bytes were verified, for {@link checkUnchanged}.
 */
async function verifyWeights(model: HaloModel, options: LoadModelOptions): Promise<readonly VerifiedFile[]> {
  if (options.verify !== undefined && typeof options.verify !== "boolean") {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "verify must be true or false", {
      field: "verify",
      expected: "a boolean",
      actual: typeof options.verify,
    });
  }
  try {
    return (await verifyModelWeights(model, options.signal === undefined ? {} : { signal: options.signal })).files;
  } catch (error) {
    if (options.signal?.aborted === true && !isHaloError(error)) {
      throw new HaloError(EngineErrorCode.ENGINE_ABORTED, "loading was cancelled", { path: model.source.path, cause: error });
    }
    throw error;
  }
}

/**
 * A backend maps a file by its path after the check: a file replaced in between would run
 * unverified bytes, so once the backend holds them the files must still be the ones verified.
 */
function checkUnchanged(files: readonly VerifiedFile[], loaded: { dispose(): void }, path: string): void {
  const changed = changedFile(files);
  if (changed === null) return;
  loaded.dispose();
  throw new HaloError(EngineErrorCode.ENGINE_MODEL_CHANGED, "the model file changed while it was loading", {
    path,
    expected: "the file whose weights were verified",
    actual: changed,
    hint: "Something replaced or wrote the file during the load; load it again once it is complete",
  });
}

function isChoiceList(value: BackendChoice | readonly BackendChoice[]): value is readonly BackendChoice[] {
  return Array.isArray(value);
}

/** What a backend cannot take of the model or the load options: the field it concerns and why, or null when it takes all. */
interface Unsupported {
  /** The load option the backend cannot take, or null when the model itself is the problem. */
  readonly field: "kvDtype" | "activationQuant" | "maxSequences" | null;
  readonly reason: string;
  readonly expected?: string;
  readonly actual?: string | number;
}

function supports(caps: BackendCapabilities, model: HaloModel, options: LoadModelOptions): Unsupported | null {
  if (!caps.architectures.includes(model.config.architecture)) return { field: null, reason: `architecture ${model.config.architecture} not supported` };
  if (!caps.activations.includes(model.config.activation)) return { field: null, reason: `activation ${model.config.activation} not supported` };
  if (model.config.headDim > caps.maxHeadDim) return { field: null, reason: `head width ${model.config.headDim} above ${caps.maxHeadDim}` };
  if (options.kvDtype !== undefined && !caps.kvDtypes.includes(options.kvDtype)) {
    return {
      field: "kvDtype",
      reason: `KV cache dtype ${options.kvDtype} not supported (it runs ${caps.kvDtypes.join(", ")})`,
      expected: caps.kvDtypes.join(", "),
      actual: options.kvDtype,
    };
  }
  const quant = options.activationQuant ?? "per-token";
  if (!caps.activationQuants.includes(quant)) {
    return {
      field: "activationQuant",
      reason: `activation quantisation ${quant} not supported (it runs ${caps.activationQuants.join(", ")})`,
      expected: caps.activationQuants.join(", "),
      actual: quant,
    };
  }
  const sequences = options.maxSequences ?? 4;
  if (sequences > caps.maxSequences) {
    return {
      field: "maxSequences",
      reason: `${sequences} sequences at once above its ${caps.maxSequences}`,
      expected: `at most ${caps.maxSequences}`,
      actual: sequences,
    };
  }
  return null;
}

/** The first line of what a thrown value says. */
function firstLine(cause: unknown): string {
  return cause instanceof Error ? (cause.message.split("\n")[0] ?? "") : String(cause);
}

/** The memory a backend that reports none is checked against: the host's (it allocates there, or says otherwise through probe().memory). */
function hostMemory(): BackendMemory {
  return { kind: "host", totalBytes: totalmem(), freeBytes: freemem() };
}

/** Checks the options that need no file: moved and unknown keys, integers, kvDtype, the shape of backend and backendOptions. */
function checkLoadOptions(options: LoadModelOptions): void {
  if (typeof options === "object" && options !== null) {
    for (const [key, moved] of Object.entries(MOVED_LOAD_OPTIONS)) {
      if (!(key in options)) continue;
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `${key} moved to ${moved}`, {
        field: key,
        expected: `backendOptions: { cpu: { ${key}: … } } (each backend takes its own options)`,
        actual: key,
        hint: `Pass backendOptions: { cpu: { ${key}: … } } instead; only the cpu backend takes it`,
      });
    }
  }
  checkOptionKeys("loadModel", options, LOAD_MODEL_OPTION_KEYS);
  if (options.maxSequences !== undefined) checkInteger("maxSequences", options.maxSequences, 1, 4096);
  if (options.kvDtype !== undefined && !(KV_DTYPES as readonly unknown[]).includes(options.kvDtype)) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "unknown KV cache dtype", {
      field: "kvDtype",
      expected: KV_DTYPES.join(", "),
      actual: options.kvDtype,
      hint: "Pass one of those, or leave kvDtype out for the backend's default",
    });
  }
  checkBackendShape(options);
  if (options.speculative !== undefined) checkSpeculativeOptions(options.speculative);
  prefixCacheOf(options.prefixCache);
}

/** The shortest cached prefix a request reuses unless `prefixCache.minTokens` says otherwise. */
export const DEFAULT_PREFIX_CACHE_MIN_TOKENS = 16;

/** loadModel's `prefixCache` as the scheduler takes it: null when off. */
function prefixCacheOf(option: LoadModelOptions["prefixCache"]): { readonly minTokens: number } | null {
  if (option === undefined || option === true) return { minTokens: DEFAULT_PREFIX_CACHE_MIN_TOKENS };
  if (option === false) return null;
  if (typeof option !== "object" || option === null || Array.isArray(option) || Object.keys(option).some((key) => key !== "minTokens")) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "prefixCache must be true, false or { minTokens }", {
      field: "prefixCache",
      expected: "true, false, or { minTokens: an integer ≥ 1 }",
      actual: JSON.stringify(option),
      hint: "Leave prefixCache out for the default (on, minTokens 16)",
    });
  }
  return { minTokens: checkInteger("prefixCache.minTokens", option.minTokens ?? DEFAULT_PREFIX_CACHE_MIN_TOKENS, 1, 1 << 24) };
}

/** Checks the shape of `backend` and `backendOptions` (no discovery). */
function checkBackendShape(options: Pick<LoadModelOptions, "backend" | "backendOptions">): void {
  if (typeof options !== "object" || options === null) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "the backend choice must be an object", {
      expected: "{ backend?, backendOptions? }",
      actual: options === null ? "null" : typeof options,
    });
  }
  const backendOptions: unknown = options.backendOptions;
  if (backendOptions !== undefined) {
    if (typeof backendOptions !== "object" || backendOptions === null || Array.isArray(backendOptions)) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "backendOptions must be an object of options by backend name", {
        field: "backendOptions",
        expected: "{ cpu: { threads: 8 }, … }",
        actual: backendOptions === null ? "null" : Array.isArray(backendOptions) ? "an array" : typeof backendOptions,
      });
    }
    for (const [name, value] of Object.entries(backendOptions)) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `backendOptions.${name} must be an object of that backend's options`, {
          field: `backendOptions.${name}`,
          expected: "an object such as { threads: 8 }",
          actual: value === null ? "null" : Array.isArray(value) ? "an array" : typeof value,
        });
      }
    }
  }
  const wanted = options.backend ?? "auto";
  for (const choice of isChoiceList(wanted) ? wanted : [wanted]) {
    if (typeof choice === "string" || isBackendFactory(choice) || isBackendObject(choice)) continue;
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "unknown kind of backend choice", {
      field: "backend",
      expected: '"auto", a backend name, a BackendFactory or a Backend object (or a list of those)',
      actual: choice === null ? "null" : typeof choice,
    });
  }
}

/**
 * The candidates a choice list stands for, in order: factories (by name through discovery, or passed
 * in) and Backend objects; names that are not installed become skipped entries.
 */
function expandChoices(choices: readonly BackendChoice[], discovery: BackendDiscovery, skipped: SkippedBackend[]): (Backend | BackendFactory)[] {
  const out: (Backend | BackendFactory)[] = [];
  const seen = new Set<string>();
  const add = (candidate: Backend | BackendFactory): void => {
    if (isBackendFactory(candidate)) {
      if (seen.has(candidate.name)) return;
      seen.add(candidate.name);
    }
    out.push(candidate);
  };
  let reportedRefused = false;
  for (const choice of choices) {
    if (typeof choice !== "string") add(choice);
    else if (choice === "auto") {
      // Packages that declare a backend but could not be offered were "tried" too: say why once.
      if (!reportedRefused)
        for (const r of discovery.refused)
          skipped.push({ name: r.name ?? r.packageName.replace(/^@halo\/kernels-/, ""), reason: `${r.packageName} ${r.reason}` });
      reportedRefused = true;
      for (const factory of discovery.factories) add(factory);
    } else {
      const factory = discovery.factories.find((f) => f.name === choice);
      if (factory !== undefined) add(factory);
      else skipped.push({ name: choice, reason: notInstalled(choice, discovery) });
    }
  }
  return out;
}

function notInstalled(name: string, discovery: BackendDiscovery): string {
  const refused = discovery.refused.find((r) => r.name === name || r.packageName === `@halo/kernels-${name}`);
  if (refused !== undefined) return `${refused.packageName} ${refused.reason}`;
  return `no installed backend is named "${name}" (installed: ${discovery.factories.map((f) => f.name).join(", ")}). Fix: install its package (npm install @halo/kernels-${name}), or pick an installed one`;
}

/**
 * Why creating a backend failed, for the skipped list. A bad option is not a reason to skip: the
 * factory's option errors (`KERNELS_BAD_OPTION`, or a backend's own `*_BAD_OPTION`) are thrown.
 */
function createFailure(cause: unknown): string {
  if (isHaloError(cause) && cause.code.endsWith("_BAD_OPTION")) throw cause;
  return `create() failed: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`;
}

/**
 * The weight layouts the given backends ship ({@link BackendFactory.packings}), one codec per
 * packing name (the first factory's that lists it: pass discovery's factories, highest priority
 * first), so a `.halo` stored in a backend's own layout opens whichever backend then runs it.
 * `loadModel` opens files with the installed backends' packings; converters store with them.
 *
 * @example
 * ```ts
 * import { discoverBackends, installedPackings } from "@halo/engine";
 * const codecs = installedPackings((await discoverBackends()).factories);
 * await convertModel(model, "model.halo", { format: "halo", codecs });
 * ```
 */
export function installedPackings(factories: readonly BackendFactory[]): PackingCodec[] {
  const byName = new Map<string, PackingCodec>();
  for (const factory of factories) for (const codec of factory.packings ?? []) if (!byName.has(codec.packing)) byName.set(codec.packing, codec);
  return [...byName.values()];
}

/** What {@link checkBackendChoice} found: the installed backends, and the options that will not apply. */
export interface BackendChoiceCheck {
  /** The installed backends ({@link discoverBackends}, with the factories passed in `backend`). */
  readonly discovery: BackendDiscovery;
  /**
   * Backends given `backendOptions` that this choice can never run (`backend: "reference"` with
   * `backendOptions.cpu`): their options were checked but will not apply. Empty with `"auto"` when
   * every named backend is a candidate; a loaded {@link Engine.unusedBackendOptions} also names those
   * passed over.
   */
  readonly unusedBackendOptions: readonly string[];
}

/**
 * A checked choice: the candidates in order, each factory created with its options (or why create() failed), the
 * skipped names, and the probe of a backend named alone (taken before any file is opened, not asked twice).
 */
interface PreparedChoice extends BackendChoiceCheck {
  readonly choices: readonly BackendChoice[];
  readonly order: readonly (Backend | BackendFactory)[];
  readonly created: ReadonlyMap<BackendFactory, Backend | { readonly failure: string }>;
  readonly skipped: readonly SkippedBackend[];
  readonly probes: ReadonlyMap<BackendFactory, BackendProbe>;
}

/**
 * Whether `factory` can run here as it will run: the probe of the backend created with the caller's options when
 * options were given (an option may choose what opens: hip's `device`), else the factory's own. A probe that throws
 * (the contract says it never does) is an unavailable answer saying so.
 */
async function probeOf(
  factory: BackendFactory,
  made: Backend | { readonly failure: string } | undefined,
  options: Readonly<Record<string, unknown>> | undefined,
): Promise<BackendProbe> {
  try {
    return options !== undefined && made !== undefined && !("failure" in made) ? await made.probe() : await factory.probe();
  } catch (cause) {
    return { available: false, reason: `probe() failed: ${firstLine(cause)}` };
  }
}

/**
 * The refusal of a backend named alone whose probe says it cannot run here: its reason, and the installed
 * backends `auto` would try instead. No `field`: the name is right (the backend is installed), the machine lacks
 * what it needs — not a bad option value.
 */
function unavailableError(name: string, reason: string, discovery: BackendDiscovery, path: string | null): HaloError {
  const others = discovery.factories.map((f) => f.name).filter((n) => n !== name);
  return new HaloError(EngineErrorCode.ENGINE_NO_BACKEND, `the ${name} backend cannot run here`, {
    ...(path !== null ? { path } : {}),
    actual: `${name}: ${reason}`,
    hint: `Fix what its reason names, or pass backend: "auto" to run on the first installed backend that can (${others.join(", ")})`,
  });
}

/** Creates `factory` with its options: a bad option throws (the backend's `*_BAD_OPTION`); another failure is returned as why. */
function createWith(factory: BackendFactory, own: Readonly<Record<string, unknown>> | undefined): Backend | { readonly failure: string } {
  try {
    return own === undefined ? factory.create() : factory.create(own);
  } catch (cause) {
    return { failure: createFailure(cause) };
  }
}

/**
 * The backend half of {@link loadModel}'s checks, which needs no file: the shape of `backend` and
 * `backendOptions`, every `backendOptions` key names an installed backend, and every backend a
 * choice names or gives options to is created with its options (`create()` only checks them:
 * allocation happens in `loadModel`), so a bad option value is refused (`KERNELS_BAD_OPTION`, or the
 * backend's own `*_BAD_OPTION`) before any file is opened or verified. A choice that leaves no
 * candidate (a single name not installed) is refused with `ENGINE_NO_BACKEND`.
 */
async function prepareBackends(options: Pick<LoadModelOptions, "backend" | "backendOptions">, path: string | null): Promise<PreparedChoice> {
  const wanted = options.backend ?? "auto";
  const choices: readonly BackendChoice[] = isChoiceList(wanted) ? wanted : [wanted];
  const backendOptions = options.backendOptions ?? {};
  const passedFactories = choices.filter((c): c is BackendFactory => isBackendFactory(c));
  const discovery = await discoverBackends({ factories: passedFactories });
  for (const name of Object.keys(backendOptions)) {
    if (discovery.factories.some((f) => f.name === name)) continue;
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `backendOptions.${name} names no installed backend`, {
      field: `backendOptions.${name}`,
      expected: `options of an installed backend: ${discovery.factories.map((f) => f.name).join(", ")}`,
      actual: name,
      hint: notInstalled(name, discovery),
    });
  }
  for (const choice of choices) {
    if (isBackendObject(choice) && backendOptions[choice.name] !== undefined) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `backendOptions.${choice.name} cannot reach a Backend object, which is already created`, {
        field: `backendOptions.${choice.name}`,
        expected: "options for backends loadModel creates (given by name or as a BackendFactory)",
        actual: `a Backend object named ${choice.name}`,
        hint: "Create the Backend object with those options yourself, or pass its factory or name instead",
      });
    }
  }
  const skipped: SkippedBackend[] = [];
  const order = expandChoices(choices, discovery, skipped);
  const created = new Map<BackendFactory, Backend | { readonly failure: string }>();
  for (const entry of order) if (isBackendFactory(entry)) created.set(entry, createWith(entry, backendOptions[entry.name]));
  // Options of a backend the choice never runs are checked all the same (nothing is silently ignored), then reported unused.
  const candidates = new Set(order.filter((e): e is BackendFactory => isBackendFactory(e)).map((f) => f.name));
  const unusedBackendOptions: string[] = [];
  for (const name of Object.keys(backendOptions)) {
    if (candidates.has(name)) continue;
    unusedBackendOptions.push(name);
    createWith(
      discovery.factories.find((f) => f.name === name)!,
      backendOptions[name],
    );
  }
  if (order.length === 0) {
    throw new HaloError(EngineErrorCode.ENGINE_NO_BACKEND, "no backend can run this model", {
      ...(path !== null ? { path } : {}),
      field: "backend",
      expected: `an installed backend: ${discovery.factories.map((f) => f.name).join(", ")}`,
      actual: skipped.map((s) => `${s.name}: ${s.reason}`).join("; "),
      hint: "Install the backend's package, or pick an installed one",
    });
  }
  // A backend named alone (by name or as a factory) is probed now: one that cannot run here (a GPU backend on a machine
  // without its GPU) is refused with its reason before any file is resolved, opened or verified.
  const probes = new Map<BackendFactory, BackendProbe>();
  const only = choices.length === 1 && choices[0] !== "auto" && order.length === 1 ? order[0] : undefined;
  if (only !== undefined && isBackendFactory(only)) {
    const probe = await probeOf(only, created.get(only), backendOptions[only.name]);
    if (!probe.available) throw unavailableError(only.name, probe.reason, discovery, path);
    probes.set(only, probe);
  }
  return { discovery, unusedBackendOptions, choices, order, created, skipped, probes };
}

/**
 * Checks a backend choice the way {@link loadModel} does before it opens any file, without loading:
 * the shape of `backend` and `backendOptions`, that every `backendOptions` key names an installed
 * backend (`ENGINE_BAD_OPTION`, field `backendOptions.<name>`), that the choice leaves a candidate
 * (`ENGINE_NO_BACKEND` for a single name not installed, field `backend`), every named backend's
 * options, by creating it (`KERNELS_BAD_OPTION` or the backend's own `*_BAD_OPTION`), and that a
 * backend named alone can run here (its `probe()`; `ENGINE_NO_BACKEND` with its reason, no field). Resolves with
 * the discovery and the backends whose options this choice can never use. For apps that load later
 * (a server that listens first) and want option errors now.
 *
 * @example
 * ```ts
 * import { checkBackendChoice } from "@halo/engine";
 * const { unusedBackendOptions } = await checkBackendChoice({ backend: "reference", backendOptions: { cpu: { threads: 8 } } });
 * for (const name of unusedBackendOptions) console.warn(`backendOptions.${name} will not be used`); // cpu
 * ```
 */
export async function checkBackendChoice(options: Pick<LoadModelOptions, "backend" | "backendOptions"> = {}): Promise<BackendChoiceCheck> {
  checkBackendShape(options);
  const { discovery, unusedBackendOptions } = await prepareBackends(options, null);
  return { discovery, unusedBackendOptions };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * Opens a model file (a `.halo` container, seed `.h1b`, GGUF, or a Hugging Face snapshot
 * directory) or takes an already-open {@link HaloModel}, builds its tokenizer, chooses a backend
 * (see {@link LoadModelOptions.backend}; installed backends are found by {@link discoverBackends})
 * and returns a ready {@link Engine}. The file is closed once the backend has taken the weights.
 * Every backend named in `backend` or `backendOptions` is created with its options before the file
 * is opened, so option errors come before any weight is read, and a backend named alone is probed
 * then: one that cannot run here is refused with its probe's reason (`ENGINE_NO_BACKEND`) before the
 * file is opened ({@link checkBackendChoice} runs the same checks without loading). A backend that says what it allocates (`estimateMemory`) and needs
 * more than the memory its `probe().memory` reports — or the host's (`os.totalmem()`) when it
 * reports none — is passed over; when every backend that could run the model was passed over for
 * memory the load is refused with `ENGINE_OUT_OF_MEMORY` (never a fallback to one that needs more).
 * A backend whose `probe()`, `capabilities()` or `estimateMemory()` throws, or that cannot take the
 * requested `kvDtype`, `activationQuant` or `maxSequences`, is passed over with why in
 * {@link Engine.skippedBackends} (a single backend named alone refuses those options with `ENGINE_BAD_OPTION`).
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * const engine = await loadModel("bitnet-2b.halo", {
 *   contextLength: 2048,
 *   backendOptions: { cpu: { threads: 4 } },
 *   onProgress: (p) => console.log(p),
 * });
 * const ids = engine.tokenize("Hello");
 * engine.dispose();
 * ```
 */
export async function loadModel(source: string | HaloModel, options: LoadModelOptions = {}): Promise<Engine> {
  const started = performance.now();
  if (typeof source !== "string" && (typeof source !== "object" || source === null || !("layers" in source))) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "loadModel takes a path or an opened HaloModel", {
      field: "source",
      actual: typeof source,
    });
  }
  checkLoadOptions(options);
  // Every backend named is created with its options before the file is opened: option errors come first.
  const prepared = await prepareBackends(options, typeof source === "string" ? source : source.source.path);
  const { discovery, choices, order, created } = prepared;
  const backendOptions = options.backendOptions ?? {};
  options.signal?.throwIfAborted();
  options.onProgress?.({ phase: "open", fraction: 0 });
  const openOptions = {
    ...(options.format !== undefined ? { format: options.format } : {}),
    ...(options.tokenizer !== undefined ? { tokenizer: options.tokenizer } : {}),
    codecs: installedPackings(discovery.factories),
  };
  const model = typeof source === "string" ? await openModel(source, openOptions) : source;
  const ownsModel = typeof source === "string";
  try {
    options.onProgress?.({ phase: "open", fraction: 1 });
    const config = model.config;
    const contextLength = checkInteger("contextLength", options.contextLength ?? Math.min(config.maxPositionEmbeddings, 4096), 2, config.maxPositionEmbeddings);
    const tokenizer = model.tokenizer === null ? null : Tokenizer.fromPayload(model.tokenizer);
    if (tokenizer !== null && tokenizer.vocabSize > config.vocabSize) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_MODEL, "the tokenizer has more ids than the model's embedding", {
        path: model.source.path,
        expected: `at most ${config.vocabSize} ids`,
        actual: tokenizer.vocabSize,
        hint: "Pass the tokenizer that belongs to this model",
      });
    }
    const chatTemplate = chooseChatTemplate(model, {
      tokenizer,
      ...(options.chatTemplate !== undefined ? { requested: options.chatTemplate } : {}),
    });
    // The cheap checks above (options against the header, the template) come first; then every weight byte is read.
    const verifiedFiles = options.verify === false ? [] : await verifyWeights(model, options);

    const skipped: SkippedBackend[] = [...prepared.skipped];
    const loadOptionsFor = (caps: BackendCapabilities): LoadOptions => {
      const kvDtype = options.kvDtype ?? (caps.kvDtypes.includes("f16") ? "f16" : caps.kvDtypes[0]);
      return {
        contextLength,
        maxSequences: options.maxSequences ?? 4,
        ...(kvDtype !== undefined ? { kvDtype } : {}),
        activationQuant: options.activationQuant ?? "per-token",
      };
    };
    // One backend named explicitly (not "auto", not a list) gets precise errors for the options it cannot take.
    const single = choices.length === 1 && choices[0] !== "auto";
    let chosen: { backend: Backend; caps: BackendCapabilities; factory: BackendFactory | null; estimate: MemoryEstimate | null } | null = null;
    const tooBig: { name: string; need: number; memory: BackendMemory; reported: boolean }[] = [];
    for (const entry of order) {
      let backend: Backend;
      let probe: BackendProbe | null;
      const factory = isBackendFactory(entry) ? entry : null;
      const name = factory?.name ?? (entry as Backend).name;
      // A broken backend (probe, capabilities or estimateMemory throwing) is skipped with why, never the whole load.
      try {
        if (factory !== null) {
          probe = prepared.probes.get(factory) ?? (await probeOf(factory, created.get(factory), backendOptions[name]));
          if (!probe.available) {
            skipped.push({ name, reason: probe.reason });
            continue;
          }
          const made = created.get(factory)!;
          if ("failure" in made) {
            skipped.push({ name, reason: made.failure });
            continue;
          }
          backend = made;
        } else {
          backend = entry as Backend;
          // A Backend object given alone is used as given (its probe is its own business); in a list it is probed like the rest.
          probe = order.length === 1 ? null : await backend.probe();
          if (probe !== null && !probe.available) {
            skipped.push({ name, reason: probe.reason });
            continue;
          }
        }
      } catch (cause) {
        skipped.push({ name, reason: `probe() failed: ${firstLine(cause)}` });
        continue;
      }
      let caps: BackendCapabilities;
      try {
        caps = backend.capabilities();
      } catch (cause) {
        skipped.push({ name, reason: `capabilities() failed: ${firstLine(cause)}` });
        continue;
      }
      const unsupported = supports(caps, model, options);
      if (unsupported !== null) {
        if (single && unsupported.field !== null) {
          throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `the ${name} backend cannot take this ${unsupported.field}`, {
            field: unsupported.field,
            ...(unsupported.expected !== undefined ? { expected: unsupported.expected } : {}),
            ...(unsupported.actual !== undefined ? { actual: unsupported.actual } : {}),
            hint: `Pass one the ${name} backend runs, or another backend`,
          });
        }
        skipped.push({ name, reason: unsupported.reason });
        continue;
      }
      let estimate: MemoryEstimate | null;
      try {
        estimate = backend.estimateMemory?.(config, loadOptionsFor(caps)) ?? null;
      } catch (cause) {
        skipped.push({ name, reason: `estimateMemory() failed: ${firstLine(cause)}` });
        continue;
      }
      // Every estimate is checked: against the memory the backend reports, else the host's.
      const reported = probe?.memory !== undefined;
      const memory = probe?.memory ?? hostMemory();
      if (estimate !== null && estimate.totalBytes > memory.totalBytes) {
        const reason =
          `needs about ${gib(estimate.totalBytes)} (weights ${gib(estimate.weightsBytes)}, KV ${gib(estimate.kvBytes)}, scratch ${gib(estimate.scratchBytes)}) ` +
          `but has ${gib(memory.totalBytes)} of ${memory.kind} memory${reported ? "" : " (it reports none: the host's)"}`;
        skipped.push({ name, reason });
        tooBig.push({ name, need: estimate.totalBytes, memory, reported });
        continue;
      }
      chosen = { backend, caps, factory, estimate };
      break;
    }
    if (chosen === null) {
      if (tooBig.length > 0) {
        throw new HaloError(EngineErrorCode.ENGINE_OUT_OF_MEMORY, "the model with these options does not fit in the memory of any backend that can run it", {
          path: model.source.path,
          expected: tooBig.map((t) => `${t.name}: at most ${gib(t.memory.totalBytes)} (${t.memory.kind} memory)`).join("; "),
          actual: skipped.map((s) => `${s.name}: ${s.reason}`).join("; "),
          hint: `Lower contextLength (now ${contextLength}) or maxSequences (now ${options.maxSequences ?? 4}), or pick a smaller kvDtype (${KV_DTYPES.join(", ")}; int8 is about a quarter of f32)`,
        });
      }
      throw new HaloError(EngineErrorCode.ENGINE_NO_BACKEND, "no backend can run this model", {
        path: model.source.path,
        actual: skipped.map((s) => `${s.name}: ${s.reason}`).join("; "),
        hint: 'Install a backend package (npm install @halo/kernels-cpu for the native CPU backend), or pass backend: "reference"',
      });
    }
    const { backend, caps, factory, estimate } = chosen;
    const loaded = await backend.loadModel(model, {
      ...loadOptionsFor(caps),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      onProgress: ({ done, total }) => options.onProgress?.({ phase: "weights", fraction: total > 0 ? done / total : 1 }),
    });
    checkUnchanged(verifiedFiles, loaded, model.source.path);
    const prefixCache = prefixCacheOf(options.prefixCache);
    let speculation: Speculation | undefined;
    if (options.speculative !== undefined) {
      try {
        speculation = await buildSpeculation(options.speculative, {
          model,
          loaded,
          caps: { outputs: caps.outputs ?? ["logits"], hiddenRows: caps.hiddenRows === true },
          backendName: factory?.name ?? null,
          contextLength,
          maxSequences: options.maxSequences ?? 4,
          verify: options.verify !== false,
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
          loadDraft: async (path, backend) => {
            const draftOptions: LoadModelOptions = {
              backend,
              ...(options.backendOptions?.[backend] !== undefined ? { backendOptions: { [backend]: options.backendOptions[backend]! } } : {}),
              contextLength,
              maxSequences: options.maxSequences ?? 4,
              // The drafter manages the draft model's slots itself (it never generates through its engine).
              prefixCache: false,
              ...(options.verify !== undefined ? { verify: options.verify } : {}),
              ...(options.signal !== undefined ? { signal: options.signal } : {}),
            };
            try {
              return await loadModel(path, draftOptions);
            } catch (error) {
              // A draft model trained on shorter sequences: run it at its own context (it drafts nothing beyond it).
              if (!isHaloError(error) || error.field !== "contextLength") throw error;
              const { contextLength: _unused, ...shorter } = draftOptions;
              return loadModel(path, shorter);
            }
          },
        });
      } catch (error) {
        loaded.dispose();
        throw error;
      }
    }
    const eos = new Set<number>(config.eosTokenIds);
    // A backend of contract 1 (a Backend object from older code) has no preferredBatchTokens: the engine's former cap.
    const preferred = typeof caps.preferredBatchTokens === "number" ? caps.preferredBatchTokens : Math.min(caps.maxBatchTokens, 512);
    const parts: EngineParts = {
      model: loaded,
      tokenizer,
      backendName: backend.name,
      skippedBackends: skipped,
      source: model.source.path,
      chatTemplate,
      eosTokenIds: [...eos],
      maxBatchTokens: Math.max(1, Math.min(preferred, caps.maxBatchTokens)),
      capabilities: { outputs: caps.outputs ?? ["logits"], hiddenRows: caps.hiddenRows === true },
      // By the factory's name (the key of backendOptions): a backend's display name may carry its options ("reference split-kv 64").
      unusedBackendOptions: Object.keys(backendOptions).filter((name) => name !== (factory?.name ?? backend.name)),
      loadMs: performance.now() - started,
      ...(estimate !== null ? { memoryEstimate: estimate } : {}),
      ...(factory !== null ? { backendFactory: factory } : {}),
      ...(speculation !== undefined ? { speculation } : {}),
      outputNorm: model.outputNorm.toFloat32(),
      ...(prefixCache !== null ? { prefixCache } : {}),
      close: () => {
        if (ownsModel) model.close();
      },
    };
    return new Engine(parts);
  } catch (error) {
    if (ownsModel) model.close();
    if (isHaloError(error) && error.code === "KERNELS_ABORTED") {
      throw new HaloError(EngineErrorCode.ENGINE_ABORTED, "loading was cancelled", { path: model.source.path, cause: error });
    }
    throw error;
  }
}
