// Tests of round-half-even and f16 rounding, the two rounding points the numerics name.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { f16ToF32, f32ToF16 } from "@halo/h1b-format";
import { roundHalfEven, roundToF16 } from "./rounding.js";

describe("roundHalfEven", () => {
  it("rounds ties to the even neighbour and everything else to the nearest", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -127.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 126, -128]);
    expect([0.49999999, 0.50000001, -3.2, 7.7].map(roundHalfEven)).toEqual([0, 1, -3, 8]);
  });

  it("is never more than half away and lands on an integer", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), (x) => {
        const r = roundHalfEven(x);
        expect(Number.isInteger(r)).toBe(true);
        expect(Math.abs(r - x)).toBeLessThanOrEqual(0.5);
      }),
    );
  });
});

describe("roundToF16", () => {
  it("agrees with the f16 codec of @halo/h1b-format on float32 inputs", () => {
    fc.assert(
      fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (x) => {
        expect(roundToF16(x)).toBe(f16ToF32(f32ToF16(x)));
      }),
      { numRuns: 2000 },
    );
  });

  it("handles subnormals, the largest half and overflow", () => {
    expect(roundToF16(2 ** -24)).toBe(2 ** -24);
    expect(roundToF16(2 ** -26)).toBe(0);
    expect(roundToF16(65504)).toBe(65504);
    expect(roundToF16(65519)).toBe(65504);
    expect(roundToF16(65520)).toBe(Infinity);
    expect(roundToF16(-1e9)).toBe(-Infinity);
    expect(roundToF16(0.1)).toBe(0.0999755859375);
  });

  it("is idempotent", () => {
    fc.assert(
      fc.property(fc.double({ min: -65000, max: 65000, noNaN: true }), (x) => {
        expect(roundToF16(roundToF16(x))).toBe(roundToF16(x));
      }),
    );
  });
});
