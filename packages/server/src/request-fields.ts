// Typed readers for request JSON fields: absent or null → undefined, wrong type → 400 naming the field.
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

/** A request body (a JSON object). */
export type JsonObject = Readonly<Record<string, unknown>>;

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return value.length > 40 ? `a string "${value.slice(0, 40)}…"` : `"${value}"`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/**
 * A `SERVER_BAD_REQUEST` error for `field`.
 *
 * @example
 * ```ts
 * throw badField("temperature", "a number in [0, 2]", body.temperature);
 * ```
 */
export function badField(field: string, expected: string, actual: unknown): HaloError {
  return new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, `invalid value for '${field}'`, {
    field,
    expected,
    actual: describe(actual),
  });
}

/**
 * A `SERVER_UNSUPPORTED` error for `field`.
 *
 * @example
 * ```ts
 * throw unsupported("n", "only one choice per request (n = 1)", body.n);
 * ```
 */
export function unsupported(field: string, what: string, actual: unknown, hint?: string): HaloError {
  return new HaloError(ServerErrorCode.SERVER_UNSUPPORTED, `'${field}' is not supported: ${what}`, {
    field,
    actual: describe(actual),
    ...(hint !== undefined ? { hint } : {}),
  });
}

/** Reads a value; `null` reads as absent (OpenAI clients send null for unset fields). */
function present(body: JsonObject, field: string): unknown {
  const value = body[field];
  return value === null ? undefined : value;
}

/**
 * An optional number in `[min, max]` (integer when asked).
 *
 * @example
 * ```ts
 * const temperature = numberField(body, "temperature", { min: 0, max: 2 });
 * ```
 */
export function numberField(
  body: JsonObject,
  field: string,
  range: { readonly min?: number; readonly max?: number; readonly integer?: boolean; readonly exclusiveMin?: boolean } = {},
  /** The field's name in a refusal when it sits in a nested object (`options.top_p`). */
  name = field,
): number | undefined {
  const value = present(body, field);
  if (value === undefined) return undefined;
  const min = range.min ?? -Infinity;
  const max = range.max ?? Infinity;
  const kind = range.integer === true ? "an integer" : "a number";
  const bounds = `${range.exclusiveMin === true ? "(" : "["}${min}, ${max}]`;
  if (
    typeof value !== "number" ||
    !Number.isFinite(value) ||
    (range.integer === true && !Number.isSafeInteger(value)) ||
    value < min ||
    (range.exclusiveMin === true && value === min) ||
    value > max
  ) {
    throw badField(name, `${kind} in ${bounds}`, value);
  }
  return value;
}

/**
 * An optional boolean.
 *
 * @example
 * ```ts
 * const stream = booleanField(body, "stream") ?? false;
 * ```
 */
export function booleanField(body: JsonObject, field: string): boolean | undefined {
  const value = present(body, field);
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") throw badField(field, "true or false", value);
  return value;
}

/**
 * An optional string.
 *
 * @example
 * ```ts
 * const user = stringField(body, "user");
 * ```
 */
export function stringField(body: JsonObject, field: string): string | undefined {
  const value = present(body, field);
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw badField(field, "a string", value);
  return value;
}

/**
 * An optional JSON object.
 *
 * @example
 * ```ts
 * const options = objectField(body, "stream_options");
 * ```
 */
export function objectField(body: JsonObject, field: string): JsonObject | undefined {
  const value = present(body, field);
  if (value === undefined) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw badField(field, "an object", value);
  return value as JsonObject;
}

/**
 * `stop`: a string or an array of up to `max` non-empty strings, as an array.
 *
 * @example
 * ```ts
 * stopField({ stop: "\n" }); // ["\n"]
 * ```
 */
export function stopField(body: JsonObject, max = 16, name = "stop"): string[] | undefined {
  const value = present(body, "stop");
  if (value === undefined) return undefined;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length > max || list.some((s) => typeof s !== "string" || s.length === 0)) {
    throw badField(name, `a non-empty string or an array of at most ${max} non-empty strings`, value);
  }
  return list as string[];
}

/**
 * `logit_bias`: an object of token id → bias in [−100, 100], ids checked against the vocabulary.
 *
 * @example
 * ```ts
 * logitBiasField({ logit_bias: { "50256": -100 } }, 128256); // { "50256": -100 }
 * ```
 */
export function logitBiasField(body: JsonObject, vocabSize: number): Record<string, number> | undefined {
  const value = objectField(body, "logit_bias");
  if (value === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const [key, bias] of Object.entries(value)) {
    if (!/^(0|[1-9][0-9]*)$/.test(key) || Number(key) >= vocabSize) {
      throw badField(`logit_bias.${key}`, `a token id in [0, ${vocabSize})`, key);
    }
    if (typeof bias !== "number" || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw badField(`logit_bias.${key}`, "a number in [-100, 100]", bias);
    }
    out[key] = bias;
  }
  return out;
}

/**
 * `text` cut to `max` characters with an ellipsis, for echoing client strings in errors and logs.
 *
 * @example
 * ```ts
 * clipText("a".repeat(3_000_000), 64).length; // 65
 * ```
 */
export function clipText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * Refuses (`SERVER_UNKNOWN_FIELD`, HTTP 400 naming it) the first field of `body` that is neither in
 * `known` nor in `ignored` and is not `null` (null reads as absent for every field). Returns the
 * `ignored` fields present, which the caller reports (`x-halo-ignored-fields`): a field is acted
 * on, refused, or listed as ignored — never silently dropped. `prefix` names nested objects
 * (`stream_options.`, `messages[0].`).
 *
 * @example
 * ```ts
 * checkKnownFields({ content: "hi", grammar: "root ::= x" }, new Set(["content"])); // throws: 'grammar'
 * checkKnownFields({ content: "hi", store: false }, new Set(["content"]), new Set(["store"])); // ["store"]
 * ```
 */
export function checkKnownFields(body: JsonObject, known: ReadonlySet<string>, ignored: ReadonlySet<string> = new Set(), prefix = ""): string[] {
  const present: string[] = [];
  for (const key of Object.keys(body)) {
    if (known.has(key) || body[key] === null) continue;
    if (ignored.has(key)) {
      present.push(prefix + key);
      continue;
    }
    const field = prefix + clipText(key, 64);
    throw new HaloError(ServerErrorCode.SERVER_UNKNOWN_FIELD, `unknown field '${field}': this server does not support it and does not ignore fields`, {
      field,
      expected: `one of ${[...known, ...ignored].sort().join(", ")}`,
      actual: describe(body[key]),
      hint: "Remove the field; the server README lists the fields it reads and the few it accepts and ignores",
    });
  }
  return present;
}
