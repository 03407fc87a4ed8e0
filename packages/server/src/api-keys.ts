// Optional API keys: read from options, env or a file; checked in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Builds a checker for `Authorization: Bearer <key>` headers. Keys are compared as SHA-256
 * digests with `timingSafeEqual`, against every key without stopping early, so neither the key's
 * content nor its length leaks through timing. With no keys, every request passes.
 *
 * @example
 * ```ts
 * const check = createApiKeyCheck(["sk-local-1"]);
 * check("Bearer sk-local-1"); // true
 * check("Bearer nope");       // false
 * ```
 */
export function createApiKeyCheck(keys: readonly string[]): (authorization: string | undefined) => boolean {
  const digests = keys.map(digest);
  if (digests.length === 0) return () => true;
  return (authorization) => {
    const match = authorization === undefined ? null : /^Bearer[ \t]+(\S+)\s*$/i.exec(authorization);
    const given = digest(match?.[1] ?? "");
    let ok = false;
    for (const key of digests) ok = timingSafeEqual(key, given) || ok;
    return ok && match !== null;
  };
}

/**
 * Reads API keys from a file: one key per line; blank lines and `#` comments are skipped.
 * Throws `SERVER_BAD_OPTION` when the file cannot be read or holds no key.
 *
 * @example
 * ```ts
 * const keys = readApiKeyFile("/etc/halo/keys.txt");
 * ```
 */
export function readApiKeyFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "cannot read the API key file", {
      path,
      cause,
      hint: "Give a readable file with one key per line",
    });
  }
  const keys = parseKeyList(text.split(/\r?\n/));
  if (keys.length === 0) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "the API key file holds no key", {
      path,
      expected: "one key per line (blank lines and # comments are skipped)",
      actual: "no key",
    });
  }
  return keys;
}

/**
 * Splits key lists (`a,b` or one per entry), trimming and dropping blanks and `#` comments.
 *
 * @example
 * ```ts
 * parseKeyList(["k1,k2", " ", "# note"]); // ["k1", "k2"]
 * ```
 */
export function parseKeyList(entries: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of entries) {
    const line = entry.trim();
    if (line === "" || line.startsWith("#")) continue;
    for (const part of line.split(",")) {
      const key = part.trim();
      if (key.length > 0) out.push(key);
    }
  }
  return out;
}
