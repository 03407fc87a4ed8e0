// The Engine: a loaded model with its tokenizer, backend and scheduler; generate, chat, complete, perplexity.
import { HaloError } from "@halo/errors";
import type { BackendCapabilities, BackendFactory, LoadedModel, MemoryEstimate, WeightsConfig } from "@halo/kernels";
import { CHAT_ENCODE_OPTIONS, type ChatMessage, type ChatTemplateOptions, type EncodeOptions, type Tokenizer } from "@halo/tokenizer";
import { rendersEveryMessage, templateStopStrings, type ChatTemplateChoice } from "./chat-template-choice.js";
import { fitChatToContext, type ContextFit } from "./context-shift.js";
import { EngineErrorCode } from "./errors.js";
import type { GenerateEvent } from "./events.js";
import {
  CHAT_OPTION_KEYS,
  checkGenerateOptions,
  GENERATE_OPTION_KEYS,
  GENERATE_REQUEST_KEYS,
  checkTemplateVariables,
  samplerOptionsOf,
  type ChatOptions,
  type GenerateOptions,
  type GenerateRequest,
} from "./generate-options.js";
import { perplexityOf, type PerplexityOptions, type PerplexityResult } from "./perplexity.js";
import { Scheduler, type PrefixCacheStats, type SchedulerStats, type SequenceTask } from "./scheduler.js";
import { embedOf, type EmbedOptions, type EmbedResult } from "./embedding.js";
import { SamplingStep } from "./sampling-step.js";
import { Session, type SessionOptions, type SlotContinuation } from "./session.js";
import { speculativeTask, type Speculation, type SpeculativeEngineStats } from "./speculation.js";
import { planEveryRow, planLastRow } from "./step-plan.js";
import { TokenEmitter } from "./token-emitter.js";
import type { DrafterKind, SpeculativeRequestOptions } from "@halo/speculative";
import type { SkippedBackend } from "./load-model.js";

/** What an {@link Engine} was built from. @internal */
export interface EngineParts {
  readonly model: LoadedModel;
  readonly tokenizer: Tokenizer | null;
  readonly backendName: string;
  /** Backends tried before the one that runs, with why each was passed over. */
  readonly skippedBackends?: readonly SkippedBackend[];
  readonly source: string;
  readonly chatTemplate: ChatTemplateChoice;
  readonly eosTokenIds: readonly number[];
  /** Rows per scheduler step: the backend's `capabilities.preferredBatchTokens`; prompts run in chunks of {@link prefillChunkOf} it. */
  readonly maxBatchTokens: number;
  /** What the running backend returns besides logits (argmax, hidden rows): the scheduler asks by it. */
  readonly capabilities: Pick<BackendCapabilities, "outputs" | "hiddenRows">;
  /** Backends given `backendOptions` that are not the one running (their options did not apply). */
  readonly unusedBackendOptions?: readonly string[];
  readonly loadMs: number;
  /** What the backend said it would allocate (`Backend.estimateMemory`), when it can tell. */
  readonly memoryEstimate?: MemoryEstimate;
  /** The factory that created the running backend; absent when a Backend object was passed. */
  readonly backendFactory?: BackendFactory;
  /** Speculative decoding (loadModel's `speculative`): the drafter and its cost model, already calibrated. */
  readonly speculation?: Speculation;
  /** The prefix cache (loadModel's `prefixCache`): shortest prefix worth reusing; absent: off. */
  readonly prefixCache?: { readonly minTokens: number };
  /** The model's output norm weights (the RMSNorm before the LM head), which {@link Engine.embed} applies to hidden states. */
  readonly outputNorm?: Float32Array;
  /** Called by dispose (closes the model file). */
  readonly close: () => void;
}

/**
 * What the KV cache holds now ({@link EngineStats.kv}): slots taken by running generations and by
 * sessions (an idle session keeps its slot and its cached positions), and the positions filled.
 *
 * @example
 * ```ts
 * const { kv } = engine.stats();
 * console.log(`${kv.slotsInUse}/${kv.maxSequences} slots, ${((100 * kv.positionsInUse) / kv.positionsCapacity).toFixed(1)}% of KV`);
 * ```
 */
export interface KvUsage {
  /** KV slots held now: running generations plus every live {@link Session}. */
  readonly slotsInUse: number;
  /** Slots the backend holds at most ({@link Engine.maxSequences}). */
  readonly maxSequences: number;
  /** KV positions filled across the slots in use (the sum of their sequence lengths). */
  readonly positionsInUse: number;
  /** `maxSequences × contextLength`. */
  readonly positionsCapacity: number;
  /** Bytes of one KV position (every layer, keys and values), when the backend estimates its memory. */
  readonly bytesPerPosition?: number;
  /** `positionsInUse × bytesPerPosition`, when that is known. */
  readonly bytesInUse?: number;
  /** `positionsCapacity × bytesPerPosition`, when that is known. */
  readonly bytesCapacity?: number;
}

/** Live counters of an engine (for servers and `/stats`). */
export interface EngineStats extends SchedulerStats {
  /** Tokens generated since load. */
  readonly generatedTokens: number;
  /** Prompt tokens processed since load. */
  readonly promptTokens: number;
  /** KV cache occupancy. */
  readonly kv: KvUsage;
  /** Speculative decoding since load, when the model was loaded with a drafter. */
  readonly speculative?: SpeculativeEngineStats;
  /** The prefix cache, when it is on (loadModel's `prefixCache`, the default): kept sequences, hits, reused tokens. */
  readonly prefixCache?: PrefixCacheStats;
}

/**
 * Most prompt rows one sequence adds to a step, given the rows per step (`preferred`, the backend's
 * `preferredBatchTokens`): up to 512 rows per step a prompt takes at most 256 of them (the engine's
 * chunk before contract 2; a small batch is never halved), above 512 half of the step, so a long
 * prompt never holds back the sequences decoding beside it.
 *
 * @example
 * ```ts
 * prefillChunkOf(64); // 64
 * prefillChunkOf(512); // 256
 * prefillChunkOf(2048); // 1024
 * ```
 */
export function prefillChunkOf(preferred: number): number {
  return preferred <= 512 ? Math.min(preferred, 256) : Math.floor(preferred / 2);
}

/** Default `maxTokens` of a generation. */
export const DEFAULT_MAX_TOKENS = 256;

/**
 * A loaded model ready to generate. Create one with {@link loadModel}. Many generations may run
 * at once: they share the backend through one scheduler that steps every live sequence together.
 *
 * @example
 * ```ts
 * await using engine = await loadModel("model.halo");
 * for await (const event of engine.chat([{ role: "user", content: "Hi!" }], { maxTokens: 64 })) {
 *   if (event.type === "token-delta") process.stdout.write(event.text);
 * }
 * ```
 */
export class Engine {
  /** Architecture config of the loaded weights. */
  readonly config: WeightsConfig;
  /** The tokenizer, or null when the model file carries none (token-id prompts still work). */
  readonly tokenizer: Tokenizer | null;
  /** Name of the backend running the model (`reference`, `cpu`, …). */
  readonly backend: string;
  /**
   * Backends `loadModel` tried before {@link backend} and why each could not run the model (not installed, the
   * native addon failed to load, unsupported architecture…), each reason ending with its fix. Empty when the first
   * choice runs. Apps should show it: running on `reference` because `cpu` failed to load is orders of magnitude slower.
   *
   * @example
   * ```ts
   * for (const { name, reason } of engine.skippedBackends) console.warn(`${name} backend not used: ${reason}`);
   * ```
   */
  readonly skippedBackends: readonly SkippedBackend[];
  /** The path the model was loaded from. */
  readonly source: string;
  /** Milliseconds `loadModel` took. */
  readonly loadMs: number;
  /** Context length (KV positions per sequence). */
  readonly contextLength: number;
  /** KV cache dtype in use. */
  readonly kvDtype: string;
  /**
   * Sequences the backend holds at once (KV slots): generations beyond it queue, and each
   * {@link Session} holds one. A server's parallel request limit should equal it.
   */
  readonly maxSequences: number;
  /**
   * The chat template {@link chat}, {@link renderChat} and sessions use when a call names none, and
   * where it came from: `loadModel`'s `chatTemplate` option (origin `option`), the model file's own
   * (`file`), or inferred from the architecture and vocabulary (`inferred`; `plain` when nothing
   * better is known), so every model with a tokenizer can chat.
   *
   * @example
   * ```ts
   * const engine = await loadModel("tiny.h1b");
   * console.log(`${engine.chatTemplate.name} (${engine.chatTemplate.reason})`);
   * // "bitnet (inferred: BitNet architecture with Llama-3 vocabulary)"
   * ```
   */
  readonly chatTemplate: ChatTemplateChoice;
  /**
   * What the running backend estimated it allocates for this model and these options
   * (`Backend.estimateMemory`: weights, KV, scratch, bytes read per decode step), or null when
   * the backend cannot tell. `halo bench` builds its roofline from `decodeReadBytes`.
   *
   * @example
   * ```ts
   * const e = engine.memoryEstimate;
   * if (e !== null) console.log(`${(e.totalBytes / 2 ** 30).toFixed(2)} GiB`);
   * ```
   */
  readonly memoryEstimate: MemoryEstimate | null;
  /**
   * The factory that created the running backend (discovered or passed in), or null when
   * `loadModel` was given a Backend object; e.g. `measureReadBandwidth` for a roofline.
   *
   * @example
   * ```ts
   * const gbps = await engine.backendFactory?.measureReadBandwidth?.();
   * ```
   */
  readonly backendFactory: BackendFactory | null;
  /**
   * The backends `loadModel` was given options for (`backendOptions`) that do not run this model,
   * so their options did not apply — e.g. `["cpu"]` after `backend: "reference", backendOptions: { cpu: { threads: 8 } }`,
   * or after "auto" fell back from cpu. Every option was still checked by its backend. Apps should say it.
   *
   * @example
   * ```ts
   * for (const name of engine.unusedBackendOptions) console.warn(`backendOptions.${name} not used: ${engine.backend} runs the model`);
   * ```
   */
  readonly unusedBackendOptions: readonly string[];
  /**
   * The drafter speculative decoding uses (loadModel's `speculative`), or null when the model
   * decodes one token per step. Every request drafts through it unless it passes `speculative: false`.
   *
   * @example
   * ```ts
   * if (engine.speculative) console.log(`speculative decoding: ${engine.speculative.label}`);
   * ```
   */
  readonly speculative: { readonly drafter: DrafterKind; readonly label: string } | null;

  private readonly model: LoadedModel;
  /** Slots held by live sessions (outside the scheduler between turns). */
  private readonly sessionSlots = new Set<number>();
  private readonly scheduler: Scheduler;
  private readonly parts: EngineParts;
  private disposed = false;
  private generatedTokens = 0;
  private promptTokens = 0;

  /** Whether {@link embed} works here: the backend returns hidden rows and the model's output norm was kept. */
  readonly canEmbed: boolean;

  /** @internal Use {@link loadModel}. */
  constructor(parts: EngineParts) {
    this.parts = parts;
    this.model = parts.model;
    this.config = parts.model.config;
    this.tokenizer = parts.tokenizer;
    this.backend = parts.backendName;
    this.skippedBackends = parts.skippedBackends ?? [];
    this.source = parts.source;
    this.loadMs = parts.loadMs;
    this.contextLength = parts.model.options.contextLength;
    this.kvDtype = parts.model.options.kvDtype;
    this.maxSequences = parts.model.options.maxSequences;
    this.chatTemplate = parts.chatTemplate;
    this.memoryEstimate = parts.memoryEstimate ?? null;
    this.backendFactory = parts.backendFactory ?? null;
    this.unusedBackendOptions = parts.unusedBackendOptions ?? [];
    this.canEmbed = parts.capabilities.hiddenRows && parts.outputNorm !== undefined;
    const speculation = parts.speculation;
    this.speculative = speculation === undefined ? null : { drafter: speculation.drafter.kind, label: speculation.drafter.label };
    this.scheduler = new Scheduler(parts.model, {
      maxBatchTokens: parts.maxBatchTokens,
      prefillChunk: Math.max(1, prefillChunkOf(parts.maxBatchTokens)),
      capabilities: parts.capabilities,
      ...(speculation !== undefined ? { onStepTimed: (rows: number, outputs: number, ms: number) => speculation.observeStep(rows, outputs, ms) } : {}),
      ...(parts.prefixCache !== undefined ? { prefixCache: parts.prefixCache } : {}),
    });
  }

  /**
   * Live counters: sequences running and queued, steps and rows run, tokens since load, and what
   * the KV cache holds ({@link KvUsage}).
   *
   * @example
   * ```ts
   * const { activeSequences, queuedSequences, kv } = engine.stats();
   * ```
   */
  stats(): EngineStats {
    const speculative = this.parts.speculation?.stats();
    return {
      ...this.scheduler.stats(),
      generatedTokens: this.generatedTokens,
      promptTokens: this.promptTokens,
      kv: this.kvUsage(),
      ...(speculative !== undefined ? { speculative } : {}),
      ...(this.parts.prefixCache !== undefined ? { prefixCache: this.scheduler.prefixCacheStats() } : {}),
    };
  }

  private kvUsage(): KvUsage {
    const slots = new Set<number>([...this.scheduler.ownedSlots(), ...this.sessionSlots]);
    let positionsInUse = 0;
    if (!this.disposed) for (const slot of slots) positionsInUse += this.model.sequenceLength(slot);
    const positionsCapacity = this.maxSequences * this.contextLength;
    const bytesPerPosition = this.memoryEstimate?.kvBytesPerPosition;
    return {
      slotsInUse: this.disposed ? 0 : slots.size,
      maxSequences: this.maxSequences,
      positionsInUse,
      positionsCapacity,
      ...(bytesPerPosition !== undefined
        ? { bytesPerPosition, bytesInUse: positionsInUse * bytesPerPosition, bytesCapacity: positionsCapacity * bytesPerPosition }
        : {}),
    };
  }

  /**
   * Text → token ids. Adds BOS per the tokenizer unless `addSpecialTokens: false`; special-token
   * strings in the text stay plain text unless `allowSpecial`.
   */
  tokenize(text: string, options: { addSpecialTokens?: boolean; allowSpecial?: boolean } = {}): number[] {
    return this.requireTokenizer().encode(text, options);
  }

  /** Token ids → text. Throws `ENGINE_TOKEN_OUT_OF_RANGE`-class tokenizer errors for unknown ids. */
  detokenize(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.requireTokenizer().decode(ids, options);
  }

  /**
   * Renders messages with {@link chatTemplate} (or `template`: a built-in name or Jinja source) to
   * the prompt text, the generation prompt appended; `templateVariables` reach the template as in
   * {@link ChatOptions.templateVariables}.
   */
  renderChat(messages: readonly ChatMessage[], template?: string, templateVariables?: Readonly<Record<string, unknown>>): string {
    const tokenizer = this.requireTokenizer();
    return tokenizer.applyChatTemplate(messages, this.chatTemplateOptions(template, templateVariables));
  }

  /**
   * Streams a generation. The iterable yields `request-start`, then `token-delta` per token, then
   * `request-end` with the finish reason, usage and timings. Breaking out of the loop or aborting
   * the signal frees the sequence at the next step.
   *
   * @example
   * ```ts
   * for await (const e of engine.generate({ prompt: "Once upon a time", maxTokens: 32, temperature: 0 })) {
   *   if (e.type === "token-delta") process.stdout.write(e.text);
   *   if (e.type === "request-end") console.log(`\n${e.finishReason}, ${e.timings.decodeTokensPerSecond} tok/s`);
   * }
   * ```
   */
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    this.checkAlive();
    checkGenerateOptions(request, GENERATE_REQUEST_KEYS);
    const prompt = typeof request.prompt === "string" ? this.tokenize(request.prompt) : [...request.prompt];
    return this.run(prompt, request);
  }

  /** {@link generate} with a text prompt. */
  complete(prompt: string, options: GenerateOptions = {}): AsyncIterable<GenerateEvent> {
    checkGenerateOptions(options, GENERATE_OPTION_KEYS, "complete");
    return this.generate({ ...options, prompt });
  }

  /**
   * {@link generate} on messages rendered with the chat template (generation prompt appended).
   * A conversation that does not fit the context window with room for the answer is shortened
   * by `options.contextShift` (default: drop the oldest turns, keep the system prompt and the
   * newest user message; see {@link fitChatToContext}); `request-start` says how many messages
   * were dropped, and `request-end.contextFull` says when the answer was cut by the context.
   *
   * @example
   * ```ts
   * for await (const e of engine.chat(history, { maxTokens: 128 })) {
   *   if (e.type === "request-start" && e.droppedMessages > 0) console.warn(`dropped ${e.droppedMessages} old messages`);
   *   if (e.type === "token-delta") process.stdout.write(e.text);
   * }
   * ```
   */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncIterable<GenerateEvent> {
    this.checkAlive();
    checkGenerateOptions(options, CHAT_OPTION_KEYS, "chat");
    const tokenizer = this.requireTokenizer();
    const templateOptions = this.chatTemplateOptions(options.template, options.templateVariables);
    const fit = this.fitChat(messages, options, templateOptions.template!, (kept) => tokenizer.encodeChat(kept, templateOptions));
    return this.run(fit.ids, this.withTemplateStops(options, templateOptions.template!), undefined, fit.droppedMessages);
  }

  /**
   * The prompt ids {@link chat} would run for `messages` (before any context shift): rendered with
   * `options.template` or the engine's chat template and its variables, BOS added per the tokenizer.
   *
   * @example
   * ```ts
   * const ids = engine.encodeChat([{ role: "user", content: "Hi" }]);
   * ```
   */
  encodeChat(messages: readonly ChatMessage[], options: Pick<ChatOptions, "template" | "templateVariables"> = {}): number[] {
    return this.encodeRenderedChat(this.renderChat(messages, options.template, options.templateVariables));
  }

  /**
   * The prompt ids of an already-rendered chat text ({@link renderChat}'s output), encoded exactly as
   * {@link encodeChat} encodes it (`encodeChat` is `renderChat` then this): special-token text
   * recognised, BOS added per the tokenizer when the template did not render it. With `encode`
   * (an async tokenizer of the text with the options it is given, e.g. one that yields between
   * slices), the text is tokenized by it and the same BOS step follows.
   *
   * @example
   * ```ts
   * const text = engine.renderChat([{ role: "user", content: "Hi" }]);
   * const ids = engine.encodeRenderedChat(text); // = engine.encodeChat([{ role: "user", content: "Hi" }])
   * ```
   */
  encodeRenderedChat(text: string): number[];
  encodeRenderedChat(text: string, encode: (text: string, options: EncodeOptions) => Promise<number[]>): Promise<number[]>;
  encodeRenderedChat(text: string, encode?: (text: string, options: EncodeOptions) => Promise<number[]>): number[] | Promise<number[]> {
    const tokenizer = this.requireTokenizer();
    if (encode === undefined) return tokenizer.addChatBos(tokenizer.encode(text, CHAT_ENCODE_OPTIONS));
    return encode(text, CHAT_ENCODE_OPTIONS).then((ids) => tokenizer.addChatBos([...ids]));
  }

  /**
   * Perplexity of a text with the seed's method: the text is tokenized (BOS first), cut into
   * independent windows of `contextLength` tokens advancing by `stride` (default: no overlap);
   * each window runs from position 0 and scores every token after its first, except tokens an
   * earlier window already scored. PPL = exp(mean NLL).
   */
  async perplexity(text: string | readonly number[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
    this.checkAlive();
    const ids = typeof text === "string" ? this.tokenize(text) : [...text];
    return perplexityOf(ids, options, this.contextLength, this.config.vocabSize, (task) => this.scheduler.submit(task));
  }

  /**
   * Runs token ids as one sequence from position 0 and hands the logits of every position to
   * `onRows`, in order, a chunk at a time (`rows` rows of `vocabSize` floats; the array is the
   * callee's to keep). Resolves when every chunk was handled.
   *
   * @example
   * ```ts
   * const chunks: Float32Array[] = [];
   * await engine.evaluate([128000, 9906], (logits) => { chunks.push(logits); });
   * ```
   */
  async evaluate(ids: readonly number[], onRows: (logits: Float32Array, rows: number) => void | Promise<void>): Promise<void> {
    this.checkAlive();
    const vocab = this.config.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new HaloError(EngineErrorCode.ENGINE_TOKEN_OUT_OF_RANGE, "token id out of range", {
          field: "tokens",
          expected: `integers in [0, ${vocab})`,
          actual: id,
        });
      }
    }
    if (ids.length === 0 || ids.length > this.contextLength) {
      throw new HaloError(EngineErrorCode.ENGINE_CONTEXT_OVERFLOW, "the token list does not fit the context window", {
        field: "tokens",
        expected: `1 to ${this.contextLength} tokens`,
        actual: ids.length,
      });
    }
    let chain: Promise<void> = Promise.resolve();
    await new Promise<void>((resolve, reject) => {
      this.scheduler.submit({
        prompt: [...ids],
        cancelled: false,
        plan: (pending, maxRows) => planEveryRow(pending.length, maxRows),
        onStep: ({ logits, positions }) => {
          const rows = positions.length;
          const copy = logits!.slice(0, rows * vocab);
          chain = chain.then(() => onRows(copy, rows));
          return { append: [] };
        },
        onEnd: (error) => (error !== null && error !== undefined ? reject(error) : resolve()),
      });
    });
    await chain;
  }

  /**
   * Embeddings of texts (tokenized with BOS, as {@link tokenize}) or token lists: each input runs as its own sequence from
   * position 0 through the scheduler (batched with running generations), every position's final hidden state is
   * RMS-normed with the model's output norm, the rows are averaged (mean pooling) and the mean scaled to unit length
   * (`normalize: false` keeps it). Needs a backend that returns hidden rows (`capabilities().hiddenRows`: reference,
   * cpu); an input longer than the context is refused unless `truncate` keeps its first tokens.
   *
   * @example
   * ```ts
   * const { embeddings } = await engine.embed(["ternary weights", "a cat on a mat"]);
   * const cosine = embeddings[0]!.reduce((sum, v, i) => sum + v * embeddings[1]![i]!, 0);
   * ```
   */
  async embed(inputs: readonly (string | readonly number[])[], options: EmbedOptions = {}): Promise<EmbedResult> {
    this.checkAlive();
    const outputNorm = this.parts.outputNorm;
    if (outputNorm === undefined) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "this engine was built without the model's output norm, which embeddings apply", {
        field: "outputNorm",
        expected: "an engine from loadModel (it keeps the output norm)",
        actual: "EngineParts without outputNorm",
        hint: "Load the model with loadModel, which keeps it",
      });
    }
    const ids = inputs.map((input) => (typeof input === "string" ? this.tokenize(input) : [...input]));
    return embedOf(ids, options, {
      hiddenSize: this.config.hiddenSize,
      contextLength: this.contextLength,
      vocabSize: this.config.vocabSize,
      outputNorm,
      eps: this.config.rmsNormEps,
      hiddenRows: this.parts.capabilities.hiddenRows,
      submit: (task) => this.scheduler.submit(task),
    });
  }

  /** Frees the backend's weights and KV; running generations end with an error. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.scheduler.cancelAll(new HaloError(EngineErrorCode.ENGINE_DISPOSED, "the engine was disposed during the request"));
    this.parts.speculation?.dispose();
    this.model.dispose();
    this.parts.close();
  }

  /** `await using engine = await loadModel(...)` support. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  /**
   * @internal The tokenizer options that render a chat: `template` or the engine's, and the
   * checked `variables` merged over `defaults` (a session's, checked when it was created).
   */
  chatTemplateOptions(
    template: string | undefined,
    variables: Readonly<Record<string, unknown>> | undefined,
    defaults?: Readonly<Record<string, unknown>>,
  ): ChatTemplateOptions {
    if (variables !== undefined) checkTemplateVariables(variables);
    const merged = defaults === undefined ? variables : { ...defaults, ...variables };
    return { template: template ?? this.chatTemplate.source, ...(merged !== undefined ? { variables: merged } : {}) };
  }

  private checkAlive(): void {
    if (this.disposed) {
      throw new HaloError(EngineErrorCode.ENGINE_DISPOSED, "the engine was used after dispose()", {
        hint: "Load the model again with loadModel()",
      });
    }
  }

  private requireTokenizer(): Tokenizer {
    this.checkAlive();
    if (this.tokenizer === null) {
      throw new HaloError(EngineErrorCode.ENGINE_NO_TOKENIZER, "this model has no tokenizer", {
        path: this.source,
        hint: "Pass `tokenizer: <tokenizer.json or .htok>` to loadModel, or give prompts as token ids",
      });
    }
    return this.tokenizer;
  }

  /** @internal Sessions run through here with their own slot. */
  runInSlot(prompt: number[], options: GenerateOptions, slot: SlotContinuation, droppedMessages = 0): AsyncIterable<GenerateEvent> {
    return this.run(prompt, options, slot, droppedMessages);
  }

  /** @internal Applies the request's context policy to a chat rendered with `templateSource` (sessions call it with their own template). */
  fitChat(messages: readonly ChatMessage[], options: ChatOptions, templateSource: string, encode: (messages: readonly ChatMessage[]) => number[]): ContextFit {
    return fitChatToContext(messages, {
      contextLength: this.contextLength,
      maxTokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
      policy: options.contextShift,
      encode,
      oneTokenPerMessage: rendersEveryMessage(templateSource),
    });
  }

  /**
   * @internal `options` with the stop strings a chat rendered with `templateSource` needs
   * ({@link ChatTemplateChoice.stopStrings}) added to the caller's `stop`.
   */
  withTemplateStops<T extends GenerateOptions>(options: T, templateSource: string): T {
    const extra = templateSource === this.chatTemplate.source ? this.chatTemplate.stopStrings : templateStopStrings(templateSource, this.tokenizer);
    if (extra.length === 0) return options;
    const stop = [...(options.stop ?? [])];
    for (const text of extra) if (!stop.includes(text)) stop.push(text);
    return { ...options, stop };
  }

  /** @internal A session takes a slot of its own (counted in {@link stats}). */
  allocateSessionSlot(): number {
    this.checkAlive();
    // A slot kept by the prefix cache is freed for it when none is free.
    const slot = this.scheduler.allocateSlot();
    this.sessionSlots.add(slot);
    return slot;
  }

  /** @internal A session released its slot: queued requests may start. */
  freeSessionSlot(slot: number): void {
    if (!this.sessionSlots.delete(slot) || this.disposed) return;
    this.model.freeSequence(slot);
    this.scheduler.wake();
  }

  /** @internal */
  get loadedModel(): LoadedModel {
    this.checkAlive();
    return this.model;
  }

  /**
   * A conversation that keeps its KV cache between turns: each turn re-renders the whole chat,
   * reuses the cached prefix that still matches, and runs only the new tokens. Holds one KV slot
   * until `dispose()`.
   *
   * @example
   * ```ts
   * const session = engine.createSession({ system: "You are terse." });
   * for await (const e of session.chat("Hi!")) if (e.type === "token-delta") process.stdout.write(e.text);
   * for await (const e of session.chat("And again?")) if (e.type === "token-delta") process.stdout.write(e.text);
   * session.dispose();
   * ```
   */
  createSession(options: SessionOptions = {}): Session {
    this.checkAlive();
    return new Session(this, options);
  }

  /** Throws unless `prompt` is a non-empty list of token ids that fits after `start` cached positions with room for one token. */
  private checkPrompt(prompt: readonly number[], start: number): void {
    const vocab = this.config.vocabSize;
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new HaloError(EngineErrorCode.ENGINE_TOKEN_OUT_OF_RANGE, "prompt token id out of range", {
          field: "prompt",
          expected: `integers in [0, ${vocab})`,
          actual: id,
        });
      }
    }
    if (prompt.length === 0) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "the prompt is empty", {
        field: "prompt",
        expected: "at least one token",
        hint: "Give some text, or a BOS token id",
      });
    }
    if (start + prompt.length >= this.contextLength) {
      throw new HaloError(EngineErrorCode.ENGINE_CONTEXT_OVERFLOW, "the prompt does not fit in the context window", {
        field: "prompt",
        expected: `fewer than ${this.contextLength} tokens (room for at least one new token)`,
        actual: `${start + prompt.length} tokens${start > 0 ? ` (${start} already in the session)` : ""}`,
        hint: "Shorten the prompt or load the model with a larger contextLength",
      });
    }
  }

  /**
   * One generation: a {@link SamplingStep} picks each token, a {@link TokenEmitter} turns tokens into
   * events and says when to stop, and the scheduler task below feeds the prompt, then each token.
   */
  private run(prompt: number[], options: GenerateOptions, continuation?: SlotContinuation, droppedMessages = 0): AsyncIterable<GenerateEvent> {
    const start = continuation?.length ?? 0;
    this.checkPrompt(prompt, start);
    const vocab = this.config.vocabSize;
    const sampling = new SamplingStep(samplerOptionsOf(options), vocab, prompt);
    const stopTokenIds = new Set<number>(options.stopTokenIds ?? []);
    if (options.ignoreEos !== true) {
      for (const id of this.parts.eosTokenIds) stopTokenIds.add(id);
      for (const id of this.tokenizer?.stopTokenIds ?? []) stopTokenIds.add(id);
    }
    const emitter = new TokenEmitter({
      tokenizer: this.tokenizer,
      stopStrings: options.stop ?? [],
      stopTokenIds,
      maxTokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
      contextLength: this.contextLength,
      promptTokens: prompt.length,
      cachedTokens: start,
      droppedMessages,
    });
    const base: Pick<SequenceTask, "cancelled" | "onStart" | "onEnd" | "slot" | "reusePrefix" | "onPrefixReused"> = {
      cancelled: false,
      ...(continuation !== undefined ? { slot: { id: continuation.slot, length: continuation.length } } : {}),
      // A session's turn continues its own slot; any other generation may start from the prefix cache.
      reusePrefix: continuation === undefined && options.cachePrompt !== false,
      onPrefixReused: (tokens) => emitter.prefixReused(tokens),
      onStart: () => emitter.stepStarted(),
      onEnd: (error) => {
        continuation?.onEnd(emitter.generated, error);
        options.signal?.removeEventListener("abort", abort);
        emitter.end(error, task.cancelled);
      },
    };
    const speculation = this.parts.speculation;
    const request = options.speculative ?? true;
    if (options.speculative !== undefined && options.speculative !== false && speculation === undefined) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "this request asks for speculative decoding but the model was loaded without a drafter", {
        field: "speculative",
        expected: "false or absent, or a model loaded with loadModel's speculative option",
        actual: JSON.stringify(request),
        hint: 'Load the model with speculative: { drafter: "ngram" } (halo: --speculative ngram), or leave the request\'s speculative out',
      });
    }
    const task: SequenceTask =
      speculation !== undefined && request !== false
        ? this.speculativeTaskFor(speculation, request, prompt, continuation?.prefix ?? [], sampling, emitter, options, base)
        : this.plainTask(prompt, sampling, emitter, base);
    // A task still queued for a slot ends now (not when a slot frees); a running one at the next step.
    const abort = (): void => {
      // A speculative step emits several tokens at once: an abort withdraws, at once, those the consumer has not taken.
      emitter.retractUndelivered();
      this.scheduler.cancel(task);
    };
    if (continuation !== undefined) continuation.cancel = abort;
    if (options.signal?.aborted === true) task.cancelled = true;
    options.signal?.addEventListener("abort", abort, { once: true });
    emitter.events.onCancel = abort;
    emitter.start();
    this.promptTokens += prompt.length;
    this.scheduler.submit(task);
    return emitter.events;
  }

  /** The scheduler glue of plain decoding: feed the prompt, then each sampled token; the last row's output is sampled. */
  private plainTask(
    prompt: number[],
    sampling: SamplingStep,
    emitter: TokenEmitter,
    base: Pick<SequenceTask, "cancelled" | "onStart" | "onEnd" | "slot">,
  ): SequenceTask {
    return {
      ...base,
      prompt,
      plan: (pending, maxRows) => planLastRow(pending.length, maxRows, sampling.output),
      onStep: (outputs) => {
        emitter.outputsArrived();
        if (!emitter.wantsTokens) return null;
        const last = outputs.positions.length - 1;
        const sample = sampling.next(outputs, last);
        this.generatedTokens++;
        return emitter.accept(sample, outputs.positions[last]!) ? { append: [sample.token] } : null;
      },
    };
  }

  /** The scheduler glue of speculative decoding (see {@link speculativeTask}); its counters reach the end event. */
  private speculativeTaskFor(
    speculation: Speculation,
    request: Exclude<SpeculativeRequestOptions, false>,
    prompt: number[],
    prefix: readonly number[],
    sampling: SamplingStep,
    emitter: TokenEmitter,
    options: GenerateOptions,
    base: Pick<SequenceTask, "cancelled" | "onStart" | "onEnd" | "slot">,
  ): SequenceTask {
    const task = speculativeTask(
      {
        speculation,
        request,
        prompt,
        prefix,
        sampling,
        emitter,
        contextLength: this.contextLength,
        maxTokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
        vocabSize: this.config.vocabSize,
        hiddenSize: this.config.hiddenSize,
        otherSequences: () => Math.max(0, this.scheduler.stats().activeSequences - 1),
        countToken: () => {
          this.generatedTokens++;
        },
      },
      base,
    );
    emitter.speculative = task.counts;
    emitter.retractOnCancel = true;
    return task;
  }
}
