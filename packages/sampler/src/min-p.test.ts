// Tests for applyMinP: a token survives iff p_i ≥ minP · p_max.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyMinP } from "./min-p.js";
import { softmax } from "./softmax.js";
import { alive, logitRow } from "../test/arbitraries.js";

describe("applyMinP", () => {
  it("drops tokens below the threshold", () => {
    const row = new Float32Array([0, Math.log(0.5), Math.log(0.01)]);
    applyMinP(row, 0.05);
    expect(alive(row)).toEqual([0, 1]);
  });

  it("keeps every token tied with the top one at minP = 1 (the threshold is inclusive)", () => {
    const row = new Float32Array([1, 1, 0]);
    applyMinP(row, 1);
    expect(alive(row)).toEqual([0, 1]);
  });

  it("keeps p_i ≥ minP·p_max and drops the rest (probabilities from softmax)", () => {
    fc.assert(
      fc.property(logitRow, fc.double({ min: 0, max: 1, noNaN: true }), (row, minP) => {
        const probabilities = softmax(row);
        let pMax = 0;
        for (const p of probabilities) pMax = Math.max(pMax, p);
        const before = Float32Array.from(row);
        applyMinP(row, minP);
        for (let i = 0; i < row.length; i++) {
          if (before[i] === Number.NEGATIVE_INFINITY) continue;
          const ratio = probabilities[i]! / pMax;
          if (Math.abs(ratio - minP) <= RATIO_TOLERANCE * Math.max(minP, Number.MIN_VALUE)) continue; // on the boundary
          const kept = row[i] !== Number.NEGATIVE_INFINITY;
          if (kept !== ratio >= minP) return false;
          if (kept && row[i] !== before[i]) return false;
        }
        return alive(before).length === 0 || alive(row).length > 0;
      }),
    );
  });

  it("rejects minP outside [0, 1]", () => {
    for (const bad of [-0.01, 1.5, Number.NaN]) {
      try {
        applyMinP(new Float32Array(4), bad);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field]).toEqual(["SAMPLER_BAD_OPTION", "minP"]);
      }
    }
  });
});

/** Relative slack between exp(l − max) and p_i / p_max computed through a normalised softmax. */
const RATIO_TOLERANCE = 1e-12;
