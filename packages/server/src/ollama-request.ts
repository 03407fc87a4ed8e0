// Validates Ollama's /api/chat and /api/generate bodies into the same typed requests the OpenAI routes build.
import type { ChatMessage, GenerateOptions } from "@halo/engine";
import { badField, booleanField, checkKnownFields, numberField, objectField, stopField, stringField, unsupported, type JsonObject } from "./request-fields.js";
import { samplerFields, type ParsedChatRequest, type ParsedCompletionRequest } from "./parse-request.js";

/** Fields of an Ollama request this server accepts and does not act on (named in `x-halo-ignored-fields`). */
const OLLAMA_IGNORED_FIELDS: ReadonlySet<string> = new Set(["keep_alive", "truncate", "dimensions"]);
const CHAT_FIELDS: ReadonlySet<string> = new Set(["model", "messages", "stream", "format", "options", "tools", "think", "logprobs", "top_logprobs"]);
const GENERATE_FIELDS: ReadonlySet<string> = new Set([
  "model",
  "prompt",
  "suffix",
  "system",
  "template",
  "context",
  "stream",
  "raw",
  "format",
  "images",
  "options",
  "think",
  "logprobs",
  "top_logprobs",
]);
const MESSAGE_FIELDS: ReadonlySet<string> = new Set(["role", "content", "images", "tool_calls", "thinking", "tool_name"]);
const ROLES: ReadonlySet<string> = new Set(["system", "user", "assistant", "tool"]);

/**
 * Ollama `options` that set how the model runs on Ollama's own runtime (threads, GPU layers, memory mapping, batch and
 * context sizes): the server's loaded model fixes these, so they are accepted and named in `x-halo-ignored-fields`.
 */
const RUNTIME_OPTIONS: ReadonlySet<string> = new Set([
  "numa",
  "num_ctx",
  "num_batch",
  "num_gpu",
  "main_gpu",
  "low_vram",
  "f16_kv",
  "logits_all",
  "vocab_only",
  "use_mmap",
  "use_mlock",
  "embedding_only",
  "num_thread",
  "num_keep",
  "penalize_newline",
]);
/** Sampler options of Ollama this server's sampler has no equivalent of, with the value that leaves sampling unchanged. */
const NEUTRAL_SAMPLER_OPTIONS: Readonly<Record<string, number>> = { typical_p: 1, tfs_z: 1, mirostat: 0, mirostat_tau: 5, mirostat_eta: 0.1 };
const SAMPLER_OPTIONS: ReadonlySet<string> = new Set([
  "seed",
  "num_predict",
  "top_k",
  "top_p",
  "min_p",
  "temperature",
  "repeat_penalty",
  "repeat_last_n",
  "presence_penalty",
  "frequency_penalty",
  "stop",
  ...Object.keys(NEUTRAL_SAMPLER_OPTIONS),
]);

/** What both Ollama generation routes add to the typed request. */
export interface OllamaExtras {
  /** No messages, or an empty prompt: Ollama's "load the model" request, answered at once with `done_reason: "load"`. */
  readonly load: boolean;
}

/** A validated `/api/chat` body. */
export type OllamaChatRequest = ParsedChatRequest & OllamaExtras;
/** A validated `/api/generate` body: a chat turn rendered with the model's template, or (`raw`) the prompt as is. */
export type OllamaGenerateRequest = (ParsedChatRequest | ParsedCompletionRequest) & OllamaExtras;

function refuseStructured(body: JsonObject): void {
  const format = body["format"];
  if (format !== undefined && format !== null && format !== "") {
    throw unsupported(
      "format",
      "structured output (format: json or a JSON schema) is not built yet",
      format,
      "Leave format out and ask for JSON in the prompt",
    );
  }
  const tools = body["tools"];
  if (Array.isArray(tools) && tools.length > 0) throw unsupported("tools", "tool calling", "a tool list");
  const think = body["think"];
  if (think !== undefined && think !== null && think !== false)
    throw unsupported("think", "thinking (this model has no thinking mode)", think, "Leave think out or false");
  if (booleanField(body, "logprobs") === true) throw unsupported("logprobs", "log probabilities on /api routes (use /v1/chat/completions)", true);
}

/**
 * Ollama's `options` as engine options and a token limit. `num_predict` -1 (unlimited) and -2 (fill the context) run until
 * the context is full; absent, the server's default limit applies. Runtime options are ignored (the loaded model fixes
 * them) and sampler options this server lacks are refused unless they hold their neutral value.
 */
function ollamaOptions(body: JsonObject, contextLength: number, ignored: string[]): { options: GenerateOptions; maxTokens: number | undefined } {
  const raw = objectField(body, "options");
  const options: Record<string, unknown> = {};
  if (raw === undefined) return { options: options as GenerateOptions, maxTokens: undefined };
  for (const key of Object.keys(raw)) {
    if (raw[key] === null || raw[key] === undefined) continue;
    if (RUNTIME_OPTIONS.has(key)) ignored.push(`options.${key}`);
    else if (!SAMPLER_OPTIONS.has(key)) throw badField(`options.${key}`, `an Ollama option this server knows (${[...SAMPLER_OPTIONS].join(", ")})`, raw[key]);
  }
  for (const [key, neutral] of Object.entries(NEUTRAL_SAMPLER_OPTIONS)) {
    const value = numberField(raw, key, {}, `options.${key}`);
    if (value !== undefined && value !== neutral) {
      throw unsupported(
        `options.${key}`,
        `${key} sampling (this server's sampler has temperature, top_k, top_p, min_p and penalties)`,
        value,
        `Leave ${key} out`,
      );
    }
  }
  Object.assign(options, samplerFields(raw, { prefix: "options." }));
  const stop = stopField(raw, 16, "options.stop");
  if (stop !== undefined) options["stop"] = stop;
  const predict = numberField(raw, "num_predict", { integer: true, min: -2 }, "options.num_predict");
  if (predict === 0) throw badField("options.num_predict", "≥ 1, or -1 (no limit) or -2 (fill the context)", 0);
  const maxTokens = predict === undefined ? undefined : predict < 0 ? contextLength : predict;
  return { options: options as GenerateOptions, maxTokens };
}

function stream(body: JsonObject): boolean {
  // Ollama streams unless told not to.
  return booleanField(body, "stream") ?? true;
}

/**
 * Validates a `/api/chat` body (Ollama's shape: `stream` defaults to true, sampler settings under `options`). Unknown
 * fields are 400 naming the field; images, tools, `format` and thinking are refused (`SERVER_UNSUPPORTED`).
 *
 * @example
 * ```ts
 * const request = parseOllamaChat({ model: "tiny", messages: [{ role: "user", content: "Hi" }], options: { num_predict: 8 } }, 2048);
 * request.maxTokens; // 8
 * ```
 */
export function parseOllamaChat(body: JsonObject, contextLength: number): OllamaChatRequest {
  const ignored = checkKnownFields(body, CHAT_FIELDS, OLLAMA_IGNORED_FIELDS);
  refuseStructured(body);
  const raw = body["messages"] ?? [];
  if (!Array.isArray(raw)) throw badField("messages", "an array of messages", raw);
  const messages = raw.map((entry: unknown, i): ChatMessage => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw badField(`messages[${i}]`, "an object with role and content", entry);
    const message = entry as JsonObject;
    checkKnownFields(message, MESSAGE_FIELDS, new Set(), `messages[${i}].`);
    const role = message["role"];
    if (typeof role !== "string" || !ROLES.has(role)) throw badField(`messages[${i}].role`, `one of ${[...ROLES].join(", ")}`, role);
    const images = message["images"];
    if (Array.isArray(images) && images.length > 0) throw unsupported(`messages[${i}].images`, "images (this model reads text)", "images");
    const calls = message["tool_calls"];
    if (Array.isArray(calls) && calls.length > 0) throw unsupported(`messages[${i}].tool_calls`, "tool calling", "tool calls");
    const content = message["content"] ?? "";
    if (typeof content !== "string") throw badField(`messages[${i}].content`, "a string", content);
    return { role, content };
  });
  return { kind: "chat", messages, load: messages.length === 0, ...commonFields(body, contextLength, ignored) };
}

/** What both routes read the same way: `model`, `stream` (default true), `options`, and the ignored fields. */
function commonFields(body: JsonObject, contextLength: number, ignored: string[]): Omit<ParsedChatRequest, "kind" | "messages"> {
  const { options, maxTokens } = ollamaOptions(body, contextLength, ignored);
  return {
    model: stringField(body, "model"),
    n: 1,
    stream: stream(body),
    includeUsage: false,
    maxTokens,
    options,
    logprobs: false,
    topLogprobs: 0,
    user: undefined,
    ignoredFields: ignored,
  };
}

/**
 * Validates a `/api/generate` body. Without `raw` the prompt (and `system`) go through the model's chat template as one
 * user turn, as Ollama does; with `raw` the prompt is the model's text as is, and `context` (the ids an earlier answer
 * returned) is continued. A custom `template`, `suffix`, images and `context` without `raw` are refused.
 *
 * @example
 * ```ts
 * const request = parseOllamaGenerate({ model: "tiny", prompt: "Why is the sky blue?", stream: false }, 2048, (t) => [1, 2]);
 * request.kind; // "chat"
 * ```
 */
export function parseOllamaGenerate(body: JsonObject, contextLength: number, vocabSize: number, tokenize: (text: string) => number[]): OllamaGenerateRequest {
  const ignored = checkKnownFields(body, GENERATE_FIELDS, OLLAMA_IGNORED_FIELDS);
  refuseStructured(body);
  const prompt = stringField(body, "prompt") ?? "";
  const system = stringField(body, "system");
  const template = stringField(body, "template");
  if (template !== undefined && template.length > 0)
    throw unsupported(
      "template",
      "a request's own prompt template (the model's chat template is used)",
      template,
      "Leave template out, or send raw: true with the prompt already formatted",
    );
  const suffix = stringField(body, "suffix");
  if (suffix !== undefined && suffix.length > 0) throw unsupported("suffix", "insertion (suffix)", suffix);
  const images = body["images"];
  if (Array.isArray(images) && images.length > 0) throw unsupported("images", "images (this model reads text)", "images");
  const raw = booleanField(body, "raw") ?? false;
  const context = body["context"];
  let contextIds: number[] = [];
  if (context !== undefined && context !== null) {
    if (!Array.isArray(context) || !context.every((id) => typeof id === "number" && Number.isInteger(id) && id >= 0 && id < vocabSize))
      throw badField("context", `an array of token ids in [0, ${vocabSize})`, context);
    contextIds = context as number[];
    if (contextIds.length > 0 && !raw)
      throw unsupported(
        "context",
        "continuing a context through the chat template",
        "a context",
        "Send raw: true to continue the ids as they are, or use /api/chat",
      );
  }
  const common = { load: prompt.length === 0 && contextIds.length === 0, ...commonFields(body, contextLength, ignored) };
  if (raw) {
    const ids = contextIds.length > 0 ? [...contextIds, ...(prompt.length > 0 ? tokenize(prompt) : [])] : null;
    return { kind: "completion", prompt: ids ?? prompt, echo: false, ...common };
  }
  const messages: ChatMessage[] = [
    ...(system !== undefined && system.length > 0 ? [{ role: "system", content: system }] : []),
    { role: "user", content: prompt },
  ];
  return { kind: "chat", messages, ...common };
}
