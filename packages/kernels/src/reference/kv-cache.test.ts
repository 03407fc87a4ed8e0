// Tests of the reference KV cache's int8 storage: the rounding rule of KvDtype "int8" and its use per KV head.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { KvCache, roundRowThroughInt8 } from "./kv-cache.js";

/** Relative bound of int8 storage: half a code step of absmax/127, plus the f32 scale's own rounding. */
const INT8_STEP_FRACTION = 0.5 / 127 + 1e-6;

describe("roundRowThroughInt8", () => {
  it("keeps every value within half a code step of absmax/127, and the largest exactly representable", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1000, max: 1000, noNaN: true }), { minLength: 1, maxLength: 130 }), (values) => {
        const src = Float32Array.from(values);
        const out = new Float32Array(src.length);
        roundRowThroughInt8(src, 0, src.length, out, 0);
        const absmax = src.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const scale = Math.fround(absmax / 127);
        // A scale below the smallest normal float (absmax < ~1.5e-36) loses relative precision; 0 stores zeros.
        const bound = scale >= 2 ** -126 ? absmax * INT8_STEP_FRACTION : absmax;
        for (let i = 0; i < src.length; i++) {
          expect(Math.abs(out[i]! - src[i]!)).toBeLessThanOrEqual(bound);
          if (scale > 0) {
            // Every stored value is a code times the scale, with the code an integer in [−127, 127].
            const code = Math.round(out[i]! / scale);
            expect(Math.abs(code)).toBeLessThanOrEqual(127);
            expect(out[i]).toBe(Math.fround(code * scale));
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it("rounds ties to even, stores zeros for an all-zero row and 0 for NaN", () => {
    // absmax 127 gives scale 1: codes are the values rounded half to even.
    const src = Float32Array.of(127, 2.5, -2.5, 3.5, 0.5, Number.NaN);
    const out = new Float32Array(src.length);
    roundRowThroughInt8(src, 0, src.length, out, 0);
    expect(Array.from(out)).toEqual([127, 2, -2, 4, 0, 0]);
    const zeros = new Float32Array(4).fill(7);
    roundRowThroughInt8(new Float32Array(4), 0, 4, zeros, 0);
    expect(Array.from(zeros)).toEqual([0, 0, 0, 0]);
  });

  it("reads and writes at the given offsets only", () => {
    const src = Float32Array.of(9, 9, 1, -1, 9);
    const out = new Float32Array(5).fill(5);
    roundRowThroughInt8(src, 2, 2, out, 1);
    expect(Array.from(out)).toEqual([5, 1, -1, 5, 5]);
  });
});

describe("KvCache int8", () => {
  it("scales each KV head's row on its own", () => {
    const cache = new KvCache(1, 4, 4, 1, "int8", 2);
    const slot = cache.allocate();
    const seq = cache.get(slot)!;
    // Head 0 holds large values, head 1 small ones: one shared scale would flush head 1 to zero.
    const key = Float32Array.of(100, -50, 0.01, 0.002);
    cache.write(seq, 0, 1, key, 0, key, 0);
    const { keys, values } = cache.layerView(seq, 0, 2);
    expect(keys[6]).toBeCloseTo(0.01, 6);
    expect(keys[7]).not.toBe(0);
    expect(Array.from(values.subarray(4))).toEqual(Array.from(keys.subarray(4)));
    expect(Array.from(keys.subarray(0, 4))).toEqual([0, 0, 0, 0]);
  });
});
