// Range checks shared by the processors and the sampler chain; each failure is a HaloError naming the field.
import { HaloError } from "@halo/errors";
import { SamplerErrorCode } from "./errors.js";

function bad(field: string, expected: string, actual: unknown, hint: string): HaloError {
  return new HaloError(SamplerErrorCode.SAMPLER_BAD_OPTION, `invalid sampler option ${field}`, {
    field,
    expected,
    actual: describeValue(actual),
    hint,
  });
}

/** Renders any value for an error's `actual` (NaN and Infinity survive JSON this way). @internal */
export function describeValue(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  return typeof value;
}

/** Throws unless `value` is a finite number ≥ 0. @internal */
export function checkTemperature(value: unknown, field = "temperature"): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw bad(field, "a finite number ≥ 0 (0 = greedy)", value, "Use 0 for greedy decoding or a positive value such as 0.8");
  }
  return value;
}

/** Throws unless `value` is a finite number > 0 (softmax and draws; greedy handles 0). @internal */
export function checkPositiveTemperature(value: unknown, field = "temperature"): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw bad(field, "a finite number > 0 here", value, "Temperature 0 means greedy: call argmax instead of drawing");
  }
  return value;
}

/** Throws unless `value` is in (0, 1]. @internal */
export function checkTopP(value: unknown, field = "topP"): number {
  if (typeof value !== "number" || !(value > 0 && value <= 1)) {
    throw bad(field, "a number in (0, 1] (1 = off)", value, "Use 1 to turn nucleus sampling off, or a value such as 0.95");
  }
  return value;
}

/** Throws unless `value` is an integer ≥ 0. @internal */
export function checkTopK(value: unknown, field = "topK"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw bad(field, "an integer ≥ 0 (0 = off)", value, "Use 0 to turn top-k off, or a whole number such as 40");
  }
  return value;
}

/** Throws unless `value` is in [0, 1]. @internal */
export function checkMinP(value: unknown, field = "minP"): number {
  if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
    throw bad(field, "a number in [0, 1] (0 = off)", value, "Use 0 to turn min-p off, or a value such as 0.05");
  }
  return value;
}

/** Throws unless `value` is a finite number > 0. @internal */
export function checkRepeatPenalty(value: unknown, field = "repeatPenalty"): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw bad(field, "a finite number > 0 (1 = off)", value, "Use 1 to turn the repetition penalty off, or a value such as 1.1");
  }
  return value;
}

/** Throws unless `value` is an integer ≥ −1. @internal */
export function checkLastN(value: unknown, field = "repeatLastN"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < -1) {
    throw bad(field, "an integer ≥ −1 (−1 = whole history, 0 = off)", value, "Use 64 (llama.cpp's default) or −1 for the whole history");
  }
  return value;
}

/** Throws unless `value` is a finite number. @internal */
export function checkAdditivePenalty(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw bad(field, "a finite number (0 = off; OpenAI accepts −2…2)", value, "Use 0 to turn it off");
  }
  return value;
}

/**
 * Largest |bias| accepted, as OpenAI's `logit_bias` (−Infinity is also accepted, as a ban).
 *
 * @example
 * ```ts
 * createSampler({ logitBias: { "13": -MAX_LOGIT_BIAS } }, { vocabSize });
 * ```
 */
export const MAX_LOGIT_BIAS = 100;

/** Throws unless `value` is in [−100, 100] or exactly −Infinity (a ban). @internal */
export function checkBiasValue(value: unknown, field: string): number {
  if (typeof value !== "number" || !((value >= -MAX_LOGIT_BIAS && value <= MAX_LOGIT_BIAS) || value === Number.NEGATIVE_INFINITY)) {
    throw bad(field, "a number in [−100, 100], or −Infinity to ban the token", value, "Use −100 (or −Infinity) to ban, +100 to force");
  }
  return value;
}

/** Throws unless `value` is an integer in [0, 20]. @internal */
export function checkTopLogprobs(value: unknown, field = "topLogprobs"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > MAX_TOP_LOGPROBS) {
    throw bad(field, `an integer in [0, ${MAX_TOP_LOGPROBS}]`, value, "OpenAI allows at most 20 alternatives per token");
  }
  return value;
}

/**
 * Most alternatives per token `topLogprobs` may request (OpenAI's limit).
 *
 * @example
 * ```ts
 * createSampler({ topLogprobs: MAX_TOP_LOGPROBS }, { vocabSize });
 * ```
 */
export const MAX_TOP_LOGPROBS = 20;

/** Throws unless `value` is a positive safe integer. @internal */
export function checkVocabSize(value: unknown, field = "vocabSize"): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw bad(field, "a positive integer (the length of one logits row)", value, "Pass the model's vocabulary size, e.g. 128256");
  }
  return value;
}

/** Throws `SAMPLER_VOCAB_MISMATCH` unless `logits.length === vocabSize`. @internal */
export function checkLogitsLength(logits: { readonly length: number }, vocabSize: number, field = "logits.length"): void {
  if (logits.length !== vocabSize) {
    throw new HaloError(SamplerErrorCode.SAMPLER_VOCAB_MISMATCH, "the row does not match the vocabulary size", {
      field,
      expected: vocabSize,
      actual: logits.length,
      hint: "Pass one row of the LM head output; create the sampler with the model's vocabulary size",
    });
  }
}

/** Throws `SAMPLER_BAD_TOKEN` unless `id` is an integer in [0, vocabSize). @internal */
export function checkTokenId(id: number, vocabSize: number, index: number): void {
  if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
    throw new HaloError(SamplerErrorCode.SAMPLER_BAD_TOKEN, "a history token id is outside the vocabulary", {
      field: `history[${index}]`,
      expected: `an integer in [0, ${vocabSize})`,
      actual: describeValue(id),
      hint: "Pass the token ids the model produced (or the prompt ids), not text offsets",
    });
  }
}
