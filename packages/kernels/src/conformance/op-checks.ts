// Per-op conformance checks: each of a backend's KernelOps against the naive oracle, at awkward sizes.
import type { KernelOps } from "../contract/kernel-ops.js";
import type { WeightsTernaryScale } from "../contract/weights.js";
import { assertClose, assertEqualArrays } from "./assertions.js";
import { TOLERANCES } from "./tolerances.js";
import { SeededRandom } from "./seeded-random.js";
import { floatTensorOf, ternaryTensorOf } from "./test-model.js";
import { oracleAttention, oracleDenseTernary, oracleDequantized, oracleMatmul, oraclePerToken, oracleQ8K, oracleRmsNorm, oracleRope } from "./oracle.js";

/**
 * One named check. `run` rejects (with a `KERNELS_CONFORMANCE_MISMATCH` HaloError) on failure.
 *
 * @example
 * ```ts
 * const check: ConformanceCheck = { name: "ops/rms-norm", run: async () => {} };
 * ```
 */
export interface ConformanceCheck {
  /** `group/what`, e.g. `ops/ternary-matmul per-token tensor-scale`. */
  readonly name: string;
  /**
   * Runs the check: resolves to nothing when it passed, to a {@link ConformanceSkip} when it did not
   * run because the backend does not claim what it checks (not a pass), rejects when it failed.
   */
  readonly run: () => Promise<void | ConformanceSkip>;
}

/**
 * What a {@link ConformanceCheck} resolves to when it did not run: the backend does not claim the
 * capability or configuration it checks. `runConformance` reports it as a skipped test.
 *
 * @example
 * ```ts
 * const result = await check.run();
 * if (result !== undefined) console.log(`skipped: ${result.skipped}`);
 * ```
 */
export interface ConformanceSkip {
  /** Why, in words (`cpu does not claim copySequence`). */
  readonly skipped: string;
}

/** Row maxima of |x| for relative errors: `[n]`. */
function rowMaxima(x: ArrayLike<number>, width: number): Float64Array {
  const out = new Float64Array(x.length / width);
  for (let i = 0; i < x.length; i++) out[Math.floor(i / width)] = Math.max(out[Math.floor(i / width)]!, Math.abs(x[i]!));
  return out;
}

/** Widths and row counts where SIMD tails and block edges go wrong. */
const AWKWARD_K = [1, 2, 15, 16, 17, 31, 33, 64, 100, 272] as const;
const AWKWARD_M = Array.from({ length: 33 }, (_, i) => i + 1);

function scaleFor(random: SeededRandom, kind: "tensor" | "row" | "block", rows: number, cols: number): WeightsTernaryScale | null {
  const one = (): number => Math.fround(0.01 + random.float() * 0.05);
  if (kind === "tensor") return { kind, value: one() };
  if (kind === "row") return { kind, values: Float32Array.from({ length: rows }, one) };
  const blockSize = [16, 8, 4, 2, 1].find((b) => cols % b === 0 && cols / b >= 2) ?? 0;
  if (blockSize === 0) return null;
  return { kind, blockSize, values: Float32Array.from({ length: (rows * cols) / blockSize }, one) };
}

/**
 * The per-op checks for a backend's `ops`.
 *
 * @example
 * ```ts
 * for (const check of opChecks(referenceOps)) await check.run();
 * ```
 */
export function opChecks(ops: KernelOps): ConformanceCheck[] {
  const checks: ConformanceCheck[] = [];
  const add = (name: string, run: () => Promise<void>): void => {
    checks.push({ name: `ops/${name}`, run });
  };

  add("rms-norm", async () => {
    const random = new SeededRandom(11);
    for (const d of [1, 7, 16, 33, 256, 2560]) {
      const x = random.floats(3 * d, 2);
      if (d > 1) x.fill(0, d, d + d); // an all-zero row: eps keeps it finite
      const weight = Float32Array.from({ length: d }, () => 0.5 + random.float());
      const expected = oracleRmsNorm(x, weight, 1e-5);
      const actual = await ops.rmsNorm(x, weight, 1e-5);
      const maxima = rowMaxima(expected, d);
      assertClose(`rms-norm d=${d}`, actual, expected, TOLERANCES.rmsNorm, (i) => Math.max(maxima[Math.floor(i / d)]!, 1e-30));
    }
  });

  add("quantize per-token", async () => {
    const random = new SeededRandom(12);
    // Exact ties (s = 1): 2.5 → 2, −3.5 → −4, 0.5 → 0; absmax floor on a zero row; tiny values.
    const ties = Float32Array.of(127, 2.5, -3.5, 0.5, -0.5, 1.5, -127, 126.5);
    const zero = new Float32Array(8);
    const tiny = Float32Array.from({ length: 8 }, (_, i) => (i - 4) * 1e-7);
    for (const [label, x, width] of [
      ["ties", ties, 8],
      ["zero row", zero, 8],
      ["below floor", tiny, 8],
      ...AWKWARD_K.map((k) => [`K=${k}`, random.floats(3 * k, 3), k] as const),
    ] as const) {
      const expected = oraclePerToken(x, width);
      const actual = await ops.quantize(x, width, "per-token");
      assertEqualArrays(`quantize per-token ${label} codes`, actual.values, expected.codes);
      assertEqualArrays(`quantize per-token ${label} scales`, actual.scales, expected.scales);
    }
  });

  add("quantize q8k-block", async () => {
    const random = new SeededRandom(13);
    const x = random.floats(4 * 256, 2);
    x.fill(0, 256, 512); // an all-zero block: d = 0
    x[700] = -40; // a block whose largest magnitude is negative
    x[800] = 17.5;
    const expected = oracleQ8K(x);
    const actual = await ops.quantize(x, 512, "q8k-block");
    assertEqualArrays("quantize q8k codes", actual.values, expected.codes);
    assertEqualArrays("quantize q8k scales", actual.scales, expected.scales);
  });

  for (const scheme of ["per-token", "q8k-block"] as const) {
    for (const kind of ["tensor", "row", "block"] as const) {
      add(`ternary-matmul ${scheme} ${kind}-scale`, async () => {
        const random = new SeededRandom(scheme === "per-token" ? 14 : 15);
        const widths = scheme === "per-token" ? AWKWARD_K : ([256, 512] as const);
        for (const cols of widths) {
          for (const rows of AWKWARD_M) {
            const scale = scaleFor(random, kind, rows, cols);
            if (scale === null) continue;
            const trits = random.trits(rows * cols);
            const weight = ternaryTensorOf(trits, rows, cols, scale);
            for (const n of [1, 3]) {
              const x = random.floats(n * cols, 1.5);
              const { y, bound } = oracleMatmul(oracleDenseTernary(trits, rows, cols, scale), rows, cols, oracleDequantized(x, cols, scheme));
              const actual = await ops.ternaryMatmul(weight, x, scheme);
              assertClose(`ternary-matmul ${scheme} ${kind} M=${rows} K=${cols} N=${n}`, actual, y, TOLERANCES.ternaryMatmul, (i) => bound[i]! + 1e-30);
            }
          }
        }
      });
    }
  }

  add("rope", async () => {
    const random = new SeededRandom(16);
    for (const headDim of [2, 16, 64, 128]) {
      for (const theta of [10000, 500000]) {
        const positions = Int32Array.of(0, 1, 7, 100, 1023, 4095);
        const numHeads = 3;
        const x = random.floats(positions.length * numHeads * headDim);
        const expected = oracleRope(x, positions, numHeads, headDim, theta);
        const actual = await ops.rope(x, positions, numHeads, headDim, theta);
        const maxima = rowMaxima(x, numHeads * headDim);
        assertClose(`rope headDim=${headDim} theta=${theta}`, actual, expected, TOLERANCES.rope, (i) => maxima[Math.floor(i / (numHeads * headDim))]!);
      }
    }
  });

  add("attention (single pass and split-KV)", async () => {
    const random = new SeededRandom(17);
    for (const [numHeads, numKvHeads] of [
      [4, 2],
      [4, 1],
      [3, 3],
    ] as const) {
      for (const length of [1, 5, 17, 130]) {
        const headDim = 16;
        const keys = random.floats(length * numKvHeads * headDim, 2);
        const values = random.floats(length * numKvHeads * headDim);
        const queryPositions = Int32Array.from(new Set([0, Math.floor(length / 2), length - 1]));
        const queries = random.floats(queryPositions.length * numHeads * headDim, 2);
        const expected = oracleAttention(queries, keys, values, queryPositions, numHeads, numKvHeads, headDim);
        const vMax = Math.max(...Array.from(values, Math.abs));
        const label = `attention heads=${numHeads}/${numKvHeads} length=${length}`;
        const input = { queries, keys, values, queryPositions, numHeads, numKvHeads, headDim };
        const single = await ops.attention(input);
        assertClose(`${label} single pass`, single, expected, TOLERANCES.attention, () => vMax);
        for (const tileSize of [1, 4, 128]) {
          const split = await ops.attention({ ...input, tileSize });
          assertClose(`${label} split-KV tile=${tileSize} vs oracle`, split, expected, TOLERANCES.attention, () => vMax);
          assertClose(`${label} split-KV tile=${tileSize} vs single pass`, split, single, TOLERANCES.splitKv, () => vMax);
        }
      }
    }
  });

  add("lm-head", async () => {
    const random = new SeededRandom(18);
    for (const hidden of [1, 16, 17, 33, 256]) {
      const vocab = 37;
      const head = random.floats(vocab * hidden, 0.3);
      const x = random.floats(2 * hidden);
      const expected = new Float64Array(2 * vocab);
      const bound = new Float64Array(2 * vocab);
      for (let t = 0; t < 2; t++) {
        for (let v = 0; v < vocab; v++) {
          for (let h = 0; h < hidden; h++) {
            expected[t * vocab + v] = expected[t * vocab + v]! + head[v * hidden + h]! * x[t * hidden + h]!;
            bound[t * vocab + v] = bound[t * vocab + v]! + Math.abs(head[v * hidden + h]! * x[t * hidden + h]!);
          }
        }
      }
      const actual = await ops.lmHead(x, floatTensorOf(head, [vocab, hidden]));
      assertClose(`lm-head hidden=${hidden}`, actual, expected, TOLERANCES.lmHead, (i) => bound[i]! + 1e-30);
    }
  });
  return checks;
}
