// rowPackingCodec: the shared body of the backends' 2-bit ternary layouts (rows of fixed-size units, four codes a byte).
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { PackingCodec } from "./packing.js";

/**
 * The shape of a 2-bit row layout, as {@link rowPackingCodec} takes it. A row of `cols` weights is
 * `ceil(cols / unitWeights)` units of `unitWeights / 4` bytes, rows following one another; weight
 * `w` is stored as the code `w + 1` ∈ {0, 1, 2}; padding weights (index ≥ `cols`) have code 1.
 * Within a unit, byte `p` holds the codes of weights `firstWeight(p) + j · weightStride` at bits
 * `[2j, 2j + 1]`, j = 0 … 3.
 */
export interface RowPackingLayout {
  /** The packing's name, as `PackingCodec.packing` and at the start of every error message. */
  readonly packing: string;
  /** Weights per unit: a positive multiple of 4. */
  readonly unitWeights: number;
  /** What the docs call a unit ("block", "chunk"): names it in error fields. */
  readonly unitName: string;
  /** Within a unit, the weight at bits 0-1 of byte `p` (0 … unitWeights / 4 − 1). */
  firstWeight(p: number): number;
  /** The step from the weight at bits `2j` of a byte to the one at bits `2j + 2`. */
  readonly weightStride: number;
  /**
   * `true`: `decodeRows` refuses a code 3 anywhere in the rows decoded, and a padding code other
   * than 1, with `KERNELS_BAD_WEIGHTS` (`strictReason` says why in the error). `false`: it reads
   * code 3 as 0 and ignores padding.
   */
  readonly strict: boolean;
  /** With `strict`, who else refuses such bytes (the error's `expected` ends with it). */
  readonly strictReason?: string;
}

/** The 4 trits of every byte value, `[byte · 4 + j]` for the weight at bits 2j (code 3 reads as 0). */
const LUT: Int8Array = new Int8Array(256 * 4);
/** 1 for the byte values that hold a code 3. */
const HAS_CODE_3: Uint8Array = new Uint8Array(256);
for (let v = 0; v < 256; v++) {
  for (let j = 0; j < 4; j++) {
    const code = (v >> (2 * j)) & 3;
    LUT[v * 4 + j] = code === 3 ? 0 : code - 1;
    if (code === 3) HAS_CODE_3[v] = 1;
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

// The hot loops are module functions, not closures of rowPackingCodec: the layout arrives as arguments (registers), and
// each loop is optimised once for all layouts. On a 2560 × 6912 matrix (shared 2-core VM, noisy) they encode at about
// 600–700 and decode at about 500 million weights a second, 15–35 % below the hand-written per-layout loops they replace.

/**
 * Encodes the `whole` unpadded units of one row: trits from `src`, bytes to `dst`. Returns -1, or the index in `trits`
 * of the first weight (in byte order) outside {-1, 0, 1}.
 */
function encodeUnits(trits: Int8Array, src: number, out: Uint8Array, dst: number, whole: number, unit: number, first: Int32Array, stride: number): number {
  const unitBytes = unit >> 2;
  const s2 = 2 * stride;
  const s3 = 3 * stride;
  for (let u = 0; u < whole; u++) {
    const s = src + u * unit;
    const d = dst + u * unitBytes;
    for (let p = 0; p < unitBytes; p++) {
      const k = s + first[p]!;
      const c0 = trits[k]! + 1;
      const c1 = trits[k + stride]! + 1;
      const c2 = trits[k + s2]! + 1;
      const c3 = trits[k + s3]! + 1;
      // Unsigned view: any value outside {0, 1, 2} (a trit outside {-1, 0, 1}) exceeds 2.
      if (c0 >>> 0 > 2 || c1 >>> 0 > 2 || c2 >>> 0 > 2 || c3 >>> 0 > 2) {
        return k + stride * (c0 >>> 0 > 2 ? 0 : c1 >>> 0 > 2 ? 1 : c2 >>> 0 > 2 ? 2 : 3);
      }
      out[d + p] = c0 | (c1 << 2) | (c2 << 4) | (c3 << 6);
    }
  }
  return -1;
}

/**
 * Decodes the `whole` unpadded units of one row: bytes from `src`, trits to `dst`. Returns -1, or (with `strict`) the
 * index in `bytes` of the first byte holding a code 3.
 */
function decodeUnits(
  bytes: Uint8Array,
  src: number,
  out: Int8Array,
  dst: number,
  whole: number,
  unit: number,
  first: Int32Array,
  stride: number,
  strict: boolean,
): number {
  const unitBytes = unit >> 2;
  const s2 = 2 * stride;
  const s3 = 3 * stride;
  for (let u = 0; u < whole; u++) {
    const s = src + u * unitBytes;
    const o = dst + u * unit;
    for (let p = 0; p < unitBytes; p++) {
      const v = bytes[s + p]!;
      if (strict && HAS_CODE_3[v] === 1) return s + p;
      const k = o + first[p]!;
      const l = v << 2;
      out[k] = LUT[l]!;
      out[k + stride] = LUT[l + 1]!;
      out[k + s2] = LUT[l + 2]!;
      out[k + s3] = LUT[l + 3]!;
    }
  }
  return -1;
}

function badLayout(layout: RowPackingLayout, what: string): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `rowPackingCodec(${layout.packing}): ${what}`, {
    field: "layout",
    expected: "unitWeights a positive multiple of 4, and firstWeight / weightStride placing every weight of a unit exactly once",
    actual: what,
    hint: "Fix the layout description passed to rowPackingCodec",
  });
}

/**
 * Builds the {@link PackingCodec} of a 2-bit row layout (see {@link RowPackingLayout}): shape
 * checks, byte lengths, `encode` (refusing a weight outside {-1, 0, +1} with `KERNELS_BAD_ARGUMENT`,
 * naming its index) and `decodeRows` (refusing short inputs with `KERNELS_BAD_ARGUMENT`, and with
 * `strict` a code 3 or a padding code other than 1 with `KERNELS_BAD_WEIGHTS`). Error messages
 * start with the layout's name (`"halo-g2 encode: …"`). The loops are table-driven per byte, not
 * per weight (within 15–35 % of hand-written per-layout loops).
 *
 * Throws `KERNELS_BAD_ARGUMENT` at once if the layout does not place every weight of a unit in
 * exactly one (byte, bit pair).
 *
 * @example
 * ```ts
 * import { rowPackingCodec } from "@halo/kernels";
 * // 16 weights in 4 bytes; byte p holds weights p, p + 4, p + 8, p + 12 at bits 0, 2, 4, 6.
 * const codec = rowPackingCodec({
 *   packing: "demo-16",
 *   unitWeights: 16,
 *   unitName: "unit",
 *   firstWeight: (p) => p,
 *   weightStride: 4,
 *   strict: false,
 * });
 * codec.rowBytes(20); // 8 (two units, the second padded)
 * codec.encode(Int8Array.of(1, 0, 0, 0, -1), 1, 5)[0]; // 0b01_01_00_10 = 0x52
 * ```
 */
export function rowPackingCodec(layout: RowPackingLayout): PackingCodec {
  const { packing: name, unitWeights: unit, weightStride: stride, strict } = layout;
  if (!Number.isSafeInteger(unit) || unit <= 0 || unit % 4 !== 0) throw badLayout(layout, `unitWeights is ${unit}`);
  const unitBytes = unit >> 2;
  // first[p]: the weight at bits 0-1 of byte p; byteOf[k] / shiftOf[k]: where weight k of a unit lives.
  const first = new Int32Array(unitBytes);
  const byteOf = new Int32Array(unit).fill(-1);
  const shiftOf = new Int32Array(unit);
  for (let p = 0; p < unitBytes; p++) {
    first[p] = layout.firstWeight(p);
    for (let j = 0; j < 4; j++) {
      const k = first[p]! + j * stride;
      if (!Number.isSafeInteger(k) || k < 0 || k >= unit || byteOf[k] !== -1) {
        throw badLayout(layout, `byte ${p}, bits ${2 * j}-${2 * j + 1} place weight ${k}`);
      }
      byteOf[k] = p;
      shiftOf[k] = 2 * j;
    }
  }
  const rowBytesOf = (cols: number): number => Math.ceil(cols / unit) * unitBytes;

  const badTrit = (index: number, value: number): HaloError =>
    new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${name} encode: weights must be -1, 0 or +1`, {
      field: `trits[${index}]`,
      expected: "-1, 0 or 1",
      actual: value,
      hint: "Ternarise the weights first (absmean scaling and rounding), then encode the trits",
    });
  const badCode = (row: number, u: number, byte: number, value: number): HaloError =>
    new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, `${name} decode: a 2-bit code is 3, which no weight has`, {
      field: `row ${row}, ${layout.unitName} ${u}, byte ${byte}`,
      expected: "codes 0, 1 or 2 (weights -1, 0, +1)",
      actual: `0x${value.toString(16).padStart(2, "0")}`,
      hint: `The tensor's data is corrupt or is not ${name}: download or convert the model file again`,
    });
  const badPadding = (row: number, column: number, cols: number, code: number): HaloError =>
    new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, `${name} decode: a padding weight has a code other than 1`, {
      field: `row ${row}, column ${column} (padding: columns ≥ ${cols})`,
      expected: `code 1 (a zero weight) in every padding position${layout.strictReason ? `, ${layout.strictReason}` : ""}`,
      actual: `code ${code}`,
      hint: `The tensor's data is corrupt or was not packed as ${name}: download or convert the model file again`,
    });

  return {
    packing: name,
    bitsPerWeight: 2,
    checkShape(rows, cols, where) {
      checkMatrix(rows, cols, where);
    },
    byteLength: (rows, cols) => rows * rowBytesOf(cols),
    rowBytes: rowBytesOf,
    encode(trits, rows, cols) {
      checkMatrix(rows, cols, `${name} encode`);
      if (trits.length < rows * cols) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${name} encode: too few trits`, {
          expected: `${rows} × ${cols} = ${rows * cols} values`,
          actual: trits.length,
          hint: "Pass the whole matrix, row-major, one value per weight",
        });
      }
      const [fw, ub, uw, s1] = [first, unitBytes, unit, stride];
      const rowBytes = rowBytesOf(cols);
      const out = new Uint8Array(rows * rowBytes);
      const whole = Math.floor(cols / uw); // units without padding
      const tail = cols - whole * uw; // real weights in the last, padded unit (0: none)
      for (let r = 0; r < rows; r++) {
        const src = r * cols;
        const dst = r * rowBytes;
        const bad = encodeUnits(trits, src, out, dst, whole, uw, fw, s1);
        if (bad >= 0) throw badTrit(bad, trits[bad]!);
        if (tail > 0) {
          const s = src + whole * uw;
          const d = dst + whole * ub;
          out.fill(0x55, d, d + ub); // every code 1: zero weights
          for (let k = 0; k < tail; k++) {
            const t = trits[s + k]!;
            if (t !== 0 && t !== 1 && t !== -1) throw badTrit(s + k, t);
            const shift = shiftOf[k]!;
            const at = d + byteOf[k]!;
            out[at] = (out[at]! & ~(3 << shift)) | ((t + 1) << shift);
          }
        }
      }
      return out;
    },
    decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
      const rowBytes = rowBytesOf(cols);
      const needed = (rowStart + rowCount) * rowBytes;
      if (bytes.length < needed) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${name} decode: packed bytes too short`, {
          expected: `${needed} bytes`,
          actual: bytes.length,
          hint: "The tensor's data is truncated: download or convert the model file again",
        });
      }
      if (out.length < rowCount * cols) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${name} decode: output too short`, {
          expected: `${rowCount} × ${cols} = ${rowCount * cols} values`,
          actual: out.length,
        });
      }
      const [fw, ub, uw, s1] = [first, unitBytes, unit, stride];
      const whole = Math.floor(cols / uw);
      const tail = cols - whole * uw;
      for (let r = 0; r < rowCount; r++) {
        const src = (rowStart + r) * rowBytes;
        const dst = r * cols;
        const bad = decodeUnits(bytes, src, out, dst, whole, uw, fw, s1, strict);
        if (bad >= 0) throw badCode(rowStart + r, Math.floor((bad - src) / ub), (bad - src) % ub, bytes[bad]!);
        if (tail > 0) {
          const s = src + whole * ub;
          const o = dst + whole * uw;
          if (strict) {
            // Padding bytes are checked too: a code 3 anywhere means the bytes are not this layout, and padding must be code 1.
            for (let p = 0; p < ub; p++) {
              const v = bytes[s + p]!;
              if (HAS_CODE_3[v] === 1) throw badCode(rowStart + r, whole, p, v);
              for (let j = 0; j < 4; j++) {
                const k = fw[p]! + j * s1;
                const code = (v >> (2 * j)) & 3;
                if (k < tail) out[o + k] = code - 1;
                else if (code !== 1) throw badPadding(rowStart + r, whole * uw + k, cols, code);
              }
            }
          } else {
            for (let k = 0; k < tail; k++) out[o + k] = LUT[(bytes[s + byteOf[k]!]! << 2) + (shiftOf[k]! >> 1)]!;
          }
        }
      }
    },
  };
}
