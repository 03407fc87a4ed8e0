// Every SIMD kernel against its scalar _ref twin (and a TypeScript oracle) on random inputs of awkward sizes and at the
// sizes production runs. Every SIMD table built for this architecture gets its cases; on a CPU without one they are
// reported as skipped, with the reason in their names, not left out.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { roundToF16, SeededRandom } from "@halo/kernels";
import { builtIsas, isaSkipNote } from "./available-isas.js";
import { nativeBinding, type CpuIsa } from "./native-binding.js";

/** f32 accumulation of a `hidden`-long dot in a different order: relative to Σ|w·x|. */
const MAX_REL_ERROR_HEAD_F32_ACCUMULATION = 2e-6;
/** Float64 attention summed in a different order, exp to ~1 ulp: relative to max |V|. */
const MAX_REL_ERROR_ATTENTION = 1e-9;

const native = nativeBinding();
/** The SIMD tables built for this architecture (binding.gyp), best first. */
const simd = builtIsas().filter((isa) => isa !== "scalar");
/** Whether this CPU lacks `isa` (its cases are then skipped). */
const lacks = (isa: Exclude<CpuIsa, "auto">): boolean => isaSkipNote(isa) !== "";
/** The note a skipped case's name carries. */
const skipNote = isaSkipNote;
const ROWS = [1, 3, 16, 17, 33] as const;
const COLS = [1, 17, 255, 256, 257, 600] as const;
const TOKENS = [1, 2, 5, 9] as const;
/** Row counts on both sides of the kernels' row blocking (4-row micro tiles, 64-row tiles, 128) and a longer span. */
const PRODUCTION_ROWS = [63, 64, 65, 127, 128, 129, 200] as const;
/** Decode batches (1–16, around the 4-, 6- and 8-token tiles), prompts (17–40) and a long prompt (512 tokens). */
const PRODUCTION_TOKENS = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 16, 17, 18, 24, 29, 40, 512] as const;

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

/** "" when two gemmRaw results are equal, else where they first differ (one expect per case: toEqual on 10⁵ values is slow). */
function firstDifference(got: Int32Array | number, want: Int32Array | number, perToken: number): string {
  if (typeof got === "number" || typeof want === "number") return `status ${String(got)} / ${String(want)}`;
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) return `token ${Math.floor(i / perToken)} index ${i % perToken}: ${got[i]} vs ${want[i]}`;
  }
  return "";
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
    it.skipIf(lacks(isa))(`${isa} equals scalar exactly, whole rows and per 256-block${skipNote(isa)}`, () => {
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

  for (const isa of simd) {
    it.skipIf(lacks(isa))(`${isa} equals scalar exactly at production sizes (up to 200 rows, 512 tokens)${skipNote(isa)}`, () => {
      const random = new SeededRandom(25);
      for (const rows of PRODUCTION_ROWS) {
        for (const n of PRODUCTION_TOKENS) {
          // One block (the 2B model's rows are whole blocks) or three with a tail, alternately.
          const cols = (rows + n) % 2 === 0 ? 256 : 700;
          const trits = random.trits(rows * cols);
          const x = int8s(random, n * cols);
          if (n >= 12) x.fill(-128, 5 * cols, 6 * cols); // token 5 (the last of the first 6-token tile) at the extremes
          const what = `${isa} rows=${rows} cols=${cols} n=${n}`;
          expect(firstDifference(native.gemmRaw(isa, trits, rows, cols, x, false), native.gemmRaw("scalar", trits, rows, cols, x, false), rows), what).toBe("");
          if (n <= 16) {
            const perToken = rows * Math.ceil(cols / 256);
            expect(
              firstDifference(native.gemmRaw(isa, trits, rows, cols, x, true), native.gemmRaw("scalar", trits, rows, cols, x, true), perToken),
              `${what} blocks`,
            ).toBe("");
          }
        }
      }
    });
  }

  it("the scalar kernel equals the TypeScript oracle past the 64-row tile at 13 and 40 tokens", () => {
    const random = new SeededRandom(26);
    for (const [rows, n] of [
      [65, 13],
      [129, 40],
    ] as const) {
      const trits = random.trits(rows * 300);
      const x = int8s(random, n * 300);
      expect(native.gemmRaw("scalar", trits, rows, 300, x, false)).toEqual(rawOracle(trits, rows, 300, x));
    }
  });

  it("refuses trits outside {-1, 0, 1} and bad shapes with a status", () => {
    expect(native.gemmRaw("scalar", Int8Array.of(2), 1, 1, Int8Array.of(1), false)).toBe(3);
    expect(native.gemmRaw("scalar", Int8Array.of(1, 0), 1, 1, Int8Array.of(1), false)).toBe(1);
  });
});

/** LM head cases: hidden sizes, logit rows and vocabulary rows. */
const HEAD_SIZES = {
  awkward: { hidden: [1, 7, 16, 33, 100, 257], tokens: [1, 3, 5], vocab: [37] },
  // Decode batches of 7–9 and 16 logit rows (8-row passes and their tails) over vocabularies on both sides of the
  // 16-row tiles and of the two workers' 16-aligned split, hidden sizes around the 256-wide chunks.
  production: { hidden: [33, 255, 257, 520], tokens: [7, 8, 9, 16], vocab: [15, 16, 17, 50] },
} as const;

/** Signed w·x over the listed columns (the sparse kernel's definition). */
function sparseOracle(trits: Int8Array, rows: number, cols: number, x: Int8Array, nz: Int32Array): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (const c of nz) sum += trits[r * cols + c]! * x[c]!;
    out[r] = sum;
  }
  return out;
}

/** x with about `zeros` of its entries 0 (the rest anywhere in [−128, 127]) and the list of its nonzero columns. */
function sparseInput(random: SeededRandom, cols: number, zeros: number): { x: Int8Array; nz: Int32Array } {
  const x = Int8Array.from({ length: cols }, () => (random.next() < zeros ? 0 : random.int(256) - 128));
  const nz = Int32Array.from([...x.keys()].filter((c) => x[c] !== 0));
  return { x, nz };
}

describe("activation-sparse GEMV kernels (the sparse down lane)", () => {
  it("the scalar kernel equals the oracle for any column list (property: order, zeros listed, ragged tiles)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 300 }),
        fc.double({ min: 0, max: 1 }),
        fc.integer(),
        (rows, cols, zeros, seed) => {
          const random = new SeededRandom(seed);
          const trits = random.trits(rows * cols);
          const { x } = sparseInput(random, cols, zeros);
          // Any subset in any order: the kernel reads exactly the listed columns.
          const nz = Int32Array.from([...x.keys()].filter(() => random.next() < 0.7)).sort(() => random.next() - 0.5);
          expect(native.sparseRaw("scalar", trits, rows, cols, x, nz)).toEqual(sparseOracle(trits, rows, cols, x, nz));
        },
      ),
      { numRuns: 40 },
    );
  });

  it("the scalar kernel equals the dense kernel minus Σx when every nonzero column is listed", () => {
    const random = new SeededRandom(31);
    for (const [rows, cols] of [
      [257, 700],
      [2, 6912],
    ] as const) {
      const trits = random.trits(rows * cols);
      const { x, nz } = sparseInput(random, cols, 0.6);
      const sum = x.reduce((a, v) => a + v, 0);
      const dense = native.gemmRaw("scalar", trits, rows, cols, x, false) as Int32Array;
      expect(native.sparseRaw("scalar", trits, rows, cols, x, nz)).toEqual(dense.map((v) => v - sum));
    }
  });

  for (const isa of simd) {
    it.skipIf(lacks(isa))(`${isa} equals scalar exactly: ragged row tiles, every density, int16 sums past 2^15${skipNote(isa)}`, () => {
      const random = new SeededRandom(33);
      for (const rows of [1, 31, 255, 256, 257, 511, 512, 513, 800]) {
        for (const cols of [1, 17, 600, 1100]) {
          for (const zeros of [0, 0.5, 0.9, 1]) {
            const trits = random.trits(rows * cols);
            const { x, nz } = sparseInput(random, cols, zeros);
            const what = `${isa} rows=${rows} cols=${cols} zeros=${zeros}`;
            expect(firstDifference(native.sparseRaw(isa, trits, rows, cols, x, nz), native.sparseRaw("scalar", trits, rows, cols, x, nz), rows), what).toBe("");
          }
        }
      }
      // Extremes: 1,100 columns of −128 against all-(−1) and all-(+1) rows: |sums| of 140,800 cross the int16 range the
      // kernels accumulate in between their widenings.
      const cols = 1100;
      const trits = Int8Array.from({ length: 2 * cols }, (_, i) => (i < cols ? -1 : 1));
      const x = new Int8Array(cols).fill(-128);
      const nz = Int32Array.from(x.keys());
      expect(native.sparseRaw(isa, trits, 2, cols, x, nz)).toEqual(Int32Array.of(128 * cols, -128 * cols));
      expect(native.sparseRaw(isa, trits, 2, cols, x.fill(127), nz)).toEqual(Int32Array.of(-127 * cols, 127 * cols));
    });
  }

  for (const isa of ["scalar", ...simd] as const) {
    it.skipIf(isa !== "scalar" && lacks(isa))(`${isa}: the sparse matmul gives the dense matmul's floats, row scales and all${skipNote(isa)}`, () => {
      const random = new SeededRandom(35);
      for (const [rows, cols, n] of [
        [300, 700, 3],
        [2560, 512, 1],
      ] as const) {
        const trits = random.trits(rows * cols);
        const scales = Float32Array.from({ length: rows }, () => 0.5 + random.next());
        const x = Float32Array.from({ length: n * cols }, () => (random.next() < 0.7 ? 0 : random.next() * 8 - 4));
        const dense = native.ternaryMatmul(isa, 2, trits, rows, cols, cols, scales, x, true);
        const sparse = native.ternaryMatmul(isa, 2, trits, rows, cols, cols, scales, x, true, true);
        expect(sparse).toEqual(dense);
      }
    });
  }
});

describe("LM head kernels", () => {
  for (const isa of simd) {
    for (const kind of ["f16", "bf16", "f32", "int8", "int4"] as const) {
      for (const [sizes, { hidden: hiddens, tokens, vocab: vocabs }] of Object.entries(HEAD_SIZES)) {
        it.skipIf(lacks(isa))(
          `${isa} ${kind} head equals scalar within ${MAX_REL_ERROR_HEAD_F32_ACCUMULATION} of Σ|w·x| (${sizes} sizes)${skipNote(isa)}`,
          () => {
            const random = new SeededRandom(22);
            for (const hidden of hiddens) {
              for (const n of tokens) {
                for (const vocab of vocabs) {
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
                  // The first logit outside its bound, if any (one expect per case: ~10⁵ logits in all).
                  let outside = "";
                  for (let t = 0; t < n && outside === ""; t++) {
                    for (let v = 0; v < vocab; v++) {
                      let bound = 0;
                      for (let h = 0; h < hidden; h++) bound += Math.abs(weights[v * hidden + h]! * x[t * hidden + h]!);
                      const error = Math.abs(got[t * vocab + v]! - want[t * vocab + v]!);
                      if (!(error <= MAX_REL_ERROR_HEAD_F32_ACCUMULATION * bound + 1e-30)) {
                        outside = `token ${t} row ${v}: ${got[t * vocab + v]} vs ${want[t * vocab + v]} (bound ${MAX_REL_ERROR_HEAD_F32_ACCUMULATION * bound})`;
                        break;
                      }
                    }
                  }
                  expect(outside, `${isa} ${kind} hidden=${hidden} n=${n} vocab=${vocab}`).toBe("");
                }
              }
            }
          },
        );
      }
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
    it.skipIf(lacks(isa))(`${isa} equals scalar on f32, f16 and int8 caches, one pass and tiles${skipNote(isa)}`, () => {
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
