// Tests of the two activation quantisers against hand-worked cases.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { quantizePerToken, quantizeQ8K } from "./quantize.js";

describe("quantizePerToken", () => {
  it("scales by 127/absmax per row and rounds half to even", () => {
    const { values, scales } = quantizePerToken(Float32Array.of(127, 2.5, -3.5, 0.5, 0.5, -1, 0.25, 0), 4);
    expect(Array.from(scales)).toEqual([1, 127]);
    expect(Array.from(values)).toEqual([127, 2, -4, 0, 64, -127, 32, 0]); // 0.25 · 127 = 31.75 → 32
  });

  it("floors absmax at 1e-5 so tiny rows stay small", () => {
    const { values, scales } = quantizePerToken(Float32Array.of(4e-7, -2e-6), 2);
    expect(scales[0]).toBe(Math.fround(127 / Math.fround(1e-5)));
    expect(Array.from(values)).toEqual([5, -25]);
  });
});

describe("quantizeQ8K", () => {
  it("uses the signed maximum: the largest value maps to -127 and d carries the sign", () => {
    const x = new Float32Array(512);
    x[0] = 2;
    x[1] = -4; // block 0: max = -4, iscale = +31.75
    x[2] = 1;
    x[256] = 4; // block 1: max = +4, iscale = -31.75
    x[257] = -2;
    const { values, scales } = quantizeQ8K(x, 512);
    expect([values[0], values[1], values[2]]).toEqual([64, -127, 32]); // 63.5 → 64 (even), 31.75 → 32
    expect([values[256], values[257]]).toEqual([-127, 64]);
    expect(scales[0]).toBe(Math.fround(1 / Math.fround(127 / 4)));
    expect(scales[1]).toBe(-scales[0]!);
    expect(values[1]! * scales[0]!).toBeCloseTo(-4, 5);
    expect(values[256]! * scales[1]!).toBeCloseTo(4, 5);
  });

  it("gives d = 0 and zero codes for an all-zero block", () => {
    const { values, scales } = quantizeQ8K(new Float32Array(512).fill(1, 256), 512);
    expect(scales[0]).toBe(0);
    expect(values.subarray(0, 256).every((v) => v === 0)).toBe(true);
    expect(values[300]).toBe(-127);
  });

  it("refuses widths that are not a multiple of 256", () => {
    expect(() => quantizeQ8K(new Float32Array(100), 100)).toThrow(expect.objectContaining({ code: "KERNELS_BAD_ARGUMENT" }));
    try {
      quantizeQ8K(new Float32Array(100), 100);
    } catch (error) {
      expect(isHaloError(error)).toBe(true);
    }
  });
});
