// The GPU matmul's rule for weight scales (nativeScales / fuseScales from @halo/kernels give their layout).
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type NativeScales } from "@halo/kernels";

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
