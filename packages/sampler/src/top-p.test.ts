// Tests for applyTopP: the smallest rank-ordered prefix with mass ≥ p, against a full-sort reference.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyTopP } from "./top-p.js";
import { alive, logitRow, rankOrder } from "../test/arbitraries.js";

/** Full-sort reference: weights exp(l − max), total in id order, cumulate in rank order. */
function referenceTopP(row: Float32Array, p: number): number[] {
  const order = rankOrder(row);
  if (order.length <= 1 || p === 1) return order.sort((a, b) => a - b);
  const max = row[order[0]!]!;
  let total = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > Number.NEGATIVE_INFINITY) total += Math.exp(row[i]! - max);
  let cumulative = 0;
  const kept: number[] = [];
  for (const id of order) {
    kept.push(id);
    cumulative += Math.exp(row[id]! - max);
    if (cumulative >= p * total) break;
  }
  return kept.sort((a, b) => a - b);
}

describe("applyTopP", () => {
  it("keeps the smallest prefix reaching p", () => {
    const row = new Float32Array([Math.log(0.2), Math.log(0.5), Math.log(0.3)]);
    applyTopP(row, 0.8);
    expect(alive(row)).toEqual([1, 2]);
    const again = new Float32Array([Math.log(0.2), Math.log(0.5), Math.log(0.3)]);
    applyTopP(again, 0.5);
    expect(alive(again)).toEqual([1]);
  });

  it("breaks ties at the boundary by lower id", () => {
    const row = new Float32Array([0, 0, 0, 0]);
    applyTopP(row, 0.5);
    expect(alive(row)).toEqual([0, 1]);
  });

  it("matches the full-sort reference and the prefix is minimal", () => {
    fc.assert(
      fc.property(logitRow, fc.double({ min: 0.01, max: 1, noNaN: true }), (row, p) => {
        const before = Float32Array.from(row);
        const expected = referenceTopP(before, p);
        applyTopP(row, p);
        const kept = alive(row);
        if (JSON.stringify(kept) !== JSON.stringify(expected)) return false;
        if (kept.some((id) => row[id] !== before[id])) return false;
        // Minimality: dropping the worst kept token falls short of p (within float rounding).
        if (kept.length < 2) return true;
        const order = rankOrder(before);
        const max = before[order[0]!]!;
        let total = 0;
        for (const id of order) total += Math.exp(before[id]! - max);
        let withoutLast = 0;
        for (const id of order.slice(0, kept.length - 1)) withoutLast += Math.exp(before[id]! - max);
        return withoutLast < p * total * (1 + MASS_REL_TOLERANCE);
      }),
    );
  });

  it("rejects p outside (0, 1]", () => {
    for (const bad of [0, -0.5, 1.01, Number.NaN]) {
      try {
        applyTopP(new Float32Array(4), bad);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field]).toEqual(["SAMPLER_BAD_OPTION", "topP"]);
      }
    }
  });
});

/** Relative slack for re-summing the same float64 weights in a different order. */
const MASS_REL_TOLERANCE = 1e-12;
