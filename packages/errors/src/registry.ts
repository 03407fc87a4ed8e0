// A registry of error codes so every package's codes can be listed and checked against docs/errors.md.

/** One documented error code. */
export interface ErrorCodeInfo {
  /** The stable code, e.g. `H1B_TRUNCATED`. */
  readonly code: string;
  /** One sentence on when it is thrown. */
  readonly description: string;
}

/**
 * Declares a package's error codes. Returns the same object typed by its keys, so
 * `codes.H1B_TRUNCATED` is both the string and a checked name.
 *
 * @example
 * ```ts
 * export const TokenizerErrorCode = defineErrorCodes({
 *   TOKENIZER_BAD_JSON: "tokenizer.json is not valid JSON",
 * });
 * throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_JSON, "...");
 * ```
 */
export function defineErrorCodes<const T extends Record<string, string>>(
  descriptions: T,
): { readonly [K in keyof T]: K } & { readonly describe: () => readonly ErrorCodeInfo[] } {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(descriptions)) out[key] = key;
  const infos = Object.entries(descriptions).map(([code, description]) => ({ code, description }));
  Object.defineProperty(out, "describe", { value: () => infos, enumerable: false });
  return Object.freeze(out) as { readonly [K in keyof T]: K } & { readonly describe: () => readonly ErrorCodeInfo[] };
}
