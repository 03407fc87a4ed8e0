// RoPE angle modes: the float64 definition and llama.cpp's float32 iterated angles stay close but are not equal.
import { describe, expect, it } from "vitest";
import { applyRope, ropeAngles } from "./rope.js";

describe("ropeAngles", () => {
  it("float64 mode: position 0 is the identity and pair 0 rotates by the position", () => {
    const x = Float32Array.of(1, 0, 0, 0, 0, 0, 0, 0);
    expect(Array.from(applyRope(Float32Array.from(x), Int32Array.of(0), 1, 8, ropeAngles("float64", 8, 10000)))).toEqual(Array.from(x));
    const rotated = applyRope(Float32Array.from(x), Int32Array.of(3), 1, 8, ropeAngles("float64", 8, 10000));
    expect(rotated[0]).toBeCloseTo(Math.cos(3), 6);
    expect(rotated[4]).toBeCloseTo(Math.sin(3), 6); // the partner of element 0 is element headDim/2
  });

  it("ggml-f32 angles stay within float32 error of the float64 definition", () => {
    const exact = new Float64Array(128);
    const ggml = new Float64Array(128);
    let worst = 0;
    for (const position of [1, 17, 255, 4095]) {
      ropeAngles("float64", 128, 500000)(position, exact);
      ropeAngles("ggml-f32", 128, 500000)(position, ggml);
      for (let i = 0; i < 128; i++) worst = Math.max(worst, Math.abs(exact[i]! - ggml[i]!));
    }
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(2e-3); // ~ position · 2^-24 · pairs at position 4095
  });
});
