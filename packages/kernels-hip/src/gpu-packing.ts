// gpuPacking: the GPU kernels' own ternary layout (halo-g2, defined in kernels/halo_kernel_args.h) as a PackingCodec.
import { rowPackingCodec, type PackingCodec } from "@halo/kernels";

// Layout (kernels/halo_kernel_args.h): a row is ceil(cols / 64) chunks of 16 bytes; a chunk is four little-endian
// 32-bit words, word i holding weights 16i … 16i + 15 of the chunk, weight 16i + 4j + b at bits 8b + 2j. As bytes:
// byte 4i + b of a chunk holds weights 16i + 4j + b (j = 0 … 3) at bits 2j. Code c = w + 1 ∈ {0, 1, 2}; 3 is
// invalid; padding weights (index ≥ cols) have code 1 (w = 0).

/**
 * Weights per halo-g2 chunk (16 bytes). Rows are padded to a multiple of this with zero weights.
 *
 * @example
 * ```ts
 * const chunks = Math.ceil(cols / HALO_G2_CHUNK);
 * ```
 */
export const HALO_G2_CHUNK = 64;

/**
 * Bytes per halo-g2 chunk: four little-endian 32-bit words.
 *
 * @example
 * ```ts
 * const chunk = bytes.subarray(c * HALO_G2_CHUNK_BYTES, (c + 1) * HALO_G2_CHUNK_BYTES);
 * ```
 */
export const HALO_G2_CHUNK_BYTES = 16;

/**
 * Bytes of one halo-g2 row: `ceil(cols / 64) · 16`.
 *
 * @example
 * ```ts
 * haloG2RowBytes(2560); // 640
 * haloG2RowBytes(100); // 32 (two chunks, the second padded)
 * ```
 */
export function haloG2RowBytes(cols: number): number {
  return Math.ceil(cols / HALO_G2_CHUNK) * HALO_G2_CHUNK_BYTES;
}

/**
 * `halo-g2`: the layout the GPU kernels compute from, so a `.halo` file in it loads on this backend
 * with no repacking (its bytes go to the device as they are). 2 bits per weight, rows padded to 64
 * weights; any column count is storable. It is a {@link PackingCodec}: pass it (or
 * `backendFactory.packings`) to `writeHalo` / `convertModel` / `openModel` of `@halo/h1b-format`;
 * nothing registers it globally.
 *
 * - A row of `cols` weights is `ceil(cols / 64)` chunks of 16 bytes; rows follow one another, so a
 *   matrix is `rows · ceil(cols / 64) · 16` bytes and rows are independent.
 * - A chunk is four little-endian 32-bit words; word `i` holds weights `16i … 16i + 15` of the
 *   chunk, weight `16i + 4j + b` at bits `8b + 2j` (j, b = 0 … 3). So `(word >> 2j) & 0x03030303`
 *   is four codes whose byte `b` pairs with byte `b` of the int8 activations' word `4i + j`: one
 *   4-way dot product (`v_dot4`, `dp4a`) per 4 weights with no unpacking table, and a wave's lanes
 *   read 512 contiguous bytes of a row.
 * - Code `c = w + 1` ∈ {0, 1, 2}; padding weights (index ≥ `cols`) have code 1 (w = 0).
 * - Code 3 never occurs in a valid file, nor a padding code other than 1: `decodeRows` refuses both
 *   with `KERNELS_BAD_WEIGHTS`, exactly as the device upload does (native/pack_g2.cpp), so a file
 *   that decodes here also loads on the GPU.
 * - No inline scales: the scale travels separately (the `.halo` scale tensor).
 *
 * Errors are `KERNELS_BAD_ARGUMENT` (a bad shape, a weight outside {-1, 0, +1}, too few trits or
 * bytes) and `KERNELS_BAD_WEIGHTS` (a code 3, or a padding code other than 1, in the rows decoded).
 *
 * @example
 * ```ts
 * import { gpuPacking } from "@halo/kernels-hip";
 * import { openModel, writeHalo } from "@halo/h1b-format";
 * const row = new Int8Array(64);
 * row[0] = 1; // byte 0, bits 0-1: code 2
 * row[4] = -1; // byte 0, bits 2-3: code 0
 * gpuPacking.encode(row, 1, 64)[0]; // 0b01_01_00_10 = 0x52
 * await writeHalo(model, "m.halo", { packing: gpuPacking }); // the hip backend uploads it as is
 * const opened = await openModel("m.halo", { codecs: [gpuPacking] }); // decodeRows works too
 * ```
 */
export const gpuPacking: PackingCodec = rowPackingCodec({
  packing: "halo-g2",
  unitWeights: HALO_G2_CHUNK,
  unitName: "chunk",
  firstWeight: (p) => ((p >> 2) << 4) | (p & 3), // byte 4i + b: weights 16i + b, 16i + 4 + b, 16i + 8 + b, 16i + 12 + b
  weightStride: 4,
  strict: true, // code 3 and padding codes other than 1 are KERNELS_BAD_WEIGHTS, as in native/pack_g2.cpp
  strictReason: "as the device upload requires",
});
