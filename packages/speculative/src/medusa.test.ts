// Medusa heads on the host: each head's token equals a direct float64 computation of u = n + W_out·SiLU(W_in·n) through
// the LM head, half-precision heads decode as float32 ones, and tensors of the wrong size are refused.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { createMedusaDrafter, type MedusaWeights } from "./medusa.js";
import { SpeculativeErrorCode } from "./errors.js";
import { createRng } from "@halo/sampler";
import type { Draft } from "./drafter.js";

/** A seeded uniform generator in [0, 1) (the sampler's xoshiro128**). */
function rng(seed: number): () => number {
  const source = createRng(seed);
  return () => source.nextFloat();
}

/** Values that IEEE half holds exactly (multiples of 1/64 in (-2, 2)), so the f16 and f32 heads are the same numbers. */
function weights(seed: number, hidden: number, vocab: number, heads: number): MedusaWeights {
  const random = rng(seed);
  const values = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => (Math.round((random() * 2 - 1) * 64 * scale) / 64) as number);
  return {
    hiddenSize: hidden,
    vocabSize: vocab,
    heads: Array.from({ length: heads }, () => ({ wIn: values(hidden * hidden), wOut: values(hidden * hidden) })),
    outputNorm: values(hidden),
    normEps: 1e-5,
    lmHead: values(vocab * hidden),
  };
}

/** Head i's token computed directly in float64 (lowest id on ties). */
function direct(w: MedusaWeights, hidden: Float32Array, i: number): number {
  const h = w.hiddenSize;
  let sum = 0;
  for (const x of hidden) sum += x * x;
  const scale = 1 / Math.sqrt(sum / h + w.normEps);
  const n = Array.from(hidden, (x, j) => x * scale * w.outputNorm[j]!);
  const { wIn, wOut } = w.heads[i]!;
  const inner = Array.from({ length: h }, (_, r) => {
    let acc = 0;
    for (let c = 0; c < h; c++) acc += wIn[r * h + c]! * n[c]!;
    return acc / (1 + Math.exp(-acc));
  });
  const u = Array.from({ length: h }, (_, r) => {
    let acc = n[r]!;
    for (let c = 0; c < h; c++) acc += wOut[r * h + c]! * inner[c]!;
    return acc;
  });
  const head = w.lmHead as Float32Array;
  let best = 0;
  let bestValue = -Infinity;
  for (let v = 0; v < w.vocabSize; v++) {
    let acc = 0;
    for (let c = 0; c < h; c++) acc += head[v * h + c]! * u[c]!;
    if (acc > bestValue) {
      bestValue = acc;
      best = v;
    }
  }
  return best;
}

/** IEEE half bits of a value half holds exactly. */
function halfBits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const exponent = Math.floor(Math.log2(a));
  if (exponent < -14) return sign | Math.round(a / 2 ** -24);
  const mantissa = Math.round((a / 2 ** exponent - 1) * 1024);
  return sign | ((exponent + 15) << 10) | mantissa;
}

describe("createMedusaDrafter", () => {
  it("drafts head i's greedy token for the hidden state it is given, up to maxTokens (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: 1, max: 4 }), (seed, maxTokens) => {
        const w = weights(seed, 12, 40, 4);
        const drafter = createMedusaDrafter(w);
        const random = rng(seed + 1);
        const hidden = Float32Array.from({ length: 12 }, () => random() * 4 - 2);
        const draft = drafter.openSequence().draft({ context: [1, 2, 3], maxTokens, hidden }) as Draft;
        expect(draft.tokens).toEqual(Array.from({ length: maxTokens }, (_, i) => direct(w, hidden, i)));
      }),
      { numRuns: 40 },
    );
  });

  it("reads a half-precision LM head as the same numbers", () => {
    const w = weights(7, 16, 64, 4);
    const half = { ...w, lmHead: Uint16Array.from(w.lmHead as Float32Array, halfBits) };
    const random = rng(99);
    for (let trial = 0; trial < 10; trial++) {
      const hidden = Float32Array.from({ length: 16 }, () => random() * 6 - 3);
      const a = createMedusaDrafter(w)
        .openSequence()
        .draft({ context: [0], maxTokens: 4, hidden }) as Draft;
      const b = createMedusaDrafter(half)
        .openSequence()
        .draft({ context: [0], maxTokens: 4, hidden }) as Draft;
      expect(b.tokens).toEqual(a.tokens);
    }
  });

  it("describes itself: needs hidden states, drafts at most its head count", () => {
    const drafter = createMedusaDrafter({ ...weights(1, 4, 8, 3), source: "x.h1b-medusa" });
    expect(drafter.kind).toBe("medusa");
    expect(drafter.needsHidden).toBe(true);
    expect(drafter.maxDraftTokens).toBe(3);
    expect(drafter.label).toBe("medusa 3 heads (x.h1b-medusa)");
    const draft = drafter.openSequence().draft({ context: [0], maxTokens: 16, hidden: new Float32Array(4).fill(1) }) as Draft;
    expect(draft.tokens).toHaveLength(3);
  });

  it("refuses a missing or wrong-sized hidden state, and weights that do not fit, with SPECULATIVE_DRAFTER_MISMATCH", () => {
    const w = weights(2, 6, 10, 2);
    const sequence = createMedusaDrafter(w).openSequence();
    const code = (f: () => unknown): [string | undefined, string | undefined] => {
      try {
        f();
      } catch (error) {
        if (isHaloError(error)) return [error.code, error.field];
        throw error;
      }
      return [undefined, undefined];
    };
    const mismatch = SpeculativeErrorCode.SPECULATIVE_DRAFTER_MISMATCH;
    expect(code(() => sequence.draft({ context: [0], maxTokens: 2, hidden: null }))).toEqual([mismatch, "hidden"]);
    expect(code(() => sequence.draft({ context: [0], maxTokens: 2, hidden: new Float32Array(5) }))).toEqual([mismatch, "hidden"]);
    const cases: [Partial<MedusaWeights>, string][] = [
      [{ heads: [] }, "heads"],
      [{ heads: [{ wIn: new Float32Array(35), wOut: new Float32Array(36) }] }, "heads[0].wIn"],
      [{ heads: [{ wIn: new Float32Array(36), wOut: new Float32Array(30) }] }, "heads[0].wOut"],
      [{ outputNorm: new Float32Array(5) }, "outputNorm"],
      [{ lmHead: new Float32Array(59) }, "lmHead"],
      [{ normEps: 0 }, "normEps"],
      [{ hiddenSize: 0 }, "hiddenSize"],
      [{ vocabSize: 2.5 }, "vocabSize"],
    ];
    for (const [change, field] of cases)
      expect(
        code(() => createMedusaDrafter({ ...w, ...change })),
        field,
      ).toEqual([mismatch, field]);
  });
});
