// A stand-in for a backend's own packing in h1b-format's tests: h1b-format ships none, a backend passes its codec per call.
// It is another implementation of halo-i2x256 (besides kernels-cpu's cpuPacking and its native packer) on purpose: an
// independent oracle written from the spec in docs/formats/halo.md. h1b-format cannot depend on @halo/kernels-cpu (a backend
// package that tests against h1b-format; the dependency would be a cycle and would put a backend in the format library).
// kernels-cpu's packing.test.ts holds cpuPacking to the same spec and to golden bytes; a layout change must change both.
import type { TernaryCodec } from "./registry.js";

/**
 * A codec of the `halo_block_i2` layout (the CPU kernels' `halo-i2x256`, which `@halo/kernels-cpu`
 * ships), written straight from the spec in docs/formats/halo.md and slow on purpose: a row is
 * `ceil(cols / 256)` blocks of 64 bytes, byte `p` of block `b` holds code `w + 1` of weight
 * `256b + 64j + p` at bits `2j`, padding is code 1. `name` lets a test pose as another backend's
 * layout; `"halo-i2x256"` writes files the CPU backend maps.
 */
export function testBackendCodec(name = "test-backend-i2"): TernaryCodec {
  const rowBytes = (cols: number): number => Math.ceil(cols / 256) * 64;
  return {
    packing: name,
    bitsPerWeight: 2,
    checkShape(rows, cols, where) {
      if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows <= 0 || cols <= 0) throw new Error(`${where}: bad shape ${rows} × ${cols}`);
    },
    byteLength: (rows, cols) => rows * rowBytes(cols),
    rowBytes,
    encode(trits, rows, cols) {
      const out = new Uint8Array(rows * rowBytes(cols)).fill(0x55);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < cols; k++) {
          const at = r * rowBytes(cols) + (k >> 8) * 64 + (k & 63);
          const shift = 2 * ((k & 255) >> 6);
          out[at] = (out[at]! & ~(3 << shift)) | ((trits[r * cols + k]! + 1) << shift);
        }
      }
      return out;
    },
    decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
      for (let r = 0; r < rowCount; r++) {
        for (let k = 0; k < cols; k++) {
          const code = (bytes[(rowStart + r) * rowBytes(cols) + (k >> 8) * 64 + (k & 63)]! >> (2 * ((k & 255) >> 6))) & 3;
          out[r * cols + k] = code === 3 ? 0 : code - 1;
        }
      }
    },
  };
}
