// Reads a JSON request body under a size limit.
import type { IncomingMessage } from "node:http";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

function tooLarge(limit: number, actual: string): HaloError {
  return new HaloError(ServerErrorCode.SERVER_BODY_TOO_LARGE, "the request body is too large", {
    expected: `at most ${limit} bytes`,
    actual,
    hint: "Send a shorter prompt, or start the server with a larger body limit",
  });
}

function clientGone(cause: Error | undefined): HaloError {
  return new HaloError(ServerErrorCode.SERVER_CLIENT_GONE, "the client closed the connection before the body ended", cause !== undefined ? { cause } : {});
}

/**
 * Reads `req`'s body as a JSON object. Refuses (`SERVER_BODY_TOO_LARGE`) a declared
 * `Content-Length` above `limit` before reading anything, and stops reading as soon as a body
 * without a length passes `limit`; refuses (`SERVER_BAD_JSON`) text that is not JSON or JSON that
 * is not an object; rejects with `SERVER_CLIENT_GONE` when the client aborts the upload.
 *
 * @example
 * ```ts
 * const body = await readJsonBody(req, 1 << 20);
 * ```
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit, `Content-Length ${declared}`);
  const chunks: Buffer[] = [];
  let length = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > limit) {
        cleanup();
        reject(tooLarge(limit, `more than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve();
    };
    // An aborted upload (ECONNRESET, "aborted") or a closed socket is the client leaving, not a
    // server fault: SERVER_CLIENT_GONE, logged as 499, nothing answered.
    const onError = (error: Error): void => {
      cleanup();
      reject(clientGone(error));
    };
    const onClose = (): void => {
      cleanup();
      reject(clientGone(undefined));
    };
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
  const text = Buffer.concat(chunks, length).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_JSON, "the request body is not valid JSON", {
      expected: "a JSON object",
      actual: text.length === 0 ? "an empty body" : `${(cause as Error).message}`,
      hint: "Send Content-Type: application/json with a JSON object body",
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_JSON, "the request body must be a JSON object", {
      expected: "a JSON object",
      actual: value === null ? "null" : Array.isArray(value) ? "an array" : typeof value,
    });
  }
  return value as Record<string, unknown>;
}
