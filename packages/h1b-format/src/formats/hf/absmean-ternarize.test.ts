// Tests of absmean ternarisation against a literal transcription of transformers' WeightQuant.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { bf16ToF32, f32ToBf16 } from "../../core/half.js";
import { ABSMEAN_MIN_SCALE, HF_SCALE_REL_TOLERANCE, AbsSum, absmeanParams, masterMagnitude, ternarizeInto } from "./absmean-ternarize.js";

/** torch.round: round half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * transformers integrations/bitnet.py WeightQuant.forward, float32 throughout:
 * scale = 1 / mean|W|.clamp(1e-5); W_q = (W * scale).round().clamp(-1, 1).
 */
function referenceTrits(w: Float32Array): Int8Array {
  let sum = 0;
  for (const v of w) sum += Math.abs(v);
  const mean = Math.max(Math.fround(sum / w.length), Math.fround(1e-5));
  const scale = Math.fround(1 / mean);
  return Int8Array.from(w, (v) => Math.min(1, Math.max(-1, roundHalfEven(Math.fround(v * scale)))));
}

const bf16Weights = fc
  .array(fc.float({ min: -4, max: 4, noNaN: true }), { minLength: 1, maxLength: 300 })
  .map((values) => Float32Array.from(values, (v) => bf16ToF32(f32ToBf16(v))));

describe("absmean ternarisation", () => {
  it("sends exact ±0.5 ties to 0 (half to even) and clamps ±1.5 to ±1", () => {
    const trits = new Int8Array(7);
    ternarizeInto(Float32Array.of(0.25, -0.25, 0.2500001, 0.75, -0.75, 1.25, 0), 2, trits);
    expect([...trits]).toEqual([0, 0, 1, 1, -1, 1, 0]);
  });

  it("matches the reference recipe on random bf16 master weights", () => {
    fc.assert(
      fc.property(bf16Weights, (w) => {
        const sum = new AbsSum();
        // Chunked accumulation must not change the result.
        sum.add(w.subarray(0, w.length >> 1), "w");
        sum.add(w.subarray(w.length >> 1), "w");
        const { inverse } = sum.params("bf16");
        const trits = new Int8Array(w.length);
        ternarizeInto(w, inverse, trits);
        expect(trits).toEqual(referenceTrits(w));
      }),
      { numRuns: 500 },
    );
  });

  it("derives the scale as 1/inverse rounded to the master dtype, clamped at 1e-5", () => {
    const p = absmeanParams(0.0123, "bf16");
    expect(p.inverse).toBe(Math.fround(1 / Math.fround(0.0123)));
    expect(p.scale).toBe(bf16ToF32(f32ToBf16(Math.fround(1 / p.inverse))));
    expect(absmeanParams(0, "f32").scale).toBeCloseTo(ABSMEAN_MIN_SCALE, 12);
    expect(absmeanParams(1e-9, "f32").inverse).toBe(Math.fround(1 / ABSMEAN_MIN_SCALE));
  });

  it("refuses NaN and infinite master weights", () => {
    expect(() => new AbsSum().add(Float32Array.of(1, NaN), "w")).toThrow(/NaN or infinity/);
    expect(() => new AbsSum().add(Float32Array.of(Infinity), "w")).toThrow(/NaN or infinity/);
  });

  it("chooses master magnitudes whose ternarisation returns the trits and the scale", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(-1, 0, 0, 1), { minLength: 1, maxLength: 400 }),
        fc.float({ min: Math.fround(2e-5), max: 4, noNaN: true }),
        (values, scale) => {
          const trits = Int8Array.from(values);
          const nonzero = values.filter((t) => t !== 0).length;
          const m = masterMagnitude(scale, nonzero, trits.length, "w");
          const w = Float32Array.from(trits, (t) => t * m);
          const back = new Int8Array(trits.length);
          const sum = new AbsSum();
          sum.add(w, "w");
          const { inverse, scale: readScale } = sum.params("bf16");
          ternarizeInto(w, inverse, back);
          expect(back).toEqual(trits);
          if (nonzero > 0) expect(Math.abs(readScale - scale) / scale).toBeLessThanOrEqual(HF_SCALE_REL_TOLERANCE);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses scales the 1e-5 clamp would destroy", () => {
    expect(() => masterMagnitude(1e-7, 10, 10, "w")).toThrow(/cannot be written/);
    expect(masterMagnitude(0.5, 0, 10, "w")).toBe(0);
  });
});
