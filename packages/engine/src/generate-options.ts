// Options of a generation request and their validation.
import { closestMatch, HaloError } from "@halo/errors";
import { SAMPLER_OPTION_KEYS, type SamplerOptions } from "@halo/sampler";
import { checkSpeculativeRequest, type SpeculativeRequestOptions } from "@halo/speculative";
import type { ChatMessage } from "@halo/tokenizer";
import type { ContextShiftPolicy } from "./context-shift.js";
import { EngineErrorCode } from "./errors.js";

/** Options shared by {@link Engine.generate}, {@link Engine.complete} and {@link Engine.chat}. */
export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate. Default 256. Generation also ends at the context length (`length`). */
  readonly maxTokens?: number;
  /** Strings that end the text; the stop string is not included in the output. */
  readonly stop?: readonly string[];
  /** Token ids that end generation, in addition to the model's own end-of-turn ids. */
  readonly stopTokenIds?: readonly number[];
  /** Do not stop at the model's own end-of-text / end-of-turn ids. Default false. */
  readonly ignoreEos?: boolean;
  /** Cancels the request; the stream ends with `finishReason: "abort"` and the sequence is freed. */
  readonly signal?: AbortSignal;
  /**
   * Speculative decoding of this request, on a model loaded with a drafter (loadModel's
   * `speculative`): `false` decodes it one token per step; `{ maxDraft, policy }` overrides the
   * load-time draft length and policy. Default: the load-time settings. Asking for it on a model
   * without a drafter is refused (`ENGINE_BAD_OPTION`).
   */
  readonly speculative?: SpeculativeRequestOptions;
  /**
   * Start from the longest cached prefix of this prompt (the engine's prefix cache: the KV of finished requests, kept
   * while slots are free) instead of computing it again. Default true; `false` computes the whole prompt (a cached KV
   * may differ from a fresh prefill in the last bits of its floats, as any batched step may, so a request that must
   * repeat bit for bit across servers turns it off). Sessions keep their own KV and ignore it.
   */
  readonly cachePrompt?: boolean;
}

/** A request to {@link Engine.generate}: a text prompt (BOS added per the tokenizer) or token ids used as given. */
export interface GenerateRequest extends GenerateOptions {
  readonly prompt: string | readonly number[];
}

/** Options of {@link Engine.chat}. */
export interface ChatOptions extends GenerateOptions {
  /** A built-in template name (`bitnet`, `llama3`, `plain`) or Jinja source. Default: the engine's `chatTemplate`. */
  readonly template?: string;
  /**
   * Extra variables the Jinja template reads, beside `messages` and `add_generation_prompt` (set by
   * the renderer) and `bos_token`/`eos_token` (set by the tokenizer; these override them): `tools`,
   * `date_string`, whatever the template uses. A plain object; a template that reads none ignores them.
   *
   * @example
   * ```ts
   * engine.chat(messages, { templateVariables: { date_string: "26 Jul 2024", tools: [weatherTool] } });
   * ```
   */
  readonly templateVariables?: Readonly<Record<string, unknown>>;
  /**
   * What to do when the conversation does not fit the context window with room for the answer.
   * Default `"drop-oldest"`: drop whole oldest turns, never the system prompt or the newest user
   * message (see {@link ContextShiftPolicy}); `request-start` reports `droppedMessages`.
   */
  readonly contextShift?: ContextShiftPolicy;
}

export type { ChatMessage };

/**
 * Every key {@link GenerateOptions} takes: the sampler's and the engine's own. Anything else is
 * refused (`top_p` would otherwise be ignored without a word). A new option is one line here.
 *
 * @example
 * ```ts
 * GENERATE_OPTION_KEYS.includes("maxTokens"); // true
 * ```
 */
export const GENERATE_OPTION_KEYS = [
  ...SAMPLER_OPTION_KEYS,
  "maxTokens",
  "stop",
  "stopTokenIds",
  "ignoreEos",
  "signal",
  "speculative",
  "cachePrompt",
] as const satisfies ReadonlyArray<keyof GenerateOptions>;

/**
 * Every key a {@link GenerateRequest} takes: {@link GENERATE_OPTION_KEYS} and `prompt`.
 *
 * @example
 * ```ts
 * GENERATE_REQUEST_KEYS.includes("prompt"); // true
 * ```
 */
export const GENERATE_REQUEST_KEYS = [...GENERATE_OPTION_KEYS, "prompt"] as const satisfies ReadonlyArray<keyof GenerateRequest>;

/**
 * Every key {@link ChatOptions} takes: {@link GENERATE_OPTION_KEYS} and the chat-only ones. A new
 * chat option is one line here.
 *
 * @example
 * ```ts
 * CHAT_OPTION_KEYS.includes("template"); // true
 * ```
 */
export const CHAT_OPTION_KEYS = [...GENERATE_OPTION_KEYS, "template", "templateVariables", "contextShift"] as const satisfies ReadonlyArray<keyof ChatOptions>;

/** Keys of `T` missing from the list `K`. */
export type UnlistedKeys<T, K extends readonly unknown[]> = Exclude<keyof T, K[number]>;

// The build fails naming any option added to an interface above but not to its key list (it would be refused at run time).
const everyOptionListed: Record<
  | UnlistedKeys<GenerateOptions, typeof GENERATE_OPTION_KEYS>
  | UnlistedKeys<GenerateRequest, typeof GENERATE_REQUEST_KEYS>
  | UnlistedKeys<ChatOptions, typeof CHAT_OPTION_KEYS>,
  never
> = {};
void everyOptionListed;

/**
 * Throws `ENGINE_BAD_OPTION` for the first key of `options` not in `keys`, naming it and, for a
 * likely misspelling (`top_p`, `max_tokens`, `temprature`), the key that was meant.
 *
 * @example
 * ```ts
 * checkOptionKeys("generate", { top_p: 0.5 }, GENERATE_OPTION_KEYS); // throws: … Did you mean topP?
 * ```
 */
export function checkOptionKeys(what: string, options: unknown, keys: readonly string[]): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `${what} options must be an object`, {
      field: "options",
      expected: "an object (or nothing, for the defaults)",
      actual: options === null ? "null" : Array.isArray(options) ? "an array" : typeof options,
    });
  }
  for (const key of Object.keys(options)) {
    if (keys.includes(key)) continue;
    const meant = closestMatch(key, keys);
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `unknown ${what} option`, {
      field: key,
      expected: `one of ${keys.join(", ")}`,
      hint: meant !== undefined ? `Did you mean ${meant}? Options are camelCase` : "Remove it, or check its spelling against the list",
    });
  }
}

/** The sampler's fields of a request (the sampler refuses keys it does not know). */
export function samplerOptionsOf(options: GenerateOptions): SamplerOptions {
  const out: Record<string, unknown> = {};
  for (const key of SAMPLER_OPTION_KEYS) if (options[key] !== undefined) out[key] = options[key];
  return out as SamplerOptions;
}

// Variables the renderer sets for every chat; templateVariables cannot replace them.
const RESERVED_TEMPLATE_VARIABLES = ["messages", "add_generation_prompt"];

/**
 * Throws `ENGINE_BAD_OPTION` unless `value` is a plain object (`{…}`: not an array, a class
 * instance or null) that does not set `messages` or `add_generation_prompt`.
 */
export function checkTemplateVariables(value: unknown, field = "templateVariables"): void {
  const prototype: unknown = typeof value === "object" && value !== null ? Object.getPrototypeOf(value) : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `${field} must be a plain object of template variables`, {
      field,
      expected: 'a plain object such as { date_string: "26 Jul 2024", tools: [...] }',
      actual: value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object with a class" : typeof value,
    });
  }
  const reserved = RESERVED_TEMPLATE_VARIABLES.filter((name) => Object.hasOwn(value as object, name));
  if (reserved.length > 0) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `${field} cannot set ${reserved.join(" or ")}`, {
      field: `${field}.${reserved[0]}`,
      expected: "variables other than messages and add_generation_prompt",
      actual: reserved.join(", "),
      hint: "Give the conversation as the chat's messages; the generation prompt is always added",
    });
  }
}

/** Throws `ENGINE_BAD_OPTION` unless `value` is a whole number in `[min, max]`. */
export function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, `${field} must be a whole number in [${min}, ${max}]`, {
      field,
      expected: `an integer in [${min}, ${max}]`,
      actual: value,
    });
  }
  return value;
}

/**
 * Validates a request's keys against `keys` (default {@link GENERATE_OPTION_KEYS}) and its
 * engine-level fields (sampler fields are validated by the sampler).
 */
export function checkGenerateOptions(options: GenerateOptions, keys: readonly string[] = GENERATE_OPTION_KEYS, what = "generate"): void {
  checkOptionKeys(what, options, keys);
  if (options.maxTokens !== undefined) checkInteger("maxTokens", options.maxTokens, 0, 1 << 24);
  if (options.stop !== undefined) {
    if (!Array.isArray(options.stop) || options.stop.some((s) => typeof s !== "string" || s.length === 0)) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "stop must be an array of non-empty strings", {
        field: "stop",
        actual: options.stop,
      });
    }
  }
  if (options.stopTokenIds !== undefined) {
    if (!Array.isArray(options.stopTokenIds) || options.stopTokenIds.some((id) => !Number.isInteger(id) || id < 0)) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "stopTokenIds must be an array of token ids", {
        field: "stopTokenIds",
        actual: options.stopTokenIds,
      });
    }
  }
  if (options.speculative !== undefined) checkSpeculativeRequest(options.speculative);
  if (options.cachePrompt !== undefined && typeof options.cachePrompt !== "boolean") {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "cachePrompt must be true or false", {
      field: "cachePrompt",
      expected: "a boolean",
      actual: options.cachePrompt,
      hint: "Leave it out to start from the prefix cache, or pass false to compute the whole prompt",
    });
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "signal must be an AbortSignal", { field: "signal", actual: typeof options.signal });
  }
}
