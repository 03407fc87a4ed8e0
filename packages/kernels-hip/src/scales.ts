// Weight scales in the kernels' layout: [rows][cols / block] floats, constant blocks collapsed, fused matrices stacked.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type WeightsTernaryScale } from "@halo/kernels";

/** Scales of one matrix as `setMatrix` takes them. */
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
 * (GGUF TQ2_0 of a BitNet checkpoint stores the tensor scale in every block) collapse to one per
 * row, so the one-scale-a-row matmul applies.
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
  for (let r = 0; r < rows; r++) {
    const first = scale.values[r * perRow]!;
    for (let b = 1; b < perRow; b++) {
      if (!Object.is(scale.values[r * perRow + b]!, first)) return { block: scale.blockSize, values: Float32Array.from(scale.values) };
    }
  }
  return { block: cols, values: Float32Array.from({ length: rows }, (_, r) => scale.values[r * perRow]!) };
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

/**
 * The block-scale rule of the GPU matmul: one scale a row, or blocks of a multiple of 64 weights (whole halo-g2
 * chunks) — anything else is `KERNELS_UNSUPPORTED_CONFIG`, naming the cpu backend, which takes any block size.
 */
export function checkScaleBlock(scales: NativeScales, cols: number, field: string): void {
  if (scales.block === cols || scales.block % 64 === 0) return;
  throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "the GPU kernels take block scales only over whole 64-weight chunks", {
    field,
    expected: "one scale per tensor or row, or blocks of a multiple of 64 weights",
    actual: `blocks of ${scales.block} weights (rows of ${cols})`,
    hint: 'Load this model with the cpu backend (backend: "cpu"), which takes any block size',
  });
}
