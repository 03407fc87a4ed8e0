// Request ids: keep a sane inbound `x-request-id`, otherwise mint one.
import { randomBytes } from "node:crypto";

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request id of a request: the client's `x-request-id` when it is 1–128 characters of
 * `[A-Za-z0-9._:-]`, otherwise a new 16-byte hex id. Echoed back as `x-request-id` and written to
 * every log line of the request.
 *
 * @example
 * ```ts
 * requestIdOf("abc-123"); // "abc-123"
 * requestIdOf(undefined); // "9f1c…" (32 hex digits)
 * ```
 */
export function requestIdOf(inbound: string | string[] | undefined): string {
  const value = Array.isArray(inbound) ? inbound[0] : inbound;
  if (value !== undefined && SAFE_ID.test(value)) return value;
  return randomBytes(16).toString("hex");
}

/**
 * An OpenAI-style object id: `prefix` then 24 random hex digits (`chatcmpl-…`, `cmpl-…`).
 *
 * @example
 * ```ts
 * completionId("chatcmpl"); // "chatcmpl-5c0f…"
 * ```
 */
export function completionId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}
