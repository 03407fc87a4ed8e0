// Options of a generation request and their validation.
import { HaloError } from "@halo/errors";
import { SAMPLER_OPTION_KEYS, type SamplerOptions } from "@halo/sampler";
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
}

/** A request to {@link Engine.generate}: a text prompt (BOS added per the tokenizer) or token ids used as given. */
export interface GenerateRequest extends GenerateOptions {
  readonly prompt: string | readonly number[];
}

/** Options of {@link Engine.chat}. */
export interface ChatOptions extends GenerateOptions {
  /** A built-in template name (`bitnet`, `llama3`) or Jinja source. Default: the model's own template. */
  readonly template?: string;
  /**
   * What to do when the conversation does not fit the context window with room for the answer.
   * Default `"drop-oldest"`: drop whole oldest turns, never the system prompt or the newest user
   * message (see {@link ContextShiftPolicy}); `request-start` reports `droppedMessages`.
   */
  readonly contextShift?: ContextShiftPolicy;
}

export type { ChatMessage };

/** The sampler's fields of a request (the sampler refuses keys it does not know). */
export function samplerOptionsOf(options: GenerateOptions): SamplerOptions {
  const out: Record<string, unknown> = {};
  for (const key of SAMPLER_OPTION_KEYS) if (options[key] !== undefined) out[key] = options[key];
  return out as SamplerOptions;
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

/** Validates the engine-level fields of a request (sampler fields are validated by the sampler). */
export function checkGenerateOptions(options: GenerateOptions): void {
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
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "signal must be an AbortSignal", { field: "signal", actual: typeof options.signal });
  }
}
