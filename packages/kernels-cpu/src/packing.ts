// cpuPacking: the CPU kernels' own ternary layout (`halo_block_i2` in native/halo_cpu.h) as a PackingCodec, passed to writers and readers explicitly.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type PackingCodec } from "@halo/kernels";

// Layout: each row is ceil(cols / 256) blocks of 64 bytes. Byte p of block b holds the 2-bit codes
// c = w + 1 of weights 256·b + 64·j + p at bits [2j, 2j + 1], j = 0..3, so one 64-byte load, a
// shift by 2j and a mask give 64 consecutive codes lined up with 64 consecutive int8 activations
// (the operand order of vpdpbusd / vpmaddubsw). Padding weights have code 1 (w = 0).
//
// Performance notes (one 6912 × 2560 matrix, best of 3, Node 20 under vitest, shared 2-core VM,
// million weights per second): encoding builds each byte from its four trits in one expression
// (628; a per-weight encoder like halo-v2's runs 355 on the same machine), decoding reads one
// lookup-table entry per byte and scatters its 4 trits 64 apart (655; halo-v2's contiguous stores
// run 884).

/**
 * Weights per `halo-i2x256` block (one 64-byte `halo_block_i2`).
 *
 * @example
 * ```ts
 * const blocksPerRow = Math.ceil(cols / HALO_I2X256_BLOCK);
 * ```
 */
export const HALO_I2X256_BLOCK = 256;

/**
 * Bytes per `halo-i2x256` block.
 *
 * @example
 * ```ts
 * const block = bytes.subarray(b * HALO_I2X256_BLOCK_BYTES, (b + 1) * HALO_I2X256_BLOCK_BYTES);
 * ```
 */
export const HALO_I2X256_BLOCK_BYTES = 64;

/**
 * Bytes of one `halo-i2x256` row: `ceil(cols / 256) · 64`.
 *
 * @example
 * ```ts
 * haloI2x256RowBytes(2560); // 640
 * haloI2x256RowBytes(300); // 128 (two blocks, the second padded)
 * ```
 */
export function haloI2x256RowBytes(cols: number): number {
  return Math.ceil(cols / HALO_I2X256_BLOCK) * HALO_I2X256_BLOCK_BYTES;
}

/** The 4 trits of every byte, `[byte * 4 + j]` for the weight at bits `2j` (code 3 → 0). */
const LUT: Int8Array = (() => {
  const lut = new Int8Array(256 * 4);
  for (let b = 0; b < 256; b++) {
    for (let j = 0; j < 4; j++) {
      const code = (b >> (2 * j)) & 3;
      lut[b * 4 + j] = code === 0 ? -1 : code === 2 ? 1 : 0;
    }
  }
  return lut;
})();

function checkMatrix(rows: number, cols: number, where: string): void {
  for (const [name, value] of [
    ["rows", rows],
    ["cols", cols],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${where}: ${name} must be a positive whole number`, {
        field: name,
        expected: "> 0",
        actual: value,
      });
    }
  }
  if (!Number.isSafeInteger(rows * cols) || rows * cols > 2 ** 40) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${where}: rows × cols overflows`, {
      expected: "at most 2^40 weights",
      actual: `${rows} × ${cols}`,
    });
  }
}

function badTrit(index: number, value: number): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-i2x256 encode: weights must be -1, 0 or +1", {
    field: `trits[${index}]`,
    expected: "-1, 0 or 1",
    actual: value,
    hint: "Ternarise the weights first (absmean scaling and rounding), then encode the trits",
  });
}

/**
 * `halo-i2x256`: the layout the CPU kernels compute from (`halo_block_i2`), so a `.halo` file in
 * it opens zero-copy on this backend (its matrices are mapped from the file, not repacked). 2 bits
 * per weight; any column count is storable. It is a {@link PackingCodec}: pass it (or
 * `backendFactory.packings`) to `writeHalo` / `convertModel` / `openModel` of `@halo/h1b-format`;
 * nothing registers it globally.
 *
 * - A row of `cols` weights is `ceil(cols / 256)` blocks of 64 bytes; rows follow one another,
 *   so a matrix is `rows · ceil(cols / 256) · 64` bytes and rows are independent.
 * - Code `c = w + 1` ∈ {0, 1, 2}. Byte `p` (0..63) of block `b` holds the codes of weights
 *   `256·b + 64·j + p` at bits `[2j, 2j+1]`, j = 0..3: bits 0–1 weight `256b + p`, bits 2–3
 *   weight `256b + 64 + p`, bits 4–5 weight `256b + 128 + p`, bits 6–7 weight `256b + 192 + p`.
 * - Padding weights (index ≥ `cols`) have code 1 (w = 0).
 * - Code 3 never occurs in a valid file; `decodeRows` reads it as 0 (the native loader refuses it).
 * - No inline scales: the scale travels separately (the `.halo` scale tensor).
 *
 * Errors are `KERNELS_BAD_ARGUMENT` (a bad shape, a weight outside {-1, 0, +1}, too few trits or
 * too few bytes).
 *
 * @example
 * ```ts
 * import { cpuPacking } from "@halo/kernels-cpu";
 * import { openModel, writeHalo } from "@halo/h1b-format";
 * const row = new Int8Array(256);
 * row[0] = 1; // byte 0, bits 0-1: code 2
 * row[64] = -1; // byte 0, bits 2-3: code 0
 * cpuPacking.encode(row, 1, 256)[0]; // 0b01_01_00_10 = 0x52
 * await writeHalo(model, "m.halo", { packing: cpuPacking }); // the cpu backend maps it on load
 * const opened = await openModel("m.halo", { codecs: [cpuPacking] }); // decodeRows works too
 * ```
 */
export const cpuPacking: PackingCodec = {
  packing: "halo-i2x256",
  bitsPerWeight: 2,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
  },
  byteLength: (rows, cols) => rows * haloI2x256RowBytes(cols),
  rowBytes: haloI2x256RowBytes,
  encode(trits, rows, cols) {
    checkMatrix(rows, cols, "halo-i2x256 encode");
    if (trits.length < rows * cols) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-i2x256 encode: too few trits", {
        expected: `${rows} × ${cols} = ${rows * cols} values`,
        actual: trits.length,
        hint: "Pass the whole matrix, row-major, one value per weight",
      });
    }
    const rowBytes = haloI2x256RowBytes(cols);
    const out = new Uint8Array(rows * rowBytes);
    const whole = cols >> 8; // blocks without padding
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      const dst = r * rowBytes;
      for (let b = 0; b < whole; b++) {
        const s = src + (b << 8);
        const d = dst + (b << 6);
        for (let p = 0; p < 64; p++) {
          const c0 = trits[s + p]! + 1;
          const c1 = trits[s + 64 + p]! + 1;
          const c2 = trits[s + 128 + p]! + 1;
          const c3 = trits[s + 192 + p]! + 1;
          // Unsigned view: any value outside {0, 1, 2} (a trit outside {-1, 0, 1}) exceeds 2.
          if (c0 >>> 0 > 2 || c1 >>> 0 > 2 || c2 >>> 0 > 2 || c3 >>> 0 > 2) {
            const j = c0 >>> 0 > 2 ? 0 : c1 >>> 0 > 2 ? 1 : c2 >>> 0 > 2 ? 2 : 3;
            throw badTrit(s + 64 * j + p, trits[s + 64 * j + p]!);
          }
          out[d + p] = c0 | (c1 << 2) | (c2 << 4) | (c3 << 6);
        }
      }
      if (whole << 8 < cols) {
        const d = dst + (whole << 6);
        for (let p = 0; p < 64; p++) {
          let byte = 0;
          for (let j = 0; j < 4; j++) {
            const k = (whole << 8) + 64 * j + p;
            let code = 1; // padding: w = 0
            if (k < cols) {
              const t = trits[src + k]!;
              if (t !== 0 && t !== 1 && t !== -1) throw badTrit(src + k, t);
              code = t + 1;
            }
            byte |= code << (2 * j);
          }
          out[d + p] = byte;
        }
      }
    }
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const rowBytes = haloI2x256RowBytes(cols);
    const needed = (rowStart + rowCount) * rowBytes;
    if (bytes.length < needed) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-i2x256 decode: packed bytes too short", {
        expected: `${needed} bytes`,
        actual: bytes.length,
        hint: "The tensor's data is truncated: download or convert the model file again",
      });
    }
    const whole = cols >> 8;
    for (let r = 0; r < rowCount; r++) {
      const src = (rowStart + r) * rowBytes;
      const dst = r * cols;
      for (let b = 0; b < whole; b++) {
        const s = src + (b << 6);
        const o = dst + (b << 8);
        for (let p = 0; p < 64; p++) {
          const k = bytes[s + p]! << 2;
          out[o + p] = LUT[k]!;
          out[o + 64 + p] = LUT[k + 1]!;
          out[o + 128 + p] = LUT[k + 2]!;
          out[o + 192 + p] = LUT[k + 3]!;
        }
      }
      const s = src + (whole << 6);
      for (let k = whole << 8; k < cols; k++) {
        const within = k & 255;
        out[dst + k] = LUT[(bytes[s + (within & 63)]! << 2) + (within >> 6)]!;
      }
    }
  },
};
