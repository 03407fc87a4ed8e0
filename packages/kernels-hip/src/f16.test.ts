// f16Bits against the reference's roundToF16 (the numerics the KV and tables are defined with), at the edges and at random.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { roundToF16 } from "@halo/kernels";
import { f16Bits, toF16Bits } from "./f16.js";

/** The value of binary16 bits. */
function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

describe("f16Bits", () => {
  it("known patterns: ±0, 1, -2, the largest half, overflow, the smallest subnormal, NaN", () => {
    expect(f16Bits(0)).toBe(0);
    expect(f16Bits(-0)).toBe(0x8000);
    expect(f16Bits(1)).toBe(0x3c00);
    expect(f16Bits(-2)).toBe(0xc000);
    expect(f16Bits(65504)).toBe(0x7bff);
    expect(f16Bits(65520)).toBe(0x7c00);
    expect(f16Bits(-Infinity)).toBe(0xfc00);
    expect(f16Bits(2 ** -24)).toBe(1);
    expect(f16Bits(2 ** -25)).toBe(0); // a tie rounds to even (zero)
    expect(f16Bits(3 * 2 ** -26)).toBe(1);
    expect(Number.isNaN(f16Value(f16Bits(Number.NaN)))).toBe(true);
    expect(toF16Bits(Float32Array.of(1, -2))).toEqual(Uint16Array.of(0x3c00, 0xc000));
  });

  it("rounds every float32 as roundToF16 does (property, normals, subnormals and ties)", () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (value) => {
        expect(f16Value(f16Bits(value))).toBe(roundToF16(Math.fround(value)));
      }),
      { numRuns: 5000 },
    );
    // Exact ties between neighbouring halves, around 1 and in the subnormal range.
    for (let m = 0; m < 64; m++) {
      for (const base of [1, 2 ** -14, 2 ** -20]) {
        const ulp = base === 1 ? 2 ** -10 : 2 ** -24;
        const tie = base + (m + 0.5) * ulp;
        expect(f16Value(f16Bits(tie))).toBe(roundToF16(Math.fround(tie)));
      }
    }
  });
});
