import { describe, expect, it } from "vitest";
import { fuseScales, nativeScales } from "./native-scales.js";

describe("nativeScales", () => {
  it("gives one scale a row for tensor and row scales", () => {
    expect(nativeScales({ kind: "tensor", value: 0.5 }, 2, 8)).toEqual({ block: 8, values: Float32Array.of(0.5, 0.5) });
    expect(nativeScales({ kind: "row", values: Float32Array.of(1, 2) }, 2, 8)).toEqual({ block: 8, values: Float32Array.of(1, 2) });
  });

  it("collapses block scales that are equal along every row, and keeps them when one row differs", () => {
    expect(nativeScales({ kind: "block", blockSize: 4, values: Float32Array.of(3, 3, 7, 7) }, 2, 8)).toEqual({ block: 8, values: Float32Array.of(3, 7) });
    const mixed = Float32Array.of(3, 3, 7, 8);
    expect(nativeScales({ kind: "block", blockSize: 4, values: mixed }, 2, 8)).toEqual({ block: 4, values: mixed });
    // −0 and 0 are different scales to the kernels (Object.is), so they are not collapsed.
    expect(nativeScales({ kind: "block", blockSize: 4, values: Float32Array.of(0, -0) }, 1, 8).block).toBe(4);
  });
});

describe("fuseScales", () => {
  it("stacks fused parts at the greatest common block, repeating each part's scales", () => {
    const rowScaled = { rows: 1, cols: 8, scales: { block: 8, values: Float32Array.of(5) } };
    const blockScaled = { rows: 1, cols: 8, scales: { block: 4, values: Float32Array.of(1, 2) } };
    expect(fuseScales([rowScaled, blockScaled])).toEqual({ block: 4, values: Float32Array.of(5, 5, 1, 2) });
    expect(fuseScales([rowScaled, rowScaled])).toEqual({ block: 8, values: Float32Array.of(5, 5) });
  });
});
