// Tests for applyTopK: exactly the k best survive, ties go to the lower id, untouched values.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyTopK } from "./top-k.js";
import { createSamplerScratch } from "./scratch.js";
import { alive, logitRow, rankOrder } from "../test/arbitraries.js";

describe("applyTopK", () => {
  it("keeps the k best with ties to the lower id", () => {
    const row = new Float32Array([1, 5, 5, 2, 5]);
    applyTopK(row, 2);
    expect(Array.from(row)).toEqual([Number.NEGATIVE_INFINITY, 5, 5, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  });

  it("is a no-op for k = 0 and k ≥ V", () => {
    const row = new Float32Array([3, 1, 2]);
    applyTopK(row, 0);
    applyTopK(row, 3);
    applyTopK(row, 99);
    expect(Array.from(row)).toEqual([3, 1, 2]);
  });

  it("keeps exactly the first min(k, finite) ids of the rank order, values unchanged", () => {
    const scratch = createSamplerScratch(64);
    fc.assert(
      fc.property(logitRow, fc.integer({ min: 1, max: 70 }), fc.boolean(), (row, k, shared) => {
        const before = Float32Array.from(row);
        const expected = rankOrder(before)
          .slice(0, k)
          .sort((a, b) => a - b);
        applyTopK(row, k, shared ? scratch : undefined);
        const kept = alive(row);
        if (JSON.stringify(kept) !== JSON.stringify(expected)) return false;
        return kept.every((id) => row[id] === before[id]);
      }),
    );
  });

  it("rejects negative and fractional k", () => {
    for (const bad of [-1, 1.5, Number.NaN]) {
      try {
        applyTopK(new Float32Array(4), bad);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field]).toEqual(["SAMPLER_BAD_OPTION", "topK"]);
      }
    }
  });
});
