// Tests for applyTemperature: scaling, greedy at 0, no NaN, range errors.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyTemperature } from "./temperature.js";
import { sanitizeLogits } from "./sanitize.js";
import { hasNaN, hostileRow } from "../test/arbitraries.js";

describe("applyTemperature", () => {
  it("divides by the temperature", () => {
    const row = new Float32Array([2, -1, Number.NEGATIVE_INFINITY]);
    applyTemperature(row, 0.5);
    expect(Array.from(row)).toEqual([4, -2, Number.NEGATIVE_INFINITY]);
  });

  it("keeps only the lowest-id argmax at temperature 0", () => {
    const row = new Float32Array([1, 5, 5, 2]);
    applyTemperature(row, 0);
    expect(Array.from(row)).toEqual([Number.NEGATIVE_INFINITY, 5, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  });

  it("never produces NaN or +Infinity from sanitised rows, even for subnormal temperatures", () => {
    fc.assert(
      fc.property(hostileRow, fc.constantFrom(0, 5e-324, 1e-30, 0.1, 1, 2, 1e30), (row, t) => {
        sanitizeLogits(row);
        applyTemperature(row, t);
        return !hasNaN(row) && !row.includes(Number.POSITIVE_INFINITY);
      }),
    );
  });

  it("rejects negative, NaN and infinite temperatures with the field named", () => {
    for (const bad of [-0.1, Number.NaN, Number.POSITIVE_INFINITY]) {
      try {
        applyTemperature(new Float32Array(2), bad);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field, error.actual]).toEqual(["SAMPLER_BAD_OPTION", "temperature", String(bad)]);
      }
    }
  });
});
