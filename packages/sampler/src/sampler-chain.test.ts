// Tests for the sampler chain: validation, determinism, golden ids, greedy, truncation statistics, logprobs.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { createSampler, resolveSamplerOptions, type SamplerOptions } from "./sampler-chain.js";
import { createRng, type Rng } from "./rng.js";
import { createSamplerScratch } from "./scratch.js";
import { softmax } from "./softmax.js";
import { applyRepetitionPenalty } from "./repetition-penalty.js";
import { chiSquare, hostileRow } from "../test/arbitraries.js";

/** Chi-square critical value, 3 degrees of freedom, p = 0.001. */
const CHI_SQUARE_CRITICAL_DF3_P001 = 16.266;
/** Chi-square critical value, 1 degree of freedom, p = 0.001. */
const CHI_SQUARE_CRITICAL_DF1_P001 = 10.828;
/** Absolute difference allowed between two float64 softmaxes of the same masked row. */
const PROBABILITY_TOLERANCE = 1e-15;
/** Absolute tolerance for logprobs recomputed in float64 by the test. */
const LOGPROB_TOLERANCE = 1e-9;

/** A deterministic pseudo-model: V logits from a seeded RNG (sum of four uniforms, scaled). */
function syntheticRow(vocabSize: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const row = new Float32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) row[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 2) * 4;
  return row;
}

function runSequence(options: SamplerOptions, steps: number, vocabSize = 1000): number[] {
  const sampler = createSampler(options, { vocabSize });
  const history: number[] = [];
  for (let step = 0; step < steps; step++) history.push(sampler.sample(syntheticRow(vocabSize, step), history).token);
  return history;
}

function expectError(run: () => unknown, code: string, field: string): void {
  try {
    run();
    expect.unreachable(`expected ${code} for ${field}`);
  } catch (error) {
    expect(isHaloError(error)).toBe(true);
    if (!isHaloError(error)) return;
    expect([error.code, error.field]).toEqual([code, field]);
    if (code === "SAMPLER_BAD_OPTION") {
      expect(error.expected).toBeDefined();
      expect(error.actual).toBeDefined();
    }
  }
}

describe("resolveSamplerOptions", () => {
  it("fills OpenAI's defaults", () => {
    const o = resolveSamplerOptions({}, 10);
    expect([o.temperature, o.topK, o.topP, o.minP, o.repeatPenalty, o.repeatLastN, o.presencePenalty, o.frequencyPenalty]).toEqual([1, 0, 1, 0, 1, 64, 0, 0]);
    expect([o.logprobs, o.topLogprobs, o.logprobsSource, o.logitBias.size]).toEqual([false, 0, "processed", 0]);
    expect(resolveSamplerOptions({ topLogprobs: 3 }, 10).logprobs).toBe(true);
  });

  it("refuses every impossible option with field, expected and actual", () => {
    const cases: Array<[SamplerOptions, string, string]> = [
      [{ temperature: -1 }, "SAMPLER_BAD_OPTION", "temperature"],
      [{ temperature: Number.NaN }, "SAMPLER_BAD_OPTION", "temperature"],
      [{ topP: 0 }, "SAMPLER_BAD_OPTION", "topP"],
      [{ topP: 1.5 }, "SAMPLER_BAD_OPTION", "topP"],
      [{ topK: -3 }, "SAMPLER_BAD_OPTION", "topK"],
      [{ topK: 2.5 }, "SAMPLER_BAD_OPTION", "topK"],
      [{ minP: -0.1 }, "SAMPLER_BAD_OPTION", "minP"],
      [{ minP: 1.1 }, "SAMPLER_BAD_OPTION", "minP"],
      [{ repeatPenalty: 0 }, "SAMPLER_BAD_OPTION", "repeatPenalty"],
      [{ repeatPenalty: Number.POSITIVE_INFINITY }, "SAMPLER_BAD_OPTION", "repeatPenalty"],
      [{ repeatLastN: -5 }, "SAMPLER_BAD_OPTION", "repeatLastN"],
      [{ presencePenalty: Number.NaN }, "SAMPLER_BAD_OPTION", "presencePenalty"],
      [{ frequencyPenalty: Number.NEGATIVE_INFINITY }, "SAMPLER_BAD_OPTION", "frequencyPenalty"],
      [{ logitBias: { "10": 1 } }, "SAMPLER_VOCAB_MISMATCH", 'logitBias["10"]'],
      [{ logitBias: { "1.5": 1 } }, "SAMPLER_VOCAB_MISMATCH", 'logitBias["1.5"]'],
      [{ logitBias: { "3": 200 } }, "SAMPLER_BAD_OPTION", "logitBias[3]"],
      [{ topLogprobs: 21 }, "SAMPLER_BAD_OPTION", "topLogprobs"],
      [{ logprobs: false, topLogprobs: 2 }, "SAMPLER_BAD_OPTION", "topLogprobs"],
      [{ seed: 0.5 }, "SAMPLER_BAD_OPTION", "seed"],
      [{ logprobsSource: "post" as "raw" }, "SAMPLER_BAD_OPTION", "logprobsSource"],
      [{ top_p: 0.9 } as unknown as SamplerOptions, "SAMPLER_BAD_OPTION", "top_p"],
    ];
    for (const [options, code, field] of cases) expectError(() => resolveSamplerOptions(options, 10), code, field);
    expectError(() => createSampler({}, { vocabSize: 0 }), "SAMPLER_BAD_OPTION", "context.vocabSize");
  });
});

describe("SamplerChain", () => {
  it("rejects a logits row of the wrong length and bad history ids", () => {
    const sampler = createSampler({ seed: 1, repeatPenalty: 1.1 }, { vocabSize: 8 });
    expectError(() => sampler.sample(new Float32Array(7)), "SAMPLER_VOCAB_MISMATCH", "logits.length");
    expectError(() => sampler.sample(new Float32Array(8), [8]), "SAMPLER_BAD_TOKEN", "history[0]");
  });

  it("gives the same tokens for the same seed and logits, and replays after reset", () => {
    const options = { temperature: 0.8, topK: 40, topP: 0.95, seed: 42 };
    expect(runSequence(options, 24)).toEqual(runSequence(options, 24));
    expect(runSequence(options, 24)).not.toEqual(runSequence({ ...options, seed: 43 }, 24));
    const sampler = createSampler(options, { vocabSize: 1000 });
    const row = syntheticRow(1000, 5);
    const first = Array.from({ length: 10 }, () => sampler.sample(row).token);
    sampler.reset();
    expect(Array.from({ length: 10 }, () => sampler.sample(row).token)).toEqual(first);
  });

  it("produces frozen token ids for a fixed seed (golden run)", () => {
    const options = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1, seed: 42 };
    expect(runSequence(options, 16)).toEqual(GOLDEN_SEED_42);
    expect(runSequence({ temperature: 1, seed: 7n }, 16)).toEqual(GOLDEN_PLAIN_SEED_7);
  });

  it("does not modify the caller's logits, and sharing scratch between samplers changes nothing", () => {
    const row = syntheticRow(500, 3);
    const copy = Float32Array.from(row);
    const scratch = createSamplerScratch(500);
    const options = { temperature: 0.7, topK: 20, topP: 0.9, minP: 0.02, presencePenalty: 0.5, logitBias: { "7": 3 }, seed: 9 };
    const a = createSampler(options, { vocabSize: 500, scratch });
    const b = createSampler({ ...options, seed: 10 }, { vocabSize: 500, scratch });
    const alone = createSampler(options, { vocabSize: 500 });
    for (let i = 0; i < 20; i++) {
      expect(a.sample(row, [1, 2, 3]).token).toBe(alone.sample(row, [1, 2, 3]).token);
      b.sample(row, [4, 5]);
    }
    expect(row).toEqual(copy);
  });

  it("greedy takes the argmax after penalties and bias, lowest id on ties, and draws nothing", () => {
    let draws = 0;
    const counting: Rng = { nextUint32: () => (draws++, 0), nextFloat: () => (draws++, 0) };
    const sampler = createSampler({ temperature: 0, repeatPenalty: 2, logitBias: { "3": 1 } }, { vocabSize: 5, rng: counting });
    // Logit 3 at id 0 is halved by the penalty to 1.5; ids 1 and 2 tie at 2 and id 3 reaches 2
    // with its bias, so the lowest of the three wins. Without history id 0 keeps 3 and wins.
    const row = new Float32Array([3, 2, 2, 1, Number.NaN]);
    expect(sampler.sample(row, [0]).token).toBe(1);
    expect(sampler.sample(row, []).token).toBe(0);
    expect(draws).toBe(0);
    expect(sampler.seed).toBeUndefined();
  });

  it("throws SAMPLER_NO_CANDIDATES when the bias bans every token", () => {
    const sampler = createSampler({ logitBias: { "0": Number.NEGATIVE_INFINITY, "1": -Infinity }, seed: 1 }, { vocabSize: 2 });
    expectError(() => sampler.sample(new Float32Array([1, 2])), "SAMPLER_NO_CANDIDATES", "logits");
    const greedy = createSampler({ temperature: 0 }, { vocabSize: 2 });
    expectError(() => greedy.sample(new Float32Array([Number.NaN, Number.NaN])), "SAMPLER_NO_CANDIDATES", "logits");
  });

  it("samples top-k ∩ top-p survivors with softmax(T) frequencies (chi-square, fixed seed)", () => {
    // Rank order: ids 5, 1, 3, 0, 2, 4, 6. top-k 5 keeps 5,1,3,0,2; top-p 0.9 at T=1 then keeps the
    // prefix 5,1,3,0 (masses computed below); temperature 0.7 reshapes only those four.
    const row = new Float32Array([0.5, 1.5, 0, 1, -1, 2, -2]);
    const t1 = softmax(row);
    const massOf = (ids: number[]): number => ids.reduce((s, i) => s + t1[i]!, 0);
    const kTotal = massOf([5, 1, 3, 0, 2]);
    expect(massOf([5, 1, 3]) / kTotal).toBeLessThan(0.9);
    expect(massOf([5, 1, 3, 0]) / kTotal).toBeGreaterThanOrEqual(0.9);
    const kept = [5, 1, 3, 0];
    const masked = row.map((v, i) => (kept.includes(i) ? v : Number.NEGATIVE_INFINITY));
    const expected = softmax(masked, 0.7);
    const sampler = createSampler({ temperature: 0.7, topK: 5, topP: 0.9, seed: 77 }, { vocabSize: 7 });
    const draws = 40_000;
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < draws; i++) counts[sampler.sample(row).token]!++;
    expect([counts[2], counts[4], counts[6]]).toEqual([0, 0, 0]);
    expect(chiSquare(counts, expected, draws)).toBeLessThan(CHI_SQUARE_CRITICAL_DF3_P001);
  });

  it("reports processed logprobs (after penalties and bias, before truncation) or raw ones", () => {
    const row = syntheticRow(300, 11);
    const history = [3, 3, 7];
    const options = { temperature: 0.5, topK: 3, repeatPenalty: 1.3, logitBias: { "9": 2 }, topLogprobs: 5, seed: 5 } as const;
    const processed = createSampler(options, { vocabSize: 300 }).sample(row, history);
    const raw = createSampler({ ...options, logprobsSource: "raw" }, { vocabSize: 300 }).sample(row, history);
    expect(raw.token).toBe(processed.token);
    const penalised = Float32Array.from(row);
    applyRepetitionPenalty(penalised, history, 1.3, 64);
    penalised[9] = Math.fround(penalised[9]! + 2);
    const pProcessed = softmax(penalised);
    const pRaw = softmax(row);
    expect(processed.logprob!).toBeCloseTo(Math.log(pProcessed[processed.token]!), -Math.log10(LOGPROB_TOLERANCE));
    expect(raw.logprob!).toBeCloseTo(Math.log(pRaw[raw.token]!), -Math.log10(LOGPROB_TOLERANCE));
    expect(processed.topLogprobs).toHaveLength(5);
    const lps = processed.topLogprobs!.map((t) => t.logprob);
    expect([...lps].sort((a, b) => b - a)).toEqual(lps);
    expect(createSampler({ seed: 1 }, { vocabSize: 300 }).sample(row)).not.toHaveProperty("logprob");
    expect(createSampler({ seed: 1, logprobs: true }, { vocabSize: 300 }).sample(row)).not.toHaveProperty("topLogprobs");
  });

  it("distribution() is what sample() draws from, and drawFrom() follows given weights", () => {
    const row = new Float32Array([0.5, 1.5, 0, 1, -1, 2, -2]);
    const sampler = createSampler({ temperature: 0.7, topK: 5, topP: 0.9, seed: 3 }, { vocabSize: 7 });
    const p = sampler.distribution(row);
    const masked = row.map((v, i) => ([5, 1, 3, 0].includes(i) ? v : Number.NEGATIVE_INFINITY));
    const expected = softmax(masked, 0.7);
    for (let i = 0; i < 7; i++) expect(Math.abs(p[i]! - expected[i]!)).toBeLessThan(PROBABILITY_TOLERANCE);
    const greedy = createSampler({ temperature: 0 }, { vocabSize: 7 });
    expect(Array.from(greedy.distribution(row))).toEqual([0, 0, 0, 0, 0, 1, 0]);
    const weights = new Float64Array([0, 3, 0, 1, 0, 0, 0]);
    const draws = 20_000;
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < draws; i++) counts[sampler.drawFrom(weights)]!++;
    expect(chiSquare(counts, [0, 0.75, 0, 0.25, 0, 0, 0], draws)).toBeLessThan(CHI_SQUARE_CRITICAL_DF1_P001);
    expectError(() => sampler.drawFrom(new Float64Array(7)), "SAMPLER_NO_CANDIDATES", "logits");
    expectError(() => sampler.drawFrom(new Float64Array([0, -1, 0, 0, 0, 0, 0])), "SAMPLER_BAD_OPTION", "weights[1]");
    expectError(() => sampler.distribution(row, [], new Float64Array(3)), "SAMPLER_VOCAB_MISMATCH", "out.length");
  });

  it("lists its active stages in the documented order", () => {
    expect(createSampler({ temperature: 0 }, { vocabSize: 4 }).stages).toEqual(["sanitize", "greedy"]);
    expect(createSampler({ topK: 5, minP: 0.1, frequencyPenalty: 1, logitBias: { "1": 1 } }, { vocabSize: 4 }).stages).toEqual([
      "sanitize",
      "presence-frequency-penalty",
      "logit-bias",
      "top-k",
      "min-p",
      "temperature-draw",
    ]);
  });

  it("returns a valid token and no NaN logprob for hostile rows and random options", () => {
    const optionsArbitrary = fc.record(
      {
        temperature: fc.constantFrom(0, 0.01, 0.7, 1, 3),
        topK: fc.integer({ min: 0, max: 80 }),
        topP: fc.double({ min: 0.01, max: 1, noNaN: true }),
        minP: fc.double({ min: 0, max: 1, noNaN: true }),
        repeatPenalty: fc.double({ min: 0.01, max: 10, noNaN: true }),
        presencePenalty: fc.double({ min: -2, max: 2, noNaN: true }),
        frequencyPenalty: fc.double({ min: -2, max: 2, noNaN: true }),
        seed: fc.integer(),
        topLogprobs: fc.integer({ min: 0, max: 20 }),
      },
      { requiredKeys: ["seed"] },
    );
    fc.assert(
      fc.property(hostileRow, optionsArbitrary, fc.array(fc.nat(), { maxLength: 30 }), (row, options, raw) => {
        const vocabSize = row.length;
        const history = raw.map((t) => t % vocabSize);
        const sampler = createSampler({ ...options, logprobs: true }, { vocabSize });
        let result;
        try {
          result = sampler.sample(row, history);
        } catch (error) {
          // Only legitimate when nothing in the row can be chosen.
          return isHaloError(error) && error.code === "SAMPLER_NO_CANDIDATES" && row.every((v) => Number.isNaN(v) || v === -Infinity);
        }
        const { token, logprob, topLogprobs = [] } = result;
        if (!(Number.isInteger(token) && token >= 0 && token < vocabSize)) return false;
        if (Number.isNaN(row[token]!) || row[token] === Number.NEGATIVE_INFINITY) return false;
        if (logprob === undefined || Number.isNaN(logprob) || logprob > 0) return false;
        return topLogprobs.every((t) => !Number.isNaN(t.logprob) && t.logprob <= 0);
      }),
      { numRuns: 300 },
    );
  });
});

// Frozen from this implementation; GOLDEN_PLAIN_SEED_7 was also reproduced by an independent Python
// transcription (SplitMix64 + xoshiro128** + float64 softmax draw) over the same synthetic rows.
const GOLDEN_SEED_42 = [353, 43, 646, 574, 711, 741, 661, 84, 479, 493, 208, 155, 970, 760, 546, 764];
const GOLDEN_PLAIN_SEED_7 = [411, 700, 493, 766, 120, 749, 151, 402, 479, 890, 215, 644, 112, 266, 599, 653];
