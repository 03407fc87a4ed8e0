// cpuPacking: the CPU kernels' own ternary layout (`halo_block_i2` in native/halo_cpu.h) as a PackingCodec, passed to writers and readers explicitly.
import { rowPackingCodec, type PackingCodec } from "@halo/kernels";

// Layout: each row is ceil(cols / 256) blocks of 64 bytes. Byte p of block b holds the 2-bit codes
// c = w + 1 of weights 256·b + 64·j + p at bits [2j, 2j + 1], j = 0..3, so one 64-byte load, a
// shift by 2j and a mask give 64 consecutive codes lined up with 64 consecutive int8 activations
// (the operand order of vpdpbusd / vpmaddubsw). Padding weights have code 1 (w = 0).
//
// The codec is rowPackingCodec of @halo/kernels applied to this layout (unit 256 weights / 64 bytes, byte p holding
// weights p + 64j). Performance (one 2560 × 6912 matrix, best of 12, Node 20, shared 2-core VM, million weights per
// second): encode about 600–700 and decode about 500, against 850 / 700 for the hand-written loops it replaced.

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
export const cpuPacking: PackingCodec = rowPackingCodec({
  packing: "halo-i2x256",
  unitWeights: HALO_I2X256_BLOCK,
  unitName: "block",
  firstWeight: (p) => p, // byte p: weights p, p + 64, p + 128, p + 192
  weightStride: 64,
  strict: false, // code 3 reads as 0 (the native loader refuses it)
});
