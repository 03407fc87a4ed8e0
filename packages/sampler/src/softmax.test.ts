// Tests for softmax, logSumExp and drawToken, including a chi-square check of draw frequencies.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createRng } from "./rng.js";
import { createSamplerScratch } from "./scratch.js";
import { drawToken, logSumExp, softmax } from "./softmax.js";
import { alive, chiSquare, logitRow } from "../test/arbitraries.js";

/** |Σp − 1| allowed for a float64 softmax of ≤ 64 terms. */
const SUM_TOLERANCE = 1e-12;
/** Chi-square critical value, 7 degrees of freedom, p = 0.001 (a fixed seed makes it deterministic). */
const CHI_SQUARE_CRITICAL_DF7_P001 = 24.322;

describe("softmax / logSumExp", () => {
  it("sums to one and gives −Infinity probability 0", () => {
    fc.assert(
      fc.property(logitRow, fc.double({ min: 0.05, max: 5, noNaN: true }), (row, t) => {
        const p = softmax(row, t);
        if (alive(row).length === 0) return p.every((x) => x === 0);
        const sum = p.reduce((a, b) => a + b, 0);
        return Math.abs(sum - 1) < SUM_TOLERANCE && row.every((v, i) => v !== Number.NEGATIVE_INFINITY || p[i] === 0);
      }),
    );
  });

  it("logSumExp is stable for huge logits", () => {
    expect(logSumExp(new Float32Array([0, 0]))).toBeCloseTo(Math.LN2, 12);
    expect(logSumExp(new Float32Array([3e38, 3e38]))).toBe(Math.fround(3e38) + Math.LN2);
    expect(logSumExp(new Float32Array([Number.NEGATIVE_INFINITY]))).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe("drawToken", () => {
  it("never returns a −Infinity token and returns −1 when none is finite", () => {
    fc.assert(
      fc.property(logitRow, fc.integer(), (row, seed) => {
        const rng = createRng(seed);
        const token = drawToken(row, 0.7, rng);
        return alive(row).length === 0 ? token === -1 : row[token]! > Number.NEGATIVE_INFINITY;
      }),
    );
  });

  it("draw frequencies converge to the softmax probabilities (chi-square, fixed seed)", () => {
    const row = new Float32Array([2, 1, 0.5, 0, -0.5, -1, 1.5, 0.25, Number.NEGATIVE_INFINITY]);
    const temperature = 0.9;
    const probabilities = softmax(row, temperature);
    const rng = createRng(20261123);
    const scratch = createSamplerScratch(row.length);
    const draws = 50_000;
    const counts = new Array<number>(row.length).fill(0);
    for (let i = 0; i < draws; i++) counts[drawToken(row, temperature, rng, scratch)]!++;
    expect(counts[8]).toBe(0);
    expect(chiSquare(counts, probabilities, draws)).toBeLessThan(CHI_SQUARE_CRITICAL_DF7_P001);
  });
});
