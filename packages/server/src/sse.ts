// Server-sent events: headers, `data:` records, comments, and the OpenAI `[DONE]` terminator.
import type { ServerResponse } from "node:http";

const writeTimeouts = new WeakMap<ServerResponse, number>();
const armed = new WeakSet<ServerResponse>();

/**
 * Sets how long writes to `res` may stay buffered because the client does not read: once an SSE
 * write finds the buffer full (`write` returns false, or `end` leaves bytes unsent), the
 * connection is destroyed unless it drains within `ms`. Destroying it closes the answer, which the
 * generation sees as a departed client: its sequence is freed and its buffers released.
 *
 * @example
 * ```ts
 * setWriteTimeout(res, 30_000);
 * ```
 */
export function setWriteTimeout(res: ServerResponse, ms: number): void {
  writeTimeouts.set(res, ms);
}

function armWriteTimeout(res: ServerResponse): void {
  const ms = writeTimeouts.get(res);
  if (ms === undefined || armed.has(res) || res.destroyed) return;
  armed.add(res);
  const timer = setTimeout(() => {
    disarm();
    res.destroy();
  }, ms);
  timer.unref();
  const disarm = (): void => {
    clearTimeout(timer);
    armed.delete(res);
    res.off("drain", disarm);
    res.off("finish", disarm);
    res.off("close", disarm);
  };
  res.once("drain", disarm);
  res.once("finish", disarm);
  res.once("close", disarm);
}

/**
 * Arms the write timeout (see {@link setWriteTimeout}) for an answer that has ended but whose
 * bytes the client has not taken yet (a large JSON body to a client that does not read): the
 * connection is destroyed unless its socket drains in time. No-op for answers still being written (live
 * feeds, streams: their writes arm it themselves) and for answers already flushed.
 *
 * @example
 * ```ts
 * res.end(largeJson);
 * watchUnsentAnswer(res);
 * ```
 */
export function watchUnsentAnswer(res: ServerResponse): void {
  // An ended answer is handed to the socket at once ('finish'); what the client has not taken
  // waits in the socket's own buffer, so that is where to look.
  const socket = res.socket;
  const ms = writeTimeouts.get(res);
  if (!res.writableEnded || ms === undefined || socket === null || socket.destroyed || socket.writableLength === 0) return;
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  const disarm = (): void => {
    clearTimeout(timer);
    socket.off("drain", disarm);
    socket.off("close", disarm);
  };
  socket.once("drain", disarm);
  socket.once("close", disarm);
}

function write(res: ServerResponse, text: string): void {
  if (!res.write(text)) armWriteTimeout(res);
}

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
  write(res, `data: ${JSON.stringify(value)}\n\n`);
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
  if (!res.writableEnded && !res.destroyed) write(res, `: ${text}\n\n`);
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
  watchUnsentAnswer(res);
}
