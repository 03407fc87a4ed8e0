// The lossless rule: whatever was drafted, the emitted token is distributed as the target p (chi-square over 20k draws
// with the real seeded sampler chain), the drafted token is accepted with probability p(d), and a seeded run repeats.
import { describe, expect, it } from "vitest";
import { createRng, createSampler, type SamplerChain, type SamplerOptions } from "@halo/sampler";
import { chiSquareSurvival, goodnessOfFit } from "../../../scripts/chi-square.js";
import { verifyRow, type RowVerdict } from "./verify.js";

/** A verification rule under test: the row's verdict from the sampler, its logits, history and the drafted token. */
type Rule = (sampler: SamplerChain, logits: Float32Array, history: readonly number[], drafted: number | null) => RowVerdict;

/** halo's rule: sample the row as plain decoding does, accept the draft when it is the sample. */
const halo: Rule = (sampler, logits, history, drafted) => verifyRow(() => sampler.sample(logits, history), drafted);

/** The significance every distribution test here uses: a correct rule fails one test in 10 000 seeds. */
const ALPHA = 1e-4;
const DRAWS = 20_000;

const LOGITS = Float32Array.of(2.0, 1.2, 0.9, 0.1, -0.4, -1.5, 0.5, -3);
const VOCAB = LOGITS.length;

/** The target distribution of a row as the chain defines it (independent of any draw). */
function target(options: SamplerOptions, history: readonly number[] = []): Float64Array {
  return createSampler({ ...options, seed: 0 }, { vocabSize: VOCAB }).distribution(LOGITS, history);
}

/** Emitted-token histogram and acceptance count of `draws` verifications of one row with `drafted`. */
function histogram(
  options: SamplerOptions,
  drafted: number | null,
  draws = DRAWS,
  history: readonly number[] = [],
  rule: Rule = halo,
): { counts: number[]; accepted: number } {
  const sampler = createSampler({ ...options, seed: 20260101 }, { vocabSize: VOCAB });
  const counts = new Array<number>(VOCAB).fill(0);
  let accepted = 0;
  for (let i = 0; i < draws; i++) {
    const verdict = rule(sampler, LOGITS, history, drafted);
    counts[verdict.result.token]!++;
    if (verdict.accepted) accepted++;
    if (verdict.accepted) expect(verdict.result.token).toBe(drafted);
  }
  return { counts, accepted };
}

describe("chiSquareSurvival (the test's own yardstick)", () => {
  it("matches tabulated chi-square quantiles", () => {
    // Critical values for α = 1e-4 and 0.05 from standard tables.
    expect(chiSquareSurvival(15.137, 1)).toBeCloseTo(1e-4, 6);
    expect(chiSquareSurvival(25.745, 5)).toBeCloseTo(1e-4, 6);
    expect(chiSquareSurvival(33.72, 9)).toBeCloseTo(1e-4, 6);
    expect(chiSquareSurvival(3.841, 1)).toBeCloseTo(0.05, 4);
    expect(chiSquareSurvival(11.07, 5)).toBeCloseTo(0.05, 4);
    expect(chiSquareSurvival(2, 2)).toBeCloseTo(Math.exp(-1), 12);
  });
});

describe("verifyRow", () => {
  const cases: [string, SamplerOptions][] = [
    ["temperature 1", { temperature: 1 }],
    ["temperature 0.7 with top-k 5", { temperature: 0.7, topK: 5 }],
    ["temperature 1.3 with top-p 0.9 and min-p", { temperature: 1.3, topP: 0.9, minP: 0.02 }],
  ];
  for (const [name, options] of cases) {
    it(`emits tokens distributed as p, whatever was drafted (${name}; chi-square over ${DRAWS} draws, α = ${ALPHA})`, () => {
      const p = target(options);
      const ranked = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!);
      // The most likely token, a middling one, an unlikely one, one the filters removed (when any), and no draft.
      for (const drafted of [ranked[0]!, ranked[2]!, ranked[5]!, ranked[VOCAB - 1]!, null]) {
        const { counts, accepted } = histogram(options, drafted);
        const fit = goodnessOfFit(counts, p);
        expect(fit.pValue, `drafted ${drafted}: χ² = ${fit.statistic.toFixed(2)} on ${fit.df} df`).toBeGreaterThan(ALPHA);
        if (drafted === null) {
          expect(accepted).toBe(0);
          continue;
        }
        // Accepted with probability p(d): a binomial count, within 4.5 standard deviations (two-sided α ≈ 7e-6).
        const pd = p[drafted]!;
        expect(Math.abs(accepted - DRAWS * pd), `drafted ${drafted}, p(d) = ${pd}`).toBeLessThanOrEqual(4.5 * Math.sqrt(DRAWS * pd * (1 - pd)) + 1e-9);
        if (pd === 0) expect(counts[drafted]).toBe(0);
      }
    });
  }

  it("has the power to reject a plausible wrong rule (resampling from p itself after a rejection)", () => {
    // P(d) = p(d) + (1 − p(d))·p(d) under this rule: a biased distribution the same test must refuse.
    const coin = createRng(77);
    const wrong: Rule = (sampler, logits, history, drafted) => {
      const p = sampler.distribution(logits, history);
      if (drafted !== null && coin.nextFloat() < p[drafted]!) return { result: { token: drafted }, accepted: true };
      return { result: { token: sampler.drawFrom(p) }, accepted: false };
    };
    const options = { temperature: 1 };
    const p = target(options);
    const middling = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!)[2]!;
    const fit = goodnessOfFit(histogram(options, middling, DRAWS, [], wrong).counts, p);
    expect(fit.pValue).toBeLessThan(ALPHA);
  });

  it("reads penalties from the history it is given", () => {
    const options: SamplerOptions = { temperature: 1, repeatPenalty: 1.8, presencePenalty: 0.5 };
    const history = [0, 1, 0];
    const p = target(options, history);
    // The penalties moved probability away from tokens 0 and 1.
    expect(p[0]!).toBeLessThan(target({ temperature: 1 })[0]!);
    const { counts } = histogram(options, 0, DRAWS, history);
    const fit = goodnessOfFit(counts, p);
    expect(fit.pValue, `χ² = ${fit.statistic.toFixed(2)} on ${fit.df} df`).toBeGreaterThan(ALPHA);
  });

  it("accepts a greedy row's argmax always and anything else never", () => {
    const argmax = 0;
    const accepted = histogram({ temperature: 0 }, argmax, 200);
    expect(accepted.accepted).toBe(200);
    expect(accepted.counts[argmax]).toBe(200);
    const other = histogram({ temperature: 0 }, 3, 200);
    expect(other.accepted).toBe(0);
    expect(other.counts[argmax]).toBe(200);
  });

  it("ignores a drafted id outside the vocabulary (draws from p)", () => {
    for (const drafted of [-1, VOCAB, 1e9]) {
      const sampler = createSampler({ temperature: 1, seed: 3 }, { vocabSize: VOCAB });
      const verdict = halo(sampler, LOGITS, [], drafted);
      expect(verdict.accepted).toBe(false);
      expect(verdict.result.token).toBeGreaterThanOrEqual(0);
      expect(verdict.result.token).toBeLessThan(VOCAB);
    }
  });

  it("repeats exactly with the same seed, and emits exactly plain sampling's tokens from the same seed", () => {
    const run = (seed: number): string => {
      const sampler = createSampler({ temperature: 1, seed }, { vocabSize: VOCAB });
      const out: string[] = [];
      for (let i = 0; i < 300; i++) {
        const v = halo(sampler, LOGITS, [], i % 3 === 2 ? null : i % VOCAB);
        out.push(`${v.result.token}${v.accepted ? "+" : "-"}`);
      }
      return out.join(" ");
    };
    expect(run(42)).toBe(run(42));
    expect(run(42)).not.toBe(run(43));
    // Whatever is drafted, the emitted tokens are the seeded stream of plain sampling, one draw per token.
    const plain = createSampler({ temperature: 0.8, topK: 6, seed: 11 }, { vocabSize: VOCAB });
    const speculative = createSampler({ temperature: 0.8, topK: 6, seed: 11 }, { vocabSize: VOCAB });
    for (let i = 0; i < 300; i++) {
      const drafted = i % 4 === 3 ? null : (i * 7) % VOCAB;
      expect(halo(speculative, LOGITS, [], drafted).result.token).toBe(plain.sample(LOGITS).token);
    }
  });

  it("reports the emitted token's logprob under p, as sampling would", () => {
    const options: SamplerOptions = { temperature: 1, logprobs: true, topLogprobs: 2 };
    const p = target(options);
    const sampler = createSampler({ ...options, seed: 9 }, { vocabSize: VOCAB });
    for (let i = 0; i < 50; i++) {
      const { result } = halo(sampler, LOGITS, [], i % VOCAB);
      expect(result.logprob).toBeCloseTo(Math.log(p[result.token]!), 5);
      expect(result.topLogprobs).toHaveLength(2);
    }
  });
});
