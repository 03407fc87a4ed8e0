// The sampler chain: validated options → penalties → bias → top-k → top-p → min-p → temperature → draw.
import { HaloError } from "@halo/errors";
import { SamplerErrorCode } from "./errors.js";
import { argmax } from "./greedy.js";
import { applyLogitBias, compileLogitBias, type LogitBiasInput } from "./logit-bias.js";
import { computeLogprobs, type TokenLogprob } from "./logprobs.js";
import { applyMinP } from "./min-p.js";
import { applyPresenceFrequencyPenalty } from "./presence-frequency-penalty.js";
import { applyRepetitionPenalty, DEFAULT_REPEAT_LAST_N } from "./repetition-penalty.js";
import { createRng, normaliseSeed, randomSeed, type Rng } from "./rng.js";
import { sanitizeLogits } from "./sanitize.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { drawToken, softmax } from "./softmax.js";
import { applyTopK } from "./top-k.js";
import { applyTopP } from "./top-p.js";
import {
  checkAdditivePenalty,
  checkLastN,
  checkLogitsLength,
  checkMinP,
  checkRepeatPenalty,
  checkTemperature,
  checkTopK,
  checkTopLogprobs,
  checkTopP,
  checkVocabSize,
  describeValue,
} from "./validate.js";

/**
 * Sampling options, named after OpenAI's request fields in camelCase plus llama.cpp's extras.
 * Every field is optional; the defaults turn every filter off and sample the model's distribution
 * (OpenAI's defaults). Servers and CLIs may choose other defaults (llama.cpp: T 0.8, top-k 40,
 * top-p 0.95, min-p 0.05).
 */
export interface SamplerOptions {
  /** Softmax temperature, finite ≥ 0; 0 = greedy (argmax, lowest id on ties). Default 1. */
  readonly temperature?: number;
  /** Keep the k most likely tokens; integer ≥ 0, 0 = off. Default 0. */
  readonly topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off. Default 1. */
  readonly topP?: number;
  /** Min-p ratio in [0, 1]; 0 = off. Default 0. */
  readonly minP?: number;
  /** llama.cpp repetition penalty, finite > 0; 1 = off. Default 1. */
  readonly repeatPenalty?: number;
  /** How many most recent history tokens the repetition penalty reads; −1 = all, 0 = off. Default 64. */
  readonly repeatLastN?: number;
  /** OpenAI presence penalty (finite; OpenAI accepts −2…2). Default 0. */
  readonly presencePenalty?: number;
  /** OpenAI frequency penalty (finite; OpenAI accepts −2…2). Default 0. */
  readonly frequencyPenalty?: number;
  /** OpenAI `logit_bias`: token id → bias in [−100, 100], or −Infinity to ban. */
  readonly logitBias?: LogitBiasInput;
  /** Seed for the built-in RNG (safe integer or bigint). Default: a random seed, see `SamplerChain.seed`. */
  readonly seed?: number | bigint;
  /** Return the chosen token's logprob. Default false (true when `topLogprobs > 0`). */
  readonly logprobs?: boolean;
  /** Also return this many most likely alternatives, integer in [0, 20]. Default 0. */
  readonly topLogprobs?: number;
  /**
   * Which distribution logprobs describe. `"processed"` (default): softmax at temperature 1 of the
   * logits after penalties and logit bias, before top-k/top-p/min-p truncation and before
   * temperature (so it is defined for greedy too, and matches what OpenAI reports when logit_bias
   * is used). `"raw"`: the model's logits as given (llama-server's default `n_probs`).
   */
  readonly logprobsSource?: "processed" | "raw";
}

/** Where a sampler runs: the vocabulary it samples and, optionally, an injected RNG and scratch. */
export interface SamplerContext {
  /** Length of every logits row. */
  readonly vocabSize: number;
  /** Random source; overrides `options.seed`. */
  readonly rng?: Rng;
  /** Shared work buffers (see {@link createSamplerScratch}); one is allocated when absent. */
  readonly scratch?: SamplerScratch;
}

/** One sampled token. */
export interface SampleResult {
  /** The chosen token id. */
  readonly token: number;
  /** Its natural-log probability, when logprobs were requested. */
  readonly logprob?: number;
  /** The most likely alternatives, when `topLogprobs > 0`. */
  readonly topLogprobs?: readonly TokenLogprob[];
}

/** The options with every default filled in. */
export interface ResolvedSamplerOptions {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly repeatLastN: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly logitBias: ReadonlyMap<number, number>;
  readonly logprobs: boolean;
  readonly topLogprobs: number;
  readonly logprobsSource: "processed" | "raw";
}

/**
 * The stages of a chain in the order they run; {@link SamplerChain.stages} lists the active ones.
 *
 * @example
 * ```ts
 * SAMPLER_STAGE_ORDER.indexOf("top-k") < SAMPLER_STAGE_ORDER.indexOf("top-p"); // true
 * ```
 */
export const SAMPLER_STAGE_ORDER = [
  "sanitize",
  "repetition-penalty",
  "presence-frequency-penalty",
  "logit-bias",
  "greedy",
  "top-k",
  "top-p",
  "min-p",
  "temperature-draw",
] as const;

/** A stage name from {@link SAMPLER_STAGE_ORDER}. */
export type SamplerStage = (typeof SAMPLER_STAGE_ORDER)[number];

/**
 * Every key of {@link SamplerOptions}; the chain refuses any other (so callers that mix sampler
 * options with their own can pick these out).
 *
 * @example
 * ```ts
 * const samplerOnly = Object.fromEntries(Object.entries(request).filter(([k]) => SAMPLER_OPTION_KEYS.includes(k as never)));
 * ```
 */
export const SAMPLER_OPTION_KEYS = [
  "temperature",
  "topK",
  "topP",
  "minP",
  "repeatPenalty",
  "repeatLastN",
  "presencePenalty",
  "frequencyPenalty",
  "logitBias",
  "seed",
  "logprobs",
  "topLogprobs",
  "logprobsSource",
] as const satisfies ReadonlyArray<keyof SamplerOptions>;

const KNOWN_OPTIONS = new Set<string>(SAMPLER_OPTION_KEYS);

function optionError(field: string, expected: string, actual: unknown, hint: string): HaloError {
  return new HaloError(SamplerErrorCode.SAMPLER_BAD_OPTION, `invalid sampler option ${field}`, {
    field,
    expected,
    actual: describeValue(actual),
    hint,
  });
}

/**
 * Checks sampler options against a vocabulary and fills in defaults. Unknown keys are refused (a
 * misspelt `top_p` would otherwise be silently ignored).
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` (with `field`, `expected`, `actual`) or
 *   `SAMPLER_VOCAB_MISMATCH` for a logit-bias id outside the vocabulary.
 * @example
 * ```ts
 * resolveSamplerOptions({ temperature: 0.7, topP: 0.9 }, 32000).topK; // 0
 * ```
 */
export function resolveSamplerOptions(options: SamplerOptions, vocabSize: number): ResolvedSamplerOptions {
  checkVocabSize(vocabSize);
  if (typeof options !== "object" || options === null) {
    throw optionError("options", "an object of sampler options", options, "Pass {} for the defaults");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw optionError(key, `one of ${[...KNOWN_OPTIONS].join(", ")}`, key, "Sampler options are camelCase (topP, not top_p)");
    }
  }
  const logprobsSource = options.logprobsSource ?? "processed";
  if (logprobsSource !== "processed" && logprobsSource !== "raw") {
    throw optionError("logprobsSource", '"processed" or "raw"', logprobsSource, 'Use "processed" unless you need the raw model distribution');
  }
  const topLogprobs = checkTopLogprobs(options.topLogprobs ?? 0);
  if (options.logprobs !== undefined && typeof options.logprobs !== "boolean") {
    throw optionError("logprobs", "a boolean", options.logprobs, "Pass true to get each token's logprob");
  }
  if (options.logprobs === false && topLogprobs > 0) {
    throw optionError("topLogprobs", "0 when logprobs is false", topLogprobs, "Set logprobs: true to request alternatives (as OpenAI requires)");
  }
  if (options.seed !== undefined) normaliseSeed(options.seed);
  return {
    temperature: checkTemperature(options.temperature ?? 1),
    topK: checkTopK(options.topK ?? 0),
    topP: checkTopP(options.topP ?? 1),
    minP: checkMinP(options.minP ?? 0),
    repeatPenalty: checkRepeatPenalty(options.repeatPenalty ?? 1),
    repeatLastN: checkLastN(options.repeatLastN ?? DEFAULT_REPEAT_LAST_N),
    presencePenalty: checkAdditivePenalty(options.presencePenalty ?? 0, "presencePenalty"),
    frequencyPenalty: checkAdditivePenalty(options.frequencyPenalty ?? 0, "frequencyPenalty"),
    logitBias: compileLogitBias(options.logitBias ?? {}, vocabSize),
    logprobs: options.logprobs === true || topLogprobs > 0,
    topLogprobs,
    logprobsSource,
  };
}

/**
 * A configured chain of logits processors and a sampler for one vocabulary. Per token it runs, in
 * this order (see {@link SAMPLER_STAGE_ORDER}):
 *
 * 1. copy the row into scratch and sanitise it (NaN → −Infinity, +Infinity → float32 max);
 * 2. repetition penalty over the last `repeatLastN` history tokens (llama.cpp);
 * 3. presence and frequency penalties over the whole history (OpenAI's formula);
 * 4. logit bias (after the penalties, so a bias is an exact additive shift the multiplicative
 *    repetition penalty never rescales; llama.cpp applies bias first);
 * 5. temperature 0: argmax, lowest id on ties — top-k/top-p/min-p cannot change the argmax;
 * 6. top-k, then top-p, then min-p, each on the temperature-1 distribution (llama.cpp's default
 *    order, so the kept set does not depend on temperature; Hugging Face and the seed system apply
 *    temperature before top-p instead);
 * 7. temperature fused into a float64 softmax, one multinomial draw (`rng.nextFloat()` once).
 *
 * The caller's logits are never modified. Nothing vocabulary-sized is allocated per token.
 *
 * @example
 * ```ts
 * const sampler = new SamplerChain({ temperature: 0.8, topK: 40, seed: 7 }, { vocabSize: 32000 });
 * const { token } = sampler.sample(logits, generatedSoFar);
 * ```
 */
export class SamplerChain {
  /** The validated options with defaults. */
  readonly options: ResolvedSamplerOptions;
  /** The vocabulary size every logits row must have. */
  readonly vocabSize: number;
  /** The 64-bit seed of the built-in RNG; undefined when an RNG was injected. */
  readonly seed: bigint | undefined;
  /** The active stages, in run order. */
  readonly stages: readonly SamplerStage[];
  private readonly rng: Rng;
  private readonly scratch: SamplerScratch;
  private readonly work: Float32Array; // [V] logits being processed
  private readonly snapshot: Float32Array; // [V] logits the logprobs are computed from

  constructor(options: SamplerOptions, context: SamplerContext) {
    if (typeof context !== "object" || context === null) {
      throw optionError("context", "an object with vocabSize", context, "Pass { vocabSize: <model vocabulary size> }");
    }
    this.vocabSize = checkVocabSize(context.vocabSize, "context.vocabSize");
    this.options = resolveSamplerOptions(options, this.vocabSize);
    if (context.rng !== undefined) {
      this.rng = context.rng;
      this.seed = undefined;
    } else {
      const seed = options.seed === undefined ? randomSeed() : normaliseSeed(options.seed);
      this.rng = createRng(seed);
      this.seed = seed;
    }
    this.scratch = scratchFor(this.vocabSize, context.scratch);
    this.work = this.scratch.work.subarray(0, this.vocabSize);
    this.snapshot = this.scratch.snapshot.subarray(0, this.vocabSize);
    this.stages = activeStages(this.options);
  }

  /**
   * Picks the next token from one logits row.
   *
   * @param logits - one row of the LM head output, length `vocabSize` (not modified).
   * @param history - token ids the penalties look at, oldest first (OpenAI counts the generated
   *   tokens; pass the prompt too for llama.cpp's behaviour). Read only when a penalty is on.
   * @throws HaloError `SAMPLER_VOCAB_MISMATCH`, `SAMPLER_BAD_TOKEN`, or `SAMPLER_NO_CANDIDATES`
   *   when every logit is −Infinity/NaN after bias.
   * @example
   * ```ts
   * const { token, logprob } = sampler.sample(row, tokens);
   * ```
   */
  sample(logits: Float32Array, history: ArrayLike<number> = []): SampleResult {
    const o = this.options;
    this.process(logits, history);
    const token = o.temperature === 0 ? argmax(this.work) : drawToken(this.work, o.temperature, this.rng, this.scratch);
    if (token < 0) throw noCandidates();
    if (!o.logprobs) return { token };
    // Greedy leaves the processed row untruncated, so it can serve as the logprob row directly.
    const row = o.temperature === 0 && o.logprobsSource === "processed" ? this.work : this.snapshot;
    const { logprob, top } = computeLogprobs(row, token, o.topLogprobs, this.scratch);
    return o.topLogprobs > 0 ? { token, logprob, topLogprobs: top } : { token, logprob };
  }

  /**
   * The exact distribution {@link SamplerChain.sample} would draw from for this row: every stage
   * up to and including the temperature softmax, written into `out` (float64, length V). Greedy
   * (temperature 0) gives a one-hot row at the argmax. Draws no random number. Meant for lossless
   * speculative verification, which needs the target probability of a drafted token and a draw
   * from a residual distribution (see {@link SamplerChain.drawFrom}).
   *
   * @throws HaloError as {@link SamplerChain.sample}.
   * @example
   * ```ts
   * const p = sampler.distribution(logits, history);
   * const accept = rng.nextFloat() < Math.min(1, p[drafted]! / q[drafted]!);
   * ```
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = [], out: Float64Array = new Float64Array(this.vocabSize)): Float64Array {
    checkLogitsLength(out, this.vocabSize, "out.length");
    this.process(logits, history);
    if (this.options.temperature === 0) {
      const token = argmax(this.work);
      if (token < 0) throw noCandidates();
      out.fill(0);
      out[token] = 1;
      return out;
    }
    softmax(this.work, this.options.temperature, out);
    if (out.every((p) => p === 0)) throw noCandidates();
    return out;
  }

  /**
   * Draws a token id from non-negative weights (need not sum to 1) with this sampler's RNG: one
   * `nextFloat()`, the first id whose running sum exceeds `r · Σ`. For residual distributions in
   * speculative sampling, so every random draw of a sequence comes from one seeded stream.
   *
   * @throws HaloError `SAMPLER_VOCAB_MISMATCH` for a wrong length, `SAMPLER_BAD_OPTION` for a
   *   negative or NaN weight, `SAMPLER_NO_CANDIDATES` when every weight is 0.
   * @example
   * ```ts
   * const token = sampler.drawFrom(residual); // residual[i] = max(0, p[i] − q[i])
   * ```
   */
  drawFrom(weights: Float64Array | Float32Array): number {
    checkLogitsLength(weights, this.vocabSize, "weights.length");
    let total = 0;
    let last = -1;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i]!;
      if (!(w >= 0) || w === Number.POSITIVE_INFINITY) {
        throw optionError(`weights[${i}]`, "a finite number ≥ 0", w, "Pass probabilities or non-negative weights");
      }
      total += w;
      if (w > 0) last = i;
    }
    if (last < 0) throw noCandidates();
    const target = this.rng.nextFloat() * total;
    let cumulative = 0;
    for (let i = 0; i <= last; i++) {
      const w = weights[i]!;
      if (w === 0) continue;
      cumulative += w;
      if (cumulative > target) return i;
    }
    return last;
  }

  /** Stages 1–6 into `this.work` (and the logprob snapshot). */
  private process(logits: Float32Array, history: ArrayLike<number>): void {
    checkLogitsLength(logits, this.vocabSize);
    const o = this.options;
    const work = this.work;
    work.set(logits);
    sanitizeLogits(work);
    if (o.logprobs && o.logprobsSource === "raw") this.snapshot.set(work);
    if (o.repeatPenalty !== 1 && o.repeatLastN !== 0) {
      applyRepetitionPenalty(work, history, o.repeatPenalty, o.repeatLastN, this.scratch);
    }
    if (o.presencePenalty !== 0 || o.frequencyPenalty !== 0) {
      applyPresenceFrequencyPenalty(work, history, o.presencePenalty, o.frequencyPenalty, this.scratch);
    }
    if (o.logitBias.size > 0) applyLogitBias(work, o.logitBias);
    if (o.temperature === 0) return; // top-k, top-p and min-p cannot change the argmax
    if (o.logprobs && o.logprobsSource === "processed") this.snapshot.set(work);
    if (o.topK > 0) applyTopK(work, o.topK, this.scratch);
    if (o.topP < 1) applyTopP(work, o.topP, this.scratch);
    if (o.minP > 0) applyMinP(work, o.minP);
  }

  /**
   * Rewinds the RNG to its seed (the built-in RNG, or an injected one that has `reset`), so the
   * same inputs sample the same tokens again. The chain keeps no other state between tokens.
   *
   * @example
   * ```ts
   * sampler.reset();
   * ```
   */
  reset(): void {
    this.rng.reset?.();
  }
}

function noCandidates(): HaloError {
  return new HaloError(SamplerErrorCode.SAMPLER_NO_CANDIDATES, "no token can be sampled: every logit is -Infinity or NaN", {
    field: "logits",
    expected: "at least one finite logit after penalties and logit bias",
    actual: "all -Infinity/NaN",
    hint: "Check the model output for NaN, and that logitBias does not ban every token",
  });
}

function activeStages(o: ResolvedSamplerOptions): SamplerStage[] {
  const on: Record<SamplerStage, boolean> = {
    sanitize: true,
    "repetition-penalty": o.repeatPenalty !== 1 && o.repeatLastN !== 0,
    "presence-frequency-penalty": o.presencePenalty !== 0 || o.frequencyPenalty !== 0,
    "logit-bias": o.logitBias.size > 0,
    greedy: o.temperature === 0,
    "top-k": o.temperature > 0 && o.topK > 0,
    "top-p": o.temperature > 0 && o.topP < 1,
    "min-p": o.temperature > 0 && o.minP > 0,
    "temperature-draw": o.temperature > 0,
  };
  return SAMPLER_STAGE_ORDER.filter((stage) => on[stage]);
}

/**
 * Creates a {@link SamplerChain}: the entry point for sampling one sequence.
 *
 * @example
 * ```ts
 * const sampler = createSampler({ temperature: 0.7, topP: 0.9, seed: 42, topLogprobs: 5 }, { vocabSize: 128256 });
 * const { token, logprob, topLogprobs } = sampler.sample(logits, history);
 * sampler.reset(); // replay the same draws
 * ```
 */
export function createSampler(options: SamplerOptions, context: SamplerContext): SamplerChain {
  return new SamplerChain(options, context);
}
