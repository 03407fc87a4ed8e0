// Server-sent events: headers, `data:` records, comments, and the OpenAI `[DONE]` terminator.
import type { ServerResponse } from "node:http";

/**
 * Starts an SSE answer (`text/event-stream`, no caching, no proxy buffering) and sends the headers
 * at once so the client sees the stream open.
 *
 * @example
 * ```ts
 * startSse(res, { "x-request-id": id });
 * sendSseData(res, { hello: 1 });
 * sendSseDone(res);
 * ```
 */
export function startSse(res: ServerResponse, headers: Readonly<Record<string, string>> = {}): void {
  res.writeHead(200, {
    ...headers,
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.flushHeaders();
}

/**
 * Writes one `data: <json>\n\n` record. Returns false once the client is gone.
 *
 * @example
 * ```ts
 * sendSseData(res, { choices: [] });
 * ```
 */
export function sendSseData(res: ServerResponse, value: unknown): boolean {
  if (res.writableEnded || res.destroyed) return false;
  res.write(`data: ${JSON.stringify(value)}\n\n`);
  return true;
}

/**
 * Writes an SSE comment (`: text`), used as a keep-alive that parsers ignore.
 *
 * @example
 * ```ts
 * sendSseComment(res, "keep-alive");
 * ```
 */
export function sendSseComment(res: ServerResponse, text: string): void {
  if (!res.writableEnded && !res.destroyed) res.write(`: ${text}\n\n`);
}

/**
 * Writes `data: [DONE]` and ends the answer, as OpenAI does after the last chunk.
 *
 * @example
 * ```ts
 * sendSseDone(res);
 * ```
 */
export function sendSseDone(res: ServerResponse): void {
  if (res.writableEnded || res.destroyed) return;
  res.end("data: [DONE]\n\n");
}
