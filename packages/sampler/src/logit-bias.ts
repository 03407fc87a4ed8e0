// Logit bias as OpenAI's logit_bias: add a per-token bias in [−100, 100]; −Infinity bans the token.
import { HaloError } from "@halo/errors";
import { SamplerErrorCode } from "./errors.js";
import { clampLogit } from "./float-limits.js";
import { checkBiasValue, describeValue } from "./validate.js";

/** A logit bias as users send it: OpenAI's JSON object with string keys, or a map of ids. */
export type LogitBiasInput = Readonly<Record<string, number>> | ReadonlyMap<number, number>;

const CANONICAL_ID = /^(0|[1-9][0-9]*)$/;

function badId(key: unknown, vocabSize: number): HaloError {
  return new HaloError(SamplerErrorCode.SAMPLER_VOCAB_MISMATCH, "a logit_bias key is not a token id of this vocabulary", {
    field: `logitBias[${describeValue(key)}]`,
    expected: `an integer token id in [0, ${vocabSize})`,
    actual: describeValue(key),
    hint: "Keys are token ids (as in OpenAI's logit_bias), not token text; tokenize the text first",
  });
}

/**
 * Validates a logit bias and returns it as a `Map<id, bias>`. Keys must be canonical non-negative
 * integers below `vocabSize` (`"50256"`, not `"1.0"` or `"-1"`); values in [−100, 100] or −Infinity.
 *
 * @throws HaloError `SAMPLER_VOCAB_MISMATCH` for a bad key, `SAMPLER_BAD_OPTION` for a bad value.
 * @example
 * ```ts
 * const bias = compileLogitBias({ "50256": -100, "13": 5 }, 100352);
 * ```
 */
export function compileLogitBias(input: LogitBiasInput, vocabSize: number): Map<number, number> {
  const out = new Map<number, number>();
  const entries: Iterable<readonly [unknown, unknown]> = input instanceof Map ? input.entries() : Object.entries(input);
  for (const [key, value] of entries) {
    let id: number;
    if (typeof key === "number") id = key;
    else if (typeof key === "string" && CANONICAL_ID.test(key)) id = Number(key);
    else throw badId(key, vocabSize);
    if (!(Number.isSafeInteger(id) && id >= 0 && id < vocabSize)) throw badId(key, vocabSize);
    out.set(id, checkBiasValue(value, `logitBias[${id}]`));
  }
  return out;
}

/**
 * Adds each token's bias to its logit, in place. A bias of −Infinity sets the logit to −Infinity
 * (a ban that survives any other processor, even on a +Infinity logit); finite results are clamped
 * to the float32 range. Validates like {@link compileLogitBias}.
 *
 * @example
 * ```ts
 * const row = new Float32Array([0, 0, 0]);
 * applyLogitBias(row, new Map([[1, 5], [2, -Infinity]])); // row = [0, 5, -Infinity]
 * ```
 */
export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number>): void {
  const vocabSize = logits.length;
  for (const [id, value] of bias) {
    if (!(Number.isSafeInteger(id) && id >= 0 && id < vocabSize)) throw badId(id, vocabSize);
    checkBiasValue(value, `logitBias[${id}]`);
    if (value === Number.NEGATIVE_INFINITY) logits[id] = Number.NEGATIVE_INFINITY;
    else {
      const v = logits[id]!;
      logits[id] = clampLogit(v + value, v);
    }
  }
}
