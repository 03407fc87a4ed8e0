// loadModel: open any model file h1b-format reads, build its tokenizer, pick a backend, start an Engine.
import { HaloError, isHaloError } from "@halo/errors";
import { changedFile, openModel, verifyModelWeights, type HaloModel, type ModelFormat, type VerifiedFile } from "@halo/h1b-format";
import { referenceBackend, type ActivationQuant, type Backend, type KvDtype } from "@halo/kernels";
import { Tokenizer } from "@halo/tokenizer";
import { chooseChatTemplate } from "./chat-template-choice.js";
import { Engine } from "./engine.js";
import { EngineErrorCode } from "./errors.js";
import { checkInteger, checkOptionKeys, type UnlistedKeys } from "./generate-options.js";

/** Progress of {@link loadModel}: opening the file, then the backend taking the weights. */
export interface LoadModelProgress {
  readonly phase: "open" | "weights";
  /** Fraction done in [0, 1] within the phase. */
  readonly fraction: number;
}

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * `"auto"` (default) picks the fastest available backend that supports the model: `cpu`
   * (package `@halo/kernels-cpu`, when installed) then `reference`. A name forces that backend;
   * a {@link Backend} object uses it directly; a list is tried in order (the first that loads and
   * supports the model runs). Backends passed over are listed in {@link Engine.skippedBackends} with why.
   */
  readonly backend?: BackendChoice | readonly BackendChoice[];
  /** KV positions per sequence. Default min(model's trained context, 4096). */
  readonly contextLength?: number;
  /** Sequences that can run at once (each holds a KV slot). Default 4. */
  readonly maxSequences?: number;
  /** KV cache dtype. Default: the backend's first supported (`f16` where available). */
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
  /** Threads for native backends. Default: all cores. */
  readonly threads?: number;
  /**
   * LM head storage for native backends: `"f16"` (default: exact, the weights as stored), `"int8"` (half the bytes) or
   * `"int4"` (about a quarter). The quantised forms trade accuracy for decode speed (top-1 agreement and KL divergence
   * against the exact head are in `docs/benchmarks.md`); the reference backend computes the head exactly only.
   */
  readonly lmHead?: LmHeadStorage;
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
  "contextLength",
  "maxSequences",
  "kvDtype",
  "activationQuant",
  "format",
  "tokenizer",
  "chatTemplate",
  "threads",
  "lmHead",
  "onProgress",
  "signal",
  "verify",
] as const satisfies ReadonlyArray<keyof LoadModelOptions>;

// The build fails naming any option added to LoadModelOptions but not to LOAD_MODEL_OPTION_KEYS (it would be refused at run time).
const everyLoadOptionListed: Record<UnlistedKeys<LoadModelOptions, typeof LOAD_MODEL_OPTION_KEYS>, never> = {};
void everyLoadOptionListed;

/** LM head storages {@link LoadModelOptions.lmHead} takes. */
export const LM_HEAD_STORAGES = ["f16", "int8", "int4"] as const;
/** One of {@link LM_HEAD_STORAGES}. */
export type LmHeadStorage = (typeof LM_HEAD_STORAGES)[number];

/** One entry of {@link LoadModelOptions.backend}: `"auto"`, a backend name, or a {@link Backend} object. */
export type BackendChoice = "auto" | "reference" | "cpu" | Backend;

/** A backend {@link loadModel} passed over, and why (not installed, failed to load, does not support the model). */
export interface SkippedBackend {
  readonly name: string;
  readonly reason: string;
}

/**
 * The load-time weight check ({@link LoadModelOptions.verify}); a cancelled pass rejects with
 * `ENGINE_ABORTED`. Resolves with the files whose bytes were verified, for {@link checkUnchanged}.
 */
async function verifyWeights(model: HaloModel, options: LoadModelOptions): Promise<readonly VerifiedFile[]> {
  if (options.verify !== undefined && typeof options.verify !== "boolean") {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "verify must be true or false", { field: "verify", expected: "a boolean", actual: typeof options.verify });
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

/** Names of the backends {@link loadModel} knows, in `"auto"` preference order. */
export const BACKEND_NAMES = ["cpu", "reference"] as const;

// Imported by name at run time so @halo/engine installs without the native package.
const NATIVE_BACKEND_PACKAGES: Record<string, string> = { cpu: "@halo/kernels-cpu" };

/** Reason a backend cannot be used, or the backend. */
type Candidate = { readonly backend: Backend } | { readonly name: string; readonly reason: string };

async function resolveBackend(name: string, threads: number | undefined, lmHead: LmHeadStorage): Promise<Candidate> {
  if (name === "reference") {
    return lmHead === "f16" ? { backend: referenceBackend() } : { name, reason: `computes the LM head exactly only (lmHead ${lmHead} needs the cpu backend)` };
  }
  const packageName = NATIVE_BACKEND_PACKAGES[name];
  if (packageName === undefined) return { name, reason: `unknown backend (known: ${BACKEND_NAMES.join(", ")})` };
  try {
    const module = (await import(packageName)) as { createBackend?: (options: { threads?: number; lmHead?: LmHeadStorage }) => Backend };
    if (typeof module.createBackend !== "function") return { name, reason: `${packageName} does not export createBackend()` };
    return { backend: module.createBackend({ ...(threads === undefined ? {} : { threads }), ...(lmHead === "f16" ? {} : { lmHead }) }) };
  } catch (cause) {
    const code = (cause as { code?: unknown } | null)?.code;
    if (code === "ERR_MODULE_NOT_FOUND" && cause instanceof Error && cause.message.includes(packageName)) {
      return { name, reason: `${packageName} is not installed. Fix: npm install ${packageName}` };
    }
    return { name, reason: `${packageName} failed to load (${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}). Fix: npm rebuild ${packageName}` };
  }
}

function isChoiceList(value: BackendChoice | readonly BackendChoice[]): value is readonly BackendChoice[] {
  return Array.isArray(value);
}

function supports(backend: Backend, model: HaloModel): string | null {
  const caps = backend.capabilities();
  if (!caps.architectures.includes(model.config.architecture)) return `architecture ${model.config.architecture} not supported`;
  if (!caps.activations.includes(model.config.activation)) return `activation ${model.config.activation} not supported`;
  if (model.config.headDim > caps.maxHeadDim) return `head width ${model.config.headDim} above ${caps.maxHeadDim}`;
  return null;
}

/**
 * Opens a model file (a `.halo` container, seed `.h1b`, GGUF, or a Hugging Face snapshot
 * directory) or takes an already-open {@link HaloModel}, builds its tokenizer, chooses a backend
 * and returns a ready {@link Engine}. The file is closed once the backend has taken the weights.
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * const engine = await loadModel("bitnet-2b.halo", { contextLength: 2048, onProgress: (p) => console.log(p) });
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
  checkOptionKeys("loadModel", options, LOAD_MODEL_OPTION_KEYS);
  if (options.maxSequences !== undefined) checkInteger("maxSequences", options.maxSequences, 1, 4096);
  if (options.threads !== undefined) checkInteger("threads", options.threads, 1, 1024);
  const lmHead = options.lmHead ?? "f16";
  if (!(LM_HEAD_STORAGES as readonly unknown[]).includes(lmHead)) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "unknown LM head storage", {
      field: "lmHead",
      expected: LM_HEAD_STORAGES.join(", "),
      actual: lmHead,
      hint: "Pass one of those, or leave lmHead out for the exact f16 head",
    });
  }
  if (lmHead !== "f16" && options.backend !== undefined && (isChoiceList(options.backend) ? options.backend : [options.backend]).some((b) => typeof b === "object")) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "lmHead applies to the backends loadModel creates by name", {
      field: "lmHead",
      expected: 'lmHead "f16" with a Backend object, or a backend given by name',
      actual: `lmHead "${lmHead}" with a Backend object`,
      hint: "Create the Backend object with its own head option (createBackend({ lmHead }) in @halo/kernels-cpu), or pass backend: \"cpu\"",
    });
  }
  options.signal?.throwIfAborted();
  options.onProgress?.({ phase: "open", fraction: 0 });
  const openOptions = {
    ...(options.format !== undefined ? { format: options.format } : {}),
    ...(options.tokenizer !== undefined ? { tokenizer: options.tokenizer } : {}),
  };
  const model = typeof source === "string" ? await openModel(source, openOptions) : source;
  const ownsModel = typeof source === "string";
  try {
    options.onProgress?.({ phase: "open", fraction: 1 });
    const config = model.config;
    const contextLength = checkInteger(
      "contextLength",
      options.contextLength ?? Math.min(config.maxPositionEmbeddings, 4096),
      2,
      config.maxPositionEmbeddings,
    );
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

    const wanted = options.backend ?? "auto";
    const choices: readonly BackendChoice[] = isChoiceList(wanted) ? wanted : [wanted];
    const order = choices.flatMap((choice): (string | Backend)[] => (choice === "auto" ? [...BACKEND_NAMES] : [choice]));
    const skipped: SkippedBackend[] = [];
    let chosen: Backend | null = null;
    for (const entry of order) {
      const candidate = typeof entry === "object" ? { backend: entry } : await resolveBackend(entry, options.threads, lmHead);
      if (!("backend" in candidate)) {
        skipped.push({ name: candidate.name, reason: candidate.reason });
        continue;
      }
      // A Backend object given alone is used as given (its probe is its own business); in a list it is probed like the rest.
      if (order.length === 1 && typeof entry === "object") {
        chosen = entry;
        break;
      }
      const probe = await candidate.backend.probe();
      const unsupported = probe.available ? supports(candidate.backend, model) : probe.reason;
      if (unsupported !== null) skipped.push({ name: candidate.backend.name, reason: unsupported });
      else {
        chosen = candidate.backend;
        break;
      }
    }
    if (chosen === null) {
      throw new HaloError(EngineErrorCode.ENGINE_NO_BACKEND, "no backend can run this model", {
        path: model.source.path,
        actual: skipped.map((s) => `${s.name}: ${s.reason}`).join("; "),
        hint: 'Install @halo/kernels-cpu for the native backend (npm install @halo/kernels-cpu), or pass backend: "reference"',
      });
    }
    const caps = chosen.capabilities();
    const kvDtype = options.kvDtype ?? (caps.kvDtypes.includes("f16") ? "f16" : caps.kvDtypes[0]);
    const loaded = await chosen.loadModel(model, {
      contextLength,
      maxSequences: options.maxSequences ?? 4,
      ...(kvDtype !== undefined ? { kvDtype } : {}),
      activationQuant: options.activationQuant ?? "per-token",
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      onProgress: ({ done, total }) => options.onProgress?.({ phase: "weights", fraction: total > 0 ? done / total : 1 }),
    });
    checkUnchanged(verifiedFiles, loaded, model.source.path);
    const eos = new Set<number>(config.eosTokenIds);
    return new Engine({
      model: loaded,
      tokenizer,
      backendName: chosen.name,
      skippedBackends: skipped,
      source: model.source.path,
      chatTemplate,
      eosTokenIds: [...eos],
      maxBatchTokens: Math.max(1, Math.min(caps.maxBatchTokens, 512)),
      loadMs: performance.now() - started,
      close: () => {
        if (ownsModel) model.close();
      },
    });
  } catch (error) {
    if (ownsModel) model.close();
    if (isHaloError(error) && error.code === "KERNELS_ABORTED") {
      throw new HaloError(EngineErrorCode.ENGINE_ABORTED, "loading was cancelled", { path: model.source.path, cause: error });
    }
    throw error;
  }
}
