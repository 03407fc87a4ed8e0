import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { argmaxRows } from "@halo/kernels";
import { createSampler, type SamplerOptions } from "@halo/sampler";
import { SamplingStep } from "./sampling-step.js";
import type { StepOutputs } from "./step-plan.js";

const VOCAB = 16;

function outputsOf(logits: Float32Array | null, argmax: Int32Array | null): StepOutputs {
  const rows = logits !== null ? logits.length / VOCAB : argmax!.length;
  return { positions: Array.from({ length: rows }, (_, i) => i), logits, argmax, hidden: null, length: rows };
}

describe("SamplingStep", () => {
  it("asks for argmax only when the request is plain greedy", () => {
    expect(new SamplingStep({ temperature: 0 }, VOCAB, [1]).output).toBe("argmax");
    for (const options of [
      {},
      { temperature: 0.5 },
      { temperature: 0, logprobs: true },
      { temperature: 0, repeatPenalty: 1.2 },
      { temperature: 0, presencePenalty: 0.5 },
      { temperature: 0, logitBias: { 3: 1 } },
    ] as SamplerOptions[]) {
      expect(new SamplingStep(options, VOCAB, [1]).output, JSON.stringify(options)).toBe("logits");
    }
  });

  it("samples logits exactly as the sampler chain with the same history, and plain greedy's argmax equals its sampled token", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -20, max: 20, noNaN: true }), { minLength: VOCAB * 6, maxLength: VOCAB * 6 }),
        fc.integer({ min: 0, max: 1000 }),
        (values, seed) => {
          const rows = Float32Array.from(values);
          const options: SamplerOptions = { temperature: 0.8, repeatPenalty: 1.3, seed };
          const step = new SamplingStep(options, VOCAB, [3, 4]);
          const chain = createSampler(options, { vocabSize: VOCAB });
          const history = [3, 4];
          const greedy = new SamplingStep({ temperature: 0 }, VOCAB, []);
          const argmax = argmaxRows(rows, 6, VOCAB);
          for (let r = 0; r < 6; r++) {
            const row = rows.slice(r * VOCAB, (r + 1) * VOCAB);
            const expected = chain.sample(row, history).token;
            history.push(expected);
            expect(step.next(outputsOf(row, null), 0).token).toBe(expected);
            expect(greedy.next(outputsOf(null, argmax.subarray(r, r + 1)), 0).token).toBe(greedy.next(outputsOf(row, null), 0).token);
          }
        },
      ),
    );
  });

  it("plain greedy: the argmax path and the sampler's greedy agree on edge values too (NaN, ±Infinity, ±FLOAT32_MAX, −0), token or refusal", () => {
    const edge = fc.oneof(fc.integer({ min: -2, max: 2 }), fc.constantFrom(Number.NaN, Infinity, -Infinity, 3.4028234663852886e38, -3.4028234663852886e38, -0));
    const outcome = (run: () => number): string => {
      try {
        return `token ${run()}`;
      } catch (error) {
        return isHaloError(error) ? error.code : String(error);
      }
    };
    fc.assert(
      fc.property(fc.array(edge, { minLength: VOCAB, maxLength: VOCAB }), (values) => {
        const row = Float32Array.from(values);
        const viaArgmax = outcome(() => new SamplingStep({ temperature: 0 }, VOCAB, []).next(outputsOf(null, argmaxRows(row, 1, VOCAB)), 0).token);
        const viaSampler = outcome(() => new SamplingStep({ temperature: 0 }, VOCAB, []).next(outputsOf(row, null), 0).token);
        expect(viaArgmax).toBe(viaSampler);
      }),
    );
  });

  it("refuses an argmax that names no token (a row without a finite logit) as the sampler does", () => {
    const step = new SamplingStep({ temperature: 0 }, VOCAB, []);
    try {
      step.next(outputsOf(null, Int32Array.of(-1)), 0);
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error) && error.code).toBe("SAMPLER_NO_CANDIDATES");
    }
    expect(() => new SamplingStep({ temperature: 0 }, VOCAB, []).next(outputsOf(new Float32Array(VOCAB).fill(Number.NaN), null), 0)).toThrow(
      /no token can be sampled/,
    );
    // A sampling request never takes an argmax in place of the logits it needs.
    expect(() => new SamplingStep({ temperature: 1 }, VOCAB, []).next(outputsOf(null, Int32Array.of(1)), 0)).toThrow(/internal/);
  });
});
