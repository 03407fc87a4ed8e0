// gpuPacking: the GPU kernels' own ternary layout (halo-g2, defined in kernels/halo_kernel_args.h) as a PackingCodec.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type PackingCodec } from "@halo/kernels";

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

/** Within a chunk, the byte that holds weight k (0 … 63): 4i + b for k = 16i + 4j + b. */
function byteOf(k: number): number {
  return ((k >> 4) << 2) | (k & 3);
}

/** Within that byte, the bit position of weight k: 2j. */
function shiftOf(k: number): number {
  return ((k >> 2) & 3) << 1;
}

/** The 4 trits of every byte value, `[byte · 4 + j]` for the weight at bits 2j; bytes holding a code 3 flagged in {@link INVALID}. */
const LUT: Int8Array = new Int8Array(256 * 4);
const INVALID: Uint8Array = new Uint8Array(256);
for (let v = 0; v < 256; v++) {
  for (let j = 0; j < 4; j++) {
    const code = (v >> (2 * j)) & 3;
    LUT[v * 4 + j] = code - 1;
    if (code === 3) INVALID[v] = 1;
  }
}

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
  return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-g2 encode: weights must be -1, 0 or +1", {
    field: `trits[${index}]`,
    expected: "-1, 0 or 1",
    actual: value,
    hint: "Ternarise the weights first (absmean scaling and rounding), then encode the trits",
  });
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
export const gpuPacking: PackingCodec = {
  packing: "halo-g2",
  bitsPerWeight: 2,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
  },
  byteLength: (rows, cols) => rows * haloG2RowBytes(cols),
  rowBytes: haloG2RowBytes,
  encode(trits, rows, cols) {
    checkMatrix(rows, cols, "halo-g2 encode");
    if (trits.length < rows * cols) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-g2 encode: too few trits", {
        expected: `${rows} × ${cols} = ${rows * cols} values`,
        actual: trits.length,
        hint: "Pass the whole matrix, row-major, one value per weight",
      });
    }
    const rowBytes = haloG2RowBytes(cols);
    const out = new Uint8Array(rows * rowBytes);
    const whole = cols >> 6; // chunks without padding
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      const dst = r * rowBytes;
      for (let c = 0; c < whole; c++) {
        const s = src + (c << 6);
        const d = dst + (c << 4);
        // Byte 4i + b: weights 16i + b, 16i + 4 + b, 16i + 8 + b, 16i + 12 + b at bits 0, 2, 4, 6.
        for (let p = 0; p < 16; p++) {
          const k = s + ((p >> 2) << 4) + (p & 3);
          const c0 = trits[k]! + 1;
          const c1 = trits[k + 4]! + 1;
          const c2 = trits[k + 8]! + 1;
          const c3 = trits[k + 12]! + 1;
          // Unsigned view: any value outside {0, 1, 2} (a trit outside {-1, 0, 1}) exceeds 2.
          if (c0 >>> 0 > 2 || c1 >>> 0 > 2 || c2 >>> 0 > 2 || c3 >>> 0 > 2) {
            const j = c0 >>> 0 > 2 ? 0 : c1 >>> 0 > 2 ? 1 : c2 >>> 0 > 2 ? 2 : 3;
            throw badTrit(k + 4 * j, trits[k + 4 * j]!);
          }
          out[d + p] = c0 | (c1 << 2) | (c2 << 4) | (c3 << 6);
        }
      }
      if (whole << 6 < cols) {
        const d = dst + (whole << 4);
        out.fill(0x55, d, d + HALO_G2_CHUNK_BYTES); // every code 1: zero weights
        for (let k = 0; k < cols - (whole << 6); k++) {
          const index = src + (whole << 6) + k;
          const t = trits[index]!;
          if (t !== 0 && t !== 1 && t !== -1) throw badTrit(index, t);
          const shift = shiftOf(k);
          const at = d + byteOf(k);
          out[at] = (out[at]! & ~(3 << shift)) | ((t + 1) << shift);
        }
      }
    }
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const rowBytes = haloG2RowBytes(cols);
    const needed = (rowStart + rowCount) * rowBytes;
    if (bytes.length < needed) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-g2 decode: packed bytes too short", {
        expected: `${needed} bytes`,
        actual: bytes.length,
        hint: "The tensor's data is truncated: download or convert the model file again",
      });
    }
    if (out.length < rowCount * cols) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "halo-g2 decode: output too short", {
        expected: `${rowCount} × ${cols} = ${rowCount * cols} values`,
        actual: out.length,
      });
    }
    const chunks = rowBytes >> 4;
    for (let r = 0; r < rowCount; r++) {
      const src = (rowStart + r) * rowBytes;
      const dst = r * cols;
      for (let c = 0; c < chunks; c++) {
        const s = src + (c << 4);
        const base = c << 6;
        const full = base + 64 <= cols;
        for (let p = 0; p < 16; p++) {
          const v = bytes[s + p]!;
          // Padding bytes are checked too: a code 3 anywhere means the bytes are not halo-g2 (and padding must be code 1, below).
          if (INVALID[v] === 1) throw badCode(rowStart + r, c, p, v);
          const k = base + ((p >> 2) << 4) + (p & 3);
          const l = v << 2;
          if (full) {
            out[dst + k] = LUT[l]!;
            out[dst + k + 4] = LUT[l + 1]!;
            out[dst + k + 8] = LUT[l + 2]!;
            out[dst + k + 12] = LUT[l + 3]!;
          } else {
            for (let j = 0; j < 4; j++) {
              if (k + 4 * j < cols) out[dst + k + 4 * j] = LUT[l + j]!;
              else if (LUT[l + j] !== 0) throw badPadding(rowStart + r, k + 4 * j, cols, LUT[l + j]! + 1);
            }
          }
        }
      }
    }
  },
};

function badPadding(row: number, column: number, cols: number, code: number): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, "halo-g2 decode: a padding weight has a code other than 1", {
    field: `row ${row}, column ${column} (padding: columns ≥ ${cols})`,
    expected: "code 1 (a zero weight) in every padding position, as the device upload requires",
    actual: `code ${code}`,
    hint: "The tensor's data is corrupt or was not packed as halo-g2: download or convert the model file again",
  });
}

function badCode(row: number, chunk: number, byte: number, value: number): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, "halo-g2 decode: a 2-bit code is 3, which no weight has", {
    field: `row ${row}, chunk ${chunk}, byte ${byte}`,
    expected: "codes 0, 1 or 2 (weights -1, 0, +1)",
    actual: `0x${value.toString(16).padStart(2, "0")}`,
    hint: "The tensor's data is corrupt or is not halo-g2: download or convert the model file again",
  });
}
