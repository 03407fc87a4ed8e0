// Writing an answer: a JSON body, or an error in OpenAI's shape with the headers its status calls for.
import type { ServerResponse } from "node:http";
import { toOpenAiError } from "./openai-error.js";
import type { ServerState } from "./server-state.js";

/**
 * Answers `value` as JSON with `status` and a content length.
 * @internal
 */
export function writeJson(res: ServerResponse, status: number, value: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
  res.end(text);
}

/** The API whose error shape an answer takes: OpenAI's `{ error: { message, type, param, code } }` or Ollama's `{ error }`. @internal */
export type ErrorShape = "openai" | "ollama";

/**
 * Answers `error` in OpenAI's shape, or Ollama's `{ error: message }` (`Retry-After` on 429 and 503, `WWW-Authenticate`
 * on 401, `Connection: close` on 413; the same statuses in both shapes) and returns its status; ends an answer already
 * started instead. A failure of the model itself is remembered in `state` first (/health reports it).
 * @internal
 */
export function writeError(
  res: ServerResponse,
  error: unknown,
  headers: Readonly<Record<string, string>>,
  state: ServerState,
  shape: ErrorShape = "openai",
): number {
  state.noteFailure(error);
  const { status, body } = toOpenAiError(error);
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return status;
  }
  const extra: Record<string, string> = { ...headers };
  if (body.error.halo_code === "SERVER_QUEUE_FULL") extra["retry-after"] = String(state.retryAfterSeconds());
  if (status === 503) extra["retry-after"] = "5";
  if (status === 401) extra["www-authenticate"] = 'Bearer realm="halo"';
  if (status === 413) extra["connection"] = "close";
  writeJson(res, status, shape === "ollama" ? { error: body.error.message, halo_code: body.error.halo_code } : body, extra);
  return status;
}
