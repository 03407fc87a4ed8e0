// Error codes of @halo/server (documented in docs/errors.md) with the HTTP status and OpenAI error type of each.
import { defineErrorCodes } from "@halo/errors";

/**
 * Every code @halo/server throws or answers with. Each one crosses the HTTP boundary as
 * `{error:{message,type,param,code}}` with the status in {@link SERVER_ERROR_HTTP}.
 *
 * @example
 * ```ts
 * import { ServerErrorCode } from "@halo/server";
 * if (isHaloError(error) && error.code === ServerErrorCode.SERVER_QUEUE_FULL) console.error("busy");
 * ```
 */
export const ServerErrorCode = defineErrorCodes({
  SERVER_BAD_JSON: "The request body is not valid JSON, or not a JSON object (HTTP 400).",
  SERVER_BAD_REQUEST: "A request field is missing, has the wrong type or an impossible value (HTTP 400; `param` names the field).",
  SERVER_UNSUPPORTED: "The request asks for something this server does not do (tools, images, json response_format, Ollama's format; HTTP 400).",
  SERVER_CONTEXT_OVERFLOW: "The prompt does not fit in the model's context window; checked before queuing (HTTP 400, code context_length_exceeded).",
  SERVER_UNAUTHORIZED: "API keys are configured and the request has no `Authorization: Bearer <key>` or a wrong key (HTTP 401).",
  SERVER_FORBIDDEN_ORIGIN: "A browser request came from an Origin that is not in the CORS allow-list (HTTP 403).",
  SERVER_FORBIDDEN_HOST:
    "No API key is configured and the request's `Host` is not a name this server answers to (loopback, the address it was reached at, or `allowedHosts` / `--allowed-host`): a DNS-rebinding guard (HTTP 403).",
  SERVER_UNKNOWN_FIELD: "The request body has a field this server does not know; it is refused rather than ignored (HTTP 400; `param` names the field).",
  SERVER_NOT_FOUND: "No such route (HTTP 404).",
  SERVER_UNKNOWN_MODEL: "The `model` field names a model this server does not serve (HTTP 404, code model_not_found).",
  SERVER_METHOD_NOT_ALLOWED: "The route exists but not for this HTTP method (HTTP 405).",
  SERVER_BODY_TOO_LARGE: "The request body is larger than the configured limit (HTTP 413).",
  SERVER_QUEUE_FULL: "Every sequence is busy and the wait queue is full; retry after the `Retry-After` seconds (HTTP 429).",
  SERVER_LOADING: "The model is still loading (HTTP 503); /health says when it is ready.",
  SERVER_LOAD_FAILED: "The model failed to load; every generation route answers 503 with the cause.",
  SERVER_SHUTTING_DOWN: "The server is shutting down and takes no new requests (HTTP 503).",
  SERVER_CLIENT_GONE:
    "The client closed the connection before its request body ended or before the answer was sent; nothing is answered (logged and counted as 499).",
  SERVER_MODEL_FAILED:
    "The model produced unusable output (every logit NaN or -Infinity), or can no longer run because its model file changed while it was loaded (the message is the backend's, e.g. KERNELS_CPU_MODEL_FILE_CHANGED; /health then answers this too until the server is restarted): a fault of the model file or backend, not of the request (HTTP 500, code model_error).",
  SERVER_TIMEOUT: "The request took longer than the per-request timeout (queue wait plus generation) and was cancelled (HTTP 504).",
  SERVER_INTERNAL: "An unexpected failure while serving the request (HTTP 500): a bug, please report it.",
  SERVER_BAD_OPTION:
    "createServer or `halo serve` got an invalid option (a port, a limit, an unreadable API key file, a `parallel` above the engine's `maxSequences`).",
});

/** Union of the codes in {@link ServerErrorCode}. */
export type ServerErrorCodeName = Exclude<keyof typeof ServerErrorCode, "describe">;

/** How a server error code crosses HTTP: status, OpenAI `type` and OpenAI `code`. */
export interface HttpErrorKind {
  readonly status: number;
  readonly type: string;
  readonly code: string;
}

/**
 * HTTP status, OpenAI error `type` and OpenAI error `code` of every {@link ServerErrorCode}.
 *
 * @example
 * ```ts
 * SERVER_ERROR_HTTP.SERVER_QUEUE_FULL; // { status: 429, type: "rate_limit_error", code: "queue_full" }
 * ```
 */
export const SERVER_ERROR_HTTP: Readonly<Record<ServerErrorCodeName, HttpErrorKind>> = {
  SERVER_BAD_JSON: { status: 400, type: "invalid_request_error", code: "invalid_json" },
  SERVER_BAD_REQUEST: { status: 400, type: "invalid_request_error", code: "invalid_value" },
  SERVER_UNSUPPORTED: { status: 400, type: "invalid_request_error", code: "unsupported_value" },
  SERVER_CONTEXT_OVERFLOW: { status: 400, type: "invalid_request_error", code: "context_length_exceeded" },
  SERVER_UNAUTHORIZED: { status: 401, type: "authentication_error", code: "invalid_api_key" },
  SERVER_FORBIDDEN_ORIGIN: { status: 403, type: "permission_error", code: "origin_not_allowed" },
  SERVER_FORBIDDEN_HOST: { status: 403, type: "permission_error", code: "host_not_allowed" },
  SERVER_UNKNOWN_FIELD: { status: 400, type: "invalid_request_error", code: "unknown_field" },
  SERVER_NOT_FOUND: { status: 404, type: "not_found_error", code: "not_found" },
  SERVER_UNKNOWN_MODEL: { status: 404, type: "invalid_request_error", code: "model_not_found" },
  SERVER_METHOD_NOT_ALLOWED: { status: 405, type: "invalid_request_error", code: "method_not_allowed" },
  SERVER_BODY_TOO_LARGE: { status: 413, type: "invalid_request_error", code: "request_too_large" },
  SERVER_QUEUE_FULL: { status: 429, type: "rate_limit_error", code: "queue_full" },
  SERVER_LOADING: { status: 503, type: "unavailable_error", code: "model_loading" },
  SERVER_LOAD_FAILED: { status: 503, type: "unavailable_error", code: "model_load_failed" },
  SERVER_SHUTTING_DOWN: { status: 503, type: "unavailable_error", code: "shutting_down" },
  SERVER_CLIENT_GONE: { status: 499, type: "invalid_request_error", code: "client_closed_request" },
  SERVER_MODEL_FAILED: { status: 500, type: "api_error", code: "model_error" },
  SERVER_TIMEOUT: { status: 504, type: "timeout_error", code: "request_timeout" },
  SERVER_INTERNAL: { status: 500, type: "api_error", code: "internal_error" },
  SERVER_BAD_OPTION: { status: 500, type: "api_error", code: "bad_server_option" },
};
