// Tests for computeLogprobs: log-softmax values, sorted top-n with ties by id, mass sums to one.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { computeLogprobs } from "./logprobs.js";
import { softmax } from "./softmax.js";
import { alive, logitRow, rankOrder } from "../test/arbitraries.js";

/** Absolute error allowed between log-softmax and log(softmax) in float64. */
const LOGPROB_TOLERANCE = 1e-9;
/** Below this, float64 probabilities are subnormal and lose precision (2^-1022). */
const SMALLEST_NORMAL_F64 = 2.2250738585072014e-308;
/** |Σ exp(logprob) − 1| allowed over a whole vocabulary of ≤ 20 tokens. */
const MASS_TOLERANCE = 1e-12;

describe("computeLogprobs", () => {
  it("returns log-softmax for the token and sorted alternatives with ties by id", () => {
    const { logprob, top } = computeLogprobs(new Float32Array([0, 1, 1, Number.NEGATIVE_INFINITY]), 0, 3);
    const z = Math.log(1 + 2 * Math.E);
    expect(logprob).toBeCloseTo(-z, 12);
    expect(top.map((t) => t.token)).toEqual([1, 2, 0]);
    expect(top[0]!.logprob).toBeCloseTo(1 - z, 12);
  });

  it("omits zero-probability tokens and gives them −Infinity", () => {
    const { logprob, top } = computeLogprobs(new Float32Array([0, Number.NEGATIVE_INFINITY]), 1, 5);
    expect(logprob).toBe(Number.NEGATIVE_INFINITY);
    expect(top).toEqual([{ token: 0, logprob: 0 }]);
  });

  it("agrees with log(softmax), ranks like a full sort, and sums to one in probability space", () => {
    fc.assert(
      fc.property(
        logitRow.filter((row) => row.length <= 20 && alive(row).length > 0),
        fc.nat(),
        (row, pick) => {
          const token = alive(row)[pick % alive(row).length]!;
          const { logprob, top } = computeLogprobs(row, token, Math.min(20, row.length));
          const p = softmax(row);
          // Math.log of a subnormal probability has too few bits to be a reference: compare only normal ones.
          if (Math.abs(logprob - Math.log(p[token]!)) > LOGPROB_TOLERANCE && p[token]! >= SMALLEST_NORMAL_F64) return false;
          if (JSON.stringify(top.map((t) => t.token)) !== JSON.stringify(rankOrder(row))) return false;
          const mass = top.reduce((sum, t) => sum + Math.exp(t.logprob), 0);
          return Math.abs(mass - 1) < MASS_TOLERANCE;
        },
      ),
    );
  });

  it("is exact where the softmax reference underflows to a subnormal (counterexample from fast-check)", () => {
    const { logprob } = computeLogprobs(Float32Array.from([724.5068359375, 1.3827162748114574e-9]), 1, 2);
    expect(logprob).toBeCloseTo(1.3827162748114574e-9 - 724.5068359375, 9);
  });

  it("refuses more than 20 alternatives", () => {
    try {
      computeLogprobs(new Float32Array(30), 0, 21);
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error) && [error.code, error.field]).toEqual(["SAMPLER_BAD_OPTION", "topLogprobs"]);
    }
  });
});
