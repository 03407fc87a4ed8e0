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

  it("keeps a rank-order prefix reaching p whose shorter prefix falls short (matches a full sort)", () => {
    fc.assert(
      fc.property(logitRow, fc.double({ min: 0.01, max: 1, noNaN: true }), (row, p) => {
        const before = Float32Array.from(row);
        const order = rankOrder(before);
        applyTopP(row, p);
        const kept = alive(row);
        if (kept.some((id) => row[id] !== before[id])) return false;
        // The kept set is exactly a prefix of the full-sort rank order …
        const prefix = order.slice(0, kept.length).sort((a, b) => a - b);
        if (JSON.stringify(kept) !== JSON.stringify(prefix)) return false;
        if (order.length === 0) return kept.length === 0;
        if (kept.length === 0) return false;
        // … whose mass reaches p, while one token fewer does not (float slack: the boundary search
        // sums weights in partition order, the reference in rank order).
        const max = before[order[0]!]!;
        const weight = (id: number): number => Math.exp(before[id]! - max);
        const total = order.reduce((s, id) => s + weight(id), 0);
        const mass = order.slice(0, kept.length).reduce((s, id) => s + weight(id), 0);
        const shorter = mass - weight(order[kept.length - 1]!);
        if (kept.length < order.length && mass < p * total * (1 - MASS_REL_TOLERANCE)) return false;
        return kept.length === 1 || shorter < p * total * (1 + MASS_REL_TOLERANCE);
      }),
    );
  });

  it("agrees exactly with the full-sort reference on rows of distinct integer logits", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: -40, max: 40 }), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0.01, max: 0.999, noNaN: true }),
        (values, p) => {
          const row = Float32Array.from(values, (v) => v / 4);
          const expected = referenceTopP(Float32Array.from(row), p);
          applyTopP(row, p);
          return JSON.stringify(alive(row)) === JSON.stringify(expected);
        },
      ),
    );
  });

  it("handles a flat vocabulary-sized row (ties broken by id)", () => {
    const row = new Float32Array(128256);
    applyTopP(row, 0.5);
    const kept = alive(row);
    expect(kept.length).toBe(64128);
    expect(kept[kept.length - 1]).toBe(64127);
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

/** Relative slack for summing the same float64 weights in a different order. */
const MASS_REL_TOLERANCE = 1e-12;
