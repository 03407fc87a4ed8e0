// Any error → an OpenAI-shaped error body {error:{message,type,param,code}} and its HTTP status.
import { isHaloError } from "@halo/errors";
import { SERVER_ERROR_HTTP, type ServerErrorCodeName } from "./errors.js";

/** The JSON body of every error answer, as OpenAI writes it (plus halo's stable code). */
export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string;
    /** The HaloError code behind the answer (stable; documented in docs/errors.md). */
    readonly halo_code: string;
  };
}

/** An error answer: status and body. */
export interface OpenAiErrorAnswer {
  readonly status: number;
  readonly body: OpenAiErrorBody;
}

// Engine and sampler fields are camelCase; clients sent snake_case.
const FIELD_NAMES: Readonly<Record<string, string>> = {
  maxTokens: "max_tokens",
  topP: "top_p",
  topK: "top_k",
  minP: "min_p",
  repeatPenalty: "repeat_penalty",
  repeatLastN: "repeat_last_n",
  presencePenalty: "presence_penalty",
  frequencyPenalty: "frequency_penalty",
  logitBias: "logit_bias",
  topLogprobs: "top_logprobs",
  maxDraft: "max_draft",
};

// Engine and sampler messages name their own option ("maxTokens must be …"); the client reads its field.
const ENGINE_NAME_PATTERN = new RegExp(`\\b(${Object.keys(FIELD_NAMES).join("|")})\\b`, "g");

function inRequestTerms(message: string): string {
  return message.replace(ENGINE_NAME_PATTERN, (name) => FIELD_NAMES[name] ?? name);
}

// Each dotted part of a field (`speculative.maxDraft` → `speculative.max_draft`).
function paramOf(field: string | undefined): string | null {
  if (field === undefined) return null;
  return field
    .split(".")
    .map((part) => {
      const head = /^[A-Za-z]+/.exec(part)?.[0];
      return head !== undefined && FIELD_NAMES[head] !== undefined ? FIELD_NAMES[head] + part.slice(head.length) : part;
    })
    .join(".");
}

// Codes of other packages that mean the loaded model can no longer run at all (not this request's fault, and not
// transient): answered as SERVER_MODEL_FAILED with the backend's own message, which says what happened and what to do.
const MODEL_FAILURE_CODES = new Set(["KERNELS_CPU_MODEL_FILE_CHANGED"]);

/**
 * @internal Whether `error` says the loaded model can no longer run (its model file changed under it): every later request
 * would fail the same way, so the server reports it on `/health` until it is restarted.
 *
 * @example
 * ```ts
 * isModelFailure(new HaloError("KERNELS_CPU_MODEL_FILE_CHANGED", "the model file changed")); // true
 * ```
 */
export function isModelFailure(error: unknown): boolean {
  return isHaloError(error) && MODEL_FAILURE_CODES.has(error.code);
}

function isServerCode(code: string): code is ServerErrorCodeName {
  return Object.prototype.hasOwnProperty.call(SERVER_ERROR_HTTP, code);
}

// Codes of other packages that describe a bad request rather than a server fault.
const CLIENT_CODES = new Set([
  "ENGINE_BAD_OPTION",
  "ENGINE_TOKEN_OUT_OF_RANGE",
  "TOKENIZER_BAD_TOKEN_ID",
  "TOKENIZER_BAD_ARGUMENT",
  "TOKENIZER_BAD_TEMPLATE",
  // A request's `speculative` value the engine refuses (max_draft above its limit).
  "SPECULATIVE_BAD_OPTION",
]);

/**
 * Maps any thrown value to the status and OpenAI-shaped body the server answers with. Server codes
 * use {@link SERVER_ERROR_HTTP}; engine, sampler and tokenizer errors about request values become
 * 400 `invalid_request_error`; a context overflow becomes 400 `context_length_exceeded`; anything
 * else is a 500 `api_error`.
 *
 * @example
 * ```ts
 * const { status, body } = toOpenAiError(new HaloError("SERVER_UNKNOWN_MODEL", "no such model", { field: "model" }));
 * // status 404, body.error.code "model_not_found", body.error.param "model"
 * ```
 */
export function toOpenAiError(error: unknown): OpenAiErrorAnswer {
  if (isHaloError(error)) {
    const param = paramOf(error.field);
    if (isServerCode(error.code)) {
      const kind = SERVER_ERROR_HTTP[error.code];
      return { status: kind.status, body: { error: { message: error.message, type: kind.type, param, code: kind.code, halo_code: error.code } } };
    }
    // With the server's bounds on every sampler option (logit_bias within ±100, finite
    // temperature…), no request can leave every candidate at -Infinity: only the model's own
    // non-finite logits do. That is a model or backend fault, never the client's.
    if (error.code === "SAMPLER_NO_CANDIDATES") {
      return {
        status: 500,
        body: {
          error: {
            message: "the model produced no usable logits (every value NaN or -Infinity); the model file or the backend is faulty",
            type: "api_error",
            param: null,
            code: SERVER_ERROR_HTTP.SERVER_MODEL_FAILED.code,
            halo_code: "SERVER_MODEL_FAILED",
          },
        },
      };
    }
    if (isModelFailure(error)) {
      const kind = SERVER_ERROR_HTTP.SERVER_MODEL_FAILED;
      return {
        status: kind.status,
        body: { error: { message: error.message, type: kind.type, param: null, code: kind.code, halo_code: "SERVER_MODEL_FAILED" } },
      };
    }
    if (error.code === "ENGINE_CONTEXT_OVERFLOW") {
      return {
        status: 400,
        body: {
          error: { message: error.message, type: "invalid_request_error", param: param ?? "messages", code: "context_length_exceeded", halo_code: error.code },
        },
      };
    }
    if (CLIENT_CODES.has(error.code) || error.code.startsWith("SAMPLER_")) {
      return {
        status: 400,
        body: { error: { message: inRequestTerms(error.message), type: "invalid_request_error", param, code: "invalid_value", halo_code: error.code } },
      };
    }
    if (error.code === "ENGINE_DISPOSED") {
      return { status: 503, body: { error: { message: error.message, type: "unavailable_error", param: null, code: "shutting_down", halo_code: error.code } } };
    }
    return { status: 500, body: { error: { message: error.message, type: "api_error", param, code: "internal_error", halo_code: error.code } } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    status: 500,
    body: { error: { message: `internal error: ${message}`, type: "api_error", param: null, code: "internal_error", halo_code: "SERVER_INTERNAL" } },
  };
}
