// Weight scales in the native kernels' layout — [rows][cols / block] floats, constant blocks collapsed, fused
// matrices stacked — shared by the backends whose matmuls take one scale a row or a block (cpu, hip).
import type { WeightsTernaryScale } from "./weights.js";

/** Scales of one matrix as the native code takes them. */
export interface NativeScales {
  /** Weights per scale along a row; equals the column count for one scale per row. */
  readonly block: number;
  /** `[rows][cols / block]` */
  readonly values: Float32Array;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * A tensor's scale as `[rows][cols / block]`. Per-block scales that are equal across a whole row
 * (GGUF TQ2_0 of a BitNet checkpoint stores the tensor scale in every block) collapse to one
 * per row, so the fast one-dot-per-row kernel applies.
 *
 * @example
 * ```ts
 * nativeScales({ kind: "tensor", value: 0.5 }, 2, 8); // { block: 8, values: [0.5, 0.5] }
 * ```
 */
export function nativeScales(scale: WeightsTernaryScale, rows: number, cols: number): NativeScales {
  if (scale.kind === "tensor") return { block: cols, values: new Float32Array(rows).fill(scale.value) };
  if (scale.kind === "row") return { block: cols, values: Float32Array.from(scale.values) };
  const perRow = cols / scale.blockSize;
  let constant = true;
  for (let r = 0; r < rows && constant; r++) {
    const first = scale.values[r * perRow]!;
    for (let b = 1; b < perRow; b++) {
      if (!Object.is(scale.values[r * perRow + b]!, first)) {
        constant = false;
        break;
      }
    }
  }
  if (constant) return { block: cols, values: Float32Array.from({ length: rows }, (_, r) => scale.values[r * perRow]!) };
  return { block: scale.blockSize, values: Float32Array.from(scale.values) };
}

/**
 * Stacks the scales of matrices fused by rows (q|k|v, gate|up) at the common block size (the
 * greatest common divisor of the parts' blocks), repeating each part's scales as needed.
 *
 * @example
 * ```ts
 * fuseScales([{ rows: 2, cols: 8, scales: a }, { rows: 1, cols: 8, scales: b }]);
 * ```
 */
export function fuseScales(parts: ReadonlyArray<{ readonly rows: number; readonly cols: number; readonly scales: NativeScales }>): NativeScales {
  const cols = parts[0]!.cols;
  const block = parts.reduce((g, p) => gcd(g, p.scales.block), cols);
  const perRow = cols / block;
  const totalRows = parts.reduce((n, p) => n + p.rows, 0);
  const values = new Float32Array(totalRows * perRow);
  let row = 0;
  for (const part of parts) {
    const partPerRow = cols / part.scales.block;
    for (let r = 0; r < part.rows; r++, row++) {
      for (let j = 0; j < perRow; j++) values[row * perRow + j] = part.scales.values[r * partPerRow + Math.floor((j * block) / part.scales.block)]!;
    }
  }
  return { block, values };
}
