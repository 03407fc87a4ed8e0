// Tests for sanitizeLogits: NaN → −Infinity, +Infinity → float32 max, nothing else changes.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { FLOAT32_MAX } from "./float-limits.js";
import { sanitizeLogits } from "./sanitize.js";
import { hasNaN, hostileRow } from "../test/arbitraries.js";

describe("sanitizeLogits", () => {
  it("maps NaN and +Infinity and counts the live entries", () => {
    const row = new Float32Array([Number.NaN, Number.POSITIVE_INFINITY, 1, Number.NEGATIVE_INFINITY]);
    expect(sanitizeLogits(row)).toBe(2);
    expect(Array.from(row)).toEqual([Number.NEGATIVE_INFINITY, FLOAT32_MAX, 1, Number.NEGATIVE_INFINITY]);
  });

  it("leaves no NaN or +Infinity and keeps finite values", () => {
    fc.assert(
      fc.property(hostileRow, (row) => {
        const before = Float32Array.from(row);
        sanitizeLogits(row);
        if (hasNaN(row) || row.includes(Number.POSITIVE_INFINITY)) return false;
        return before.every((v, i) => !Number.isFinite(v) || row[i] === v);
      }),
    );
  });
});
