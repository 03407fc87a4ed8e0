// Every SIMD kernel against its scalar _ref twin (and a TypeScript oracle) on random inputs of awkward sizes.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { roundToF16, SeededRandom } from "@halo/kernels";
import { nativeBinding } from "./native-binding.js";

/** f32 accumulation of a `hidden`-long dot in a different order: relative to Σ|w·x|. */
const MAX_REL_ERROR_HEAD_F32_ACCUMULATION = 2e-6;
/** Float64 attention summed in a different order, exp to ~1 ulp: relative to max |V|. */
const MAX_REL_ERROR_ATTENTION = 1e-9;

const native = nativeBinding();
const simd = native.isas().filter((isa) => isa !== "scalar");
const ROWS = [1, 3, 16, 17, 33] as const;
const COLS = [1, 17, 255, 256, 257, 600] as const;
const TOKENS = [1, 2, 5, 9] as const;

function rawOracle(trits: Int8Array, rows: number, cols: number, x: Int8Array): Int32Array {
  const n = x.length / cols;
  const out = new Int32Array(n * rows);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += (trits[r * cols + c]! + 1) * x[t * cols + c]!;
      out[t * rows + r] = sum;
    }
  }
  return out;
}

function int8s(random: SeededRandom, length: number): Int8Array {
  return Int8Array.from({ length }, () => random.int(256) - 128);
}

describe("ternary GEMV/GEMM kernels", () => {
  it("the scalar kernel equals the TypeScript oracle (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 4 }), fc.integer(), (rows, cols, n, seed) => {
        const random = new SeededRandom(seed);
        const trits = random.trits(rows * cols);
        const x = int8s(random, n * cols);
        expect(native.gemmRaw("scalar", trits, rows, cols, x, false)).toEqual(rawOracle(trits, rows, cols, x));
      }),
      { numRuns: 60 },
    );
  });

  for (const isa of simd) {
    it(`${isa} equals scalar exactly, whole rows and per 256-block`, () => {
      const random = new SeededRandom(21);
      for (const rows of ROWS) {
        for (const cols of COLS) {
          for (const n of TOKENS) {
            const trits = random.trits(rows * cols);
            const x = int8s(random, n * cols);
            // Extremes: every activation -128 or 127 must not saturate any intermediate.
            if (n > 1) x.fill(-128, 0, cols);
            expect(native.gemmRaw(isa, trits, rows, cols, x, false), `${isa} rows=${rows} cols=${cols} n=${n}`).toEqual(
              native.gemmRaw("scalar", trits, rows, cols, x, false),
            );
            expect(native.gemmRaw(isa, trits, rows, cols, x, true), `${isa} blocks rows=${rows} cols=${cols} n=${n}`).toEqual(
              native.gemmRaw("scalar", trits, rows, cols, x, true),
            );
          }
        }
      }
    });
  }

  it("refuses trits outside {-1, 0, 1} and bad shapes with a status", () => {
    expect(native.gemmRaw("scalar", Int8Array.of(2), 1, 1, Int8Array.of(1), false)).toBe(3);
    expect(native.gemmRaw("scalar", Int8Array.of(1, 0), 1, 1, Int8Array.of(1), false)).toBe(1);
  });
});

describe("LM head kernels", () => {
  for (const isa of simd) {
    for (const kind of ["f16", "bf16", "f32", "int8", "int4"] as const) {
      it(`${isa} ${kind} head equals scalar within ${MAX_REL_ERROR_HEAD_F32_ACCUMULATION} of Σ|w·x|`, () => {
        const random = new SeededRandom(22);
        for (const hidden of [1, 7, 16, 33, 100, 257]) {
          for (const n of [1, 3, 5]) {
            const vocab = 37;
            const weights = random.floats(vocab * hidden, 0.5);
            const x = random.floats(n * hidden, 2);
            const head =
              kind === "f16"
                ? Uint16Array.from(native.f16Round("scalar", weights), (v) => f16Bits(v))
                : kind === "bf16"
                  ? new Uint16Array(weights.buffer).filter((_, i) => i % 2 === 1)
                  : weights;
            const want = native.lmHead("scalar", 1, x, kind, head, vocab, hidden) as Float32Array;
            const got = native.lmHead(isa, 2, x, kind, head, vocab, hidden) as Float32Array;
            for (let t = 0; t < n; t++) {
              for (let v = 0; v < vocab; v++) {
                let bound = 0;
                for (let h = 0; h < hidden; h++) bound += Math.abs(weights[v * hidden + h]! * x[t * hidden + h]!);
                expect(Math.abs(got[t * vocab + v]! - want[t * vocab + v]!)).toBeLessThanOrEqual(MAX_REL_ERROR_HEAD_F32_ACCUMULATION * bound + 1e-30);
              }
            }
          }
        }
      });
    }
  }
});

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** IEEE half bits of a value that is exactly representable in f16. */
function f16Bits(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const abs = Math.abs(value);
  if (abs === 0) return sign;
  if (abs < 2 ** -14) return sign | Math.round(abs / 2 ** -24);
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  return sign | (exponent << 10) | ((bits >>> 13) & 0x3ff);
}

describe("f16 conversions", () => {
  it("every path rounds like roundToF16 (ties to even, subnormals, overflow)", () => {
    const random = new SeededRandom(23);
    const special = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-8, 0.1, 1e6];
    const x = Float32Array.from([...special, ...Array.from(random.floats(997, 10)), ...Array.from(random.floats(500, 1e-5))]);
    const want = Float32Array.from(x, (v) => roundToF16(v));
    for (const isa of native.isas()) expect(native.f16Round(isa, x), isa).toEqual(want);
  });
});

describe("attention kernels", () => {
  for (const isa of simd) {
    it(`${isa} equals scalar on f32, f16 and int8 caches, one pass and tiles`, () => {
      const random = new SeededRandom(24);
      for (const [heads, kvHeads, headDim] of [
        [4, 2, 16],
        [6, 3, 17],
        [20, 5, 128],
      ] as const) {
        for (const length of [1, 9, 300]) {
          const keys = random.floats(length * kvHeads * headDim, 2);
          const values = random.floats(length * kvHeads * headDim);
          const positions = Int32Array.of(0, Math.floor(length / 2), length - 1);
          const q = random.floats(positions.length * heads * headDim, 2);
          const vMax = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          for (const kvDtype of ["f32", "f16", "int8"] as const) {
            for (const tile of [0, 7, 256]) {
              const want = native.attention("scalar", 1, q, keys, values, positions, heads, kvHeads, headDim, tile, kvDtype) as Float32Array;
              const got = native.attention(isa, 2, q, keys, values, positions, heads, kvHeads, headDim, tile, kvDtype) as Float32Array;
              let worst = 0;
              for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / vMax);
              expect(worst, `${isa} heads=${heads}/${kvHeads} d=${headDim} len=${length} kv=${kvDtype} tile=${tile}`).toBeLessThanOrEqual(
                MAX_REL_ERROR_ATTENTION + 2 ** -24,
              );
            }
          }
        }
      }
    });
  }
});
