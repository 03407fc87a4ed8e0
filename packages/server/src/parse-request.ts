// Validates /v1/chat/completions and /v1/completions bodies into typed requests with engine options.
import type { ChatMessage, GenerateOptions, SpeculativePolicy, SpeculativeRequestOptions } from "@halo/engine";
import {
  badField,
  booleanField,
  checkKnownFields,
  logitBiasField,
  numberField,
  objectField,
  stopField,
  stringField,
  unsupported,
  type JsonObject,
} from "./request-fields.js";

/** Fields shared by chat and text completions, mapped to engine options. */
export interface ParsedCommon {
  /** The `model` the client named, if any. */
  readonly model: string | undefined;
  readonly stream: boolean;
  /** `stream_options.include_usage`: send a final `choices: []` chunk with usage. */
  readonly includeUsage: boolean;
  /** Choices to generate (`n`, default 1): each samples on its own, the prompt's KV computed once and copied. */
  readonly n: number;
  /** `max_completion_tokens` or `max_tokens`, if given. */
  readonly maxTokens: number | undefined;
  /** Sampler options, `stop` and `ignoreEos`, camelCase, ready for the engine. */
  readonly options: GenerateOptions;
  /** Whether per-token logprobs go into the answer. */
  readonly logprobs: boolean;
  /** How many alternatives per token (0–20). */
  readonly topLogprobs: number;
  /** OpenAI's `user` (logged, not otherwise used). */
  readonly user: string | undefined;
  /** Fields present that this server accepts but does not act on ({@link IGNORED_FIELDS}), reported in `x-halo-ignored-fields`. */
  readonly ignoredFields: readonly string[];
}

/** The most choices (`n`) a request may ask for (OpenAI's bound). */
export const MAX_CHOICES = 128;

/** The engine's largest `maxTokens`, in request terms. */
const MAX_TOKENS_LIMIT = 1 << 24;

const COMMON_FIELDS = [
  "model",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "presence_penalty",
  "frequency_penalty",
  "repeat_penalty",
  "repeat_last_n",
  "logit_bias",
  "seed",
  "stop",
  "ignore_eos",
  "n",
  "tools",
  "functions",
  "tool_choice",
  "function_call",
  "response_format",
  "user",
  "speculative",
  "cache_prompt",
];

/** Fields of a chat body this server reads (acts on, or refuses values it cannot honour). */
export const CHAT_FIELDS: ReadonlySet<string> = new Set([...COMMON_FIELDS, "messages", "logprobs", "top_logprobs"]);
/** Fields of a text completion body this server reads. */
export const COMPLETION_FIELDS: ReadonlySet<string> = new Set([...COMMON_FIELDS, "prompt", "echo", "best_of", "suffix", "logprobs"]);
/**
 * Fields OpenAI clients send that change nothing about the generated text, which this server
 * accepts, does not act on, and names in the `x-halo-ignored-fields` answer header. Every other
 * unknown field is refused with 400 `unknown_field`.
 */
export const IGNORED_FIELDS: ReadonlySet<string> = new Set(["metadata", "store", "service_tier", "parallel_tool_calls"]);
const MESSAGE_FIELDS: ReadonlySet<string> = new Set(["role", "content", "tool_calls"]);
const IGNORED_MESSAGE_FIELDS: ReadonlySet<string> = new Set(["name", "tool_call_id"]);
const PART_FIELDS: ReadonlySet<string> = new Set(["type", "text"]);
const STREAM_OPTION_FIELDS: ReadonlySet<string> = new Set(["include_usage"]);
const SPECULATIVE_FIELDS: ReadonlySet<string> = new Set(["max_draft", "policy"]);
const SPECULATIVE_POLICIES: readonly SpeculativePolicy[] = ["auto", "always"];

/**
 * halo's `speculative` extension field: `false` decodes this request one token per step, `true`
 * (the default on a server with a drafter) drafts, `{ max_draft?, policy? }` drafts with a shorter
 * or longer draft or another policy. Absent or null: the server's own setting. The drafter itself is
 * chosen when the model loads (`halo serve --speculative …`); the upper bound of `max_draft` is the
 * engine's, checked when the request runs (400 `invalid_value` as well).
 *
 * @example
 * ```ts
 * speculativeField({ speculative: { max_draft: 2 } }); // { maxDraft: 2 }
 * speculativeField({ speculative: false }); // false
 * ```
 * @internal
 */
export function speculativeField(body: JsonObject): SpeculativeRequestOptions | undefined {
  const value = body["speculative"];
  if (value === undefined || value === null || typeof value === "boolean") return value ?? undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw badField("speculative", "true, false or an object { max_draft?, policy? }", value);
  const object = value as JsonObject;
  checkKnownFields(object, SPECULATIVE_FIELDS, new Set(), "speculative.");
  const maxDraft = object["max_draft"] ?? undefined;
  if (maxDraft !== undefined && (typeof maxDraft !== "number" || !Number.isSafeInteger(maxDraft) || maxDraft < 1)) {
    throw badField("speculative.max_draft", "an integer ≥ 1 (tokens drafted per step at most)", maxDraft);
  }
  const policy = object["policy"] ?? undefined;
  if (policy !== undefined && !(SPECULATIVE_POLICIES as readonly unknown[]).includes(policy)) {
    throw badField("speculative.policy", `one of ${SPECULATIVE_POLICIES.join(", ")}`, policy);
  }
  return { ...(maxDraft !== undefined ? { maxDraft: maxDraft as number } : {}), ...(policy !== undefined ? { policy: policy as SpeculativePolicy } : {}) };
}

/** The most bytes of field names the `x-halo-ignored-fields` answer header carries (HTTP clients cap header sizes: undici at 16 KiB in all). */
export const IGNORED_FIELDS_HEADER_BYTES = 1024;

/**
 * The `x-halo-ignored-fields` header value: `fields` once each, comma-separated, cut at
 * {@link IGNORED_FIELDS_HEADER_BYTES} with `…and N more`.
 *
 * @example
 * ```ts
 * ignoredFieldsHeader(["store", "messages[*].name", "store"]); // "store, messages[*].name"
 * ```
 * @internal
 */
export function ignoredFieldsHeader(fields: readonly string[]): string {
  const unique = [...new Set(fields)];
  let value = "";
  for (let i = 0; i < unique.length; i++) {
    const next = value === "" ? unique[i]! : `${value}, ${unique[i]!}`;
    if (Buffer.byteLength(next) > IGNORED_FIELDS_HEADER_BYTES) return `${value}, …and ${unique.length - i} more`;
    value = next;
  }
  return value;
}

/** A validated chat completion request. */
export interface ParsedChatRequest extends ParsedCommon {
  readonly kind: "chat";
  readonly messages: readonly ChatMessage[];
}

/** A validated text completion request. */
export interface ParsedCompletionRequest extends ParsedCommon {
  readonly kind: "completion";
  /** Text, or token ids used as given. */
  readonly prompt: string | readonly number[];
  /** Prepend the prompt to the answer's text. */
  readonly echo: boolean;
}

/** Either request. */
export type ParsedRequest = ParsedChatRequest | ParsedCompletionRequest;

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

/**
 * The sampler's fields of a request (`temperature`, `top_p`, `top_k`, `min_p`, the penalties, `repeat_last_n`, `seed`)
 * as engine options, each checked against its range; `prefix` names a nested object in refusals (Ollama's `options.`).
 * OpenAI bounds `temperature` to 2; Ollama does not.
 * @internal
 */
export function samplerFields(source: JsonObject, bounds: { readonly temperatureMax?: number; readonly prefix?: string } = {}): Record<string, number> {
  const prefix = bounds.prefix ?? "";
  const read = (field: string, range: Parameters<typeof numberField>[2]): number | undefined => numberField(source, field, range, prefix + field);
  const out: Record<string, number> = {};
  const set = (key: string, value: number | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set("temperature", read("temperature", { min: 0, ...(bounds.temperatureMax !== undefined ? { max: bounds.temperatureMax } : {}) }));
  const topP = read("top_p", { min: 0, max: 1 });
  // top_p = 0 keeps the single most likely token (OpenAI accepts 0; the sampler wants (0, 1]).
  set("topP", topP === 0 ? Number.MIN_VALUE : topP);
  set("topK", read("top_k", { integer: true, min: 0 }));
  set("minP", read("min_p", { min: 0, max: 1 }));
  set("presencePenalty", read("presence_penalty", { min: -2, max: 2 }));
  set("frequencyPenalty", read("frequency_penalty", { min: -2, max: 2 }));
  set("repeatPenalty", read("repeat_penalty", { min: 0, exclusiveMin: true }));
  set("repeatLastN", read("repeat_last_n", { integer: true, min: -1 }));
  set("seed", read("seed", { integer: true }));
  return out;
}

function parseCommon(body: JsonObject, vocabSize: number, logprobs: boolean, topLogprobs: number, ignoredFields: readonly string[]): ParsedCommon {
  // Choices beyond the server's parallel sequences wait for a slot like any sequence (and start from the kept prompt).
  const n = numberField(body, "n", { integer: true, min: 1, max: MAX_CHOICES }) ?? 1;
  const tools = body["tools"] ?? body["functions"];
  if (Array.isArray(tools) && tools.length > 0) throw unsupported(body["tools"] !== undefined ? "tools" : "functions", "tool calling", "a tool list");
  for (const field of ["tool_choice", "function_call"]) {
    const choice = body[field];
    if (choice !== undefined && choice !== null && choice !== "none" && choice !== "auto")
      throw unsupported(field, 'tool calling (only "none" or "auto" without tools)', choice);
  }
  const format = objectField(body, "response_format");
  if (format !== undefined && format["type"] !== "text") throw unsupported("response_format", 'only { type: "text" }', format["type"]);

  const stream = booleanField(body, "stream") ?? false;
  const streamOptions = objectField(body, "stream_options");
  // Each field once (`messages[*].name` for every message that carries it).
  const ignored = [...new Set(ignoredFields)];
  if (streamOptions !== undefined) checkKnownFields(streamOptions, STREAM_OPTION_FIELDS, new Set(), "stream_options.");
  const includeUsage = streamOptions === undefined ? false : (booleanField(streamOptions, "include_usage") ?? false);
  const maxTokens =
    numberField(body, "max_completion_tokens", { integer: true, min: 1, max: MAX_TOKENS_LIMIT }) ??
    numberField(body, "max_tokens", { integer: true, min: 1, max: MAX_TOKENS_LIMIT });

  const options: Record<string, unknown> = {};
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) options[key] = value;
  };
  Object.assign(options, samplerFields(body, { temperatureMax: 2 }));
  set("logitBias", logitBiasField(body, vocabSize));
  set("stop", stopField(body));
  set("ignoreEos", booleanField(body, "ignore_eos"));
  set("speculative", speculativeField(body));
  // llama-server's field: false computes the whole prompt instead of starting from the prefix cache.
  set("cachePrompt", booleanField(body, "cache_prompt"));
  if (logprobs) {
    options["logprobs"] = true;
    if (topLogprobs > 0) options["topLogprobs"] = topLogprobs;
  }
  return {
    model: stringField(body, "model"),
    n,
    stream,
    includeUsage: stream && includeUsage,
    maxTokens,
    options: options as GenerateOptions,
    logprobs,
    topLogprobs,
    user: stringField(body, "user"),
    ignoredFields: ignored,
  };
}

function messageContent(message: JsonObject, index: number): string {
  const content = message["content"];
  const field = `messages[${index}].content`;
  if (typeof content === "string") return content;
  if (content === null || content === undefined) {
    if (message["role"] === "assistant") {
      if (message["tool_calls"] !== undefined && message["tool_calls"] !== null)
        throw unsupported(`messages[${index}].tool_calls`, "tool calling", "tool calls");
      return "";
    }
    throw badField(field, "a string or an array of text parts", content);
  }
  if (!Array.isArray(content)) throw badField(field, "a string or an array of text parts", content);
  const texts: string[] = [];
  content.forEach((part: unknown, j) => {
    if (typeof part !== "object" || part === null || Array.isArray(part)) throw badField(`${field}[${j}]`, "a content part object", part);
    const { type, text } = part as { type?: unknown; text?: unknown };
    if (type !== "text") throw unsupported(`${field}[${j}].type`, "only text content parts (this model reads text)", type);
    checkKnownFields(part as JsonObject, PART_FIELDS, new Set(), `${field}[${j}].`);
    if (typeof text !== "string") throw badField(`${field}[${j}].text`, "a string", text);
    texts.push(text);
  });
  return texts.join("\n");
}

/**
 * Validates a `/v1/chat/completions` body. Unknown fields throw `SERVER_UNKNOWN_FIELD` naming
 * the field, except the few in {@link IGNORED_FIELDS}, which are accepted and reported in
 * `ignoredFields`; `null` reads as absent for every field; known
 * fields of the wrong type or range throw `SERVER_BAD_REQUEST` naming the field; features this
 * server lacks (`n > 1`, tools, image parts, JSON response formats) throw `SERVER_UNSUPPORTED`.
 * `developer` messages are passed to the template as `system`.
 *
 * @example
 * ```ts
 * const request = parseChatRequest({ messages: [{ role: "user", content: "Hi" }], top_p: 0.9 }, 512);
 * request.options.topP; // 0.9
 * ```
 */
export function parseChatRequest(body: JsonObject, vocabSize: number): ParsedChatRequest {
  const raw = body["messages"];
  if (!Array.isArray(raw)) throw badField("messages", "a non-empty array of messages", raw);
  if (raw.length === 0) throw badField("messages", "at least one message", "an empty array");
  const ignoredTop = checkKnownFields(body, CHAT_FIELDS, IGNORED_FIELDS);
  const ignoredMessageFields: string[] = [];
  const messages = raw.map((entry: unknown, i): ChatMessage => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw badField(`messages[${i}]`, "an object with role and content", entry);
    const message = entry as JsonObject;
    // Refusals name the message; ignored fields get a wildcard index, one entry however many messages carry them.
    const prefix = `messages[${i}].`;
    for (const field of checkKnownFields(message, MESSAGE_FIELDS, IGNORED_MESSAGE_FIELDS, prefix))
      ignoredMessageFields.push(`messages[*].${field.slice(prefix.length)}`);
    const role = message["role"];
    if (typeof role !== "string" || !ROLES.has(role)) throw badField(`messages[${i}].role`, `one of ${[...ROLES].join(", ")}`, role);
    return { role: role === "developer" ? "system" : role, content: messageContent(message, i) };
  });
  const logprobs = booleanField(body, "logprobs") ?? false;
  const topLogprobs = numberField(body, "top_logprobs", { integer: true, min: 0, max: 20 }) ?? 0;
  if (topLogprobs > 0 && !logprobs) throw badField("top_logprobs", "logprobs: true alongside top_logprobs", topLogprobs);
  return { kind: "chat", messages, ...parseCommon(body, vocabSize, logprobs, topLogprobs, [...ignoredTop, ...ignoredMessageFields]) };
}

function isTokenArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every((id) => typeof id === "number" && Number.isInteger(id) && id >= 0);
}

/**
 * Validates a `/v1/completions` body. `prompt` is a string, a one-element string array, token
 * ids, or a one-element array of token-id arrays (several prompts per request are refused:
 * send them as concurrent requests). `logprobs` is OpenAI's integer (alternatives per token).
 *
 * @example
 * ```ts
 * const request = parseCompletionRequest({ prompt: "Once upon a time", max_tokens: 16 }, 512);
 * request.maxTokens; // 16
 * ```
 */
export function parseCompletionRequest(body: JsonObject, vocabSize: number): ParsedCompletionRequest {
  const ignoredTop = checkKnownFields(body, COMPLETION_FIELDS, IGNORED_FIELDS);
  let prompt: unknown = body["prompt"];
  if (prompt === undefined || prompt === null) throw badField("prompt", "a string, or token ids", prompt);
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || isTokenArray(prompt[0]))) prompt = prompt[0];
  else if (Array.isArray(prompt) && prompt.length > 1 && prompt.every((p) => typeof p === "string" || isTokenArray(p))) {
    throw unsupported("prompt", "several prompts in one request", `${prompt.length} prompts`, "Send one request per prompt; they run concurrently");
  }
  if (typeof prompt !== "string" && !isTokenArray(prompt)) throw badField("prompt", "a string, or a non-empty array of token ids", prompt);
  if (typeof prompt !== "string") {
    const bad = prompt.find((id) => id >= vocabSize);
    if (bad !== undefined) throw badField("prompt", `token ids in [0, ${vocabSize})`, bad);
  }
  const bestOf = numberField(body, "best_of", { integer: true, min: 1 });
  if (bestOf !== undefined && bestOf > 1) throw unsupported("best_of", "only best_of = 1", bestOf);
  const suffix = stringField(body, "suffix");
  if (suffix !== undefined && suffix.length > 0) throw unsupported("suffix", "insertion (suffix)", suffix);
  const logprobCount = numberField(body, "logprobs", { integer: true, min: 0, max: 20 });
  return {
    kind: "completion",
    prompt,
    echo: booleanField(body, "echo") ?? false,
    ...parseCommon(body, vocabSize, logprobCount !== undefined, logprobCount ?? 0, ignoredTop),
  };
}
