// Hugging Face BitNet packed ternary codec: uint8 [rows/4, cols], four row quarters per byte.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { checkMatrix } from "./plain.js";
import { registerTernaryCodec, type TernaryCodec } from "./registry.js";

/**
 * The packed layout of `microsoft/bitnet-b1.58-2B-4T` (transformers `integrations/bitnet.py`
 * `pack_weights` / `unpack_weights`; spec: research/formats-and-peers.md §1.4).
 *
 * For a `[rows, cols]` ternary matrix with `R = rows / 4`, packed byte `[r][c]` holds
 * `W[r + i·R][c]` in bits `2i+1..2i` (LSB first, i = 0..3) as code `trit + 1`. Code 3 never occurs
 * in a valid file; like llama.cpp's converter, the decoder maps it to 0. Rows must be a multiple of 4.
 * 2 bits per weight, no padding.
 *
 * @example
 * ```ts
 * const codec = ternaryCodec("hf-packed");
 * const packed = codec.encode(trits, 8, 3); // 6 bytes, shape [2, 3]
 * ```
 */
export const hfPackedCodec: TernaryCodec = {
  packing: "hf-packed",
  bitsPerWeight: 2,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
    if (rows % 4 !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: hf-packed needs a row count divisible by 4`, {
        field: "rows",
        expected: "a multiple of 4 (four row quarters share each byte)",
        actual: rows,
        hint: "Store this matrix in another packing (int8, tq2_0)",
      });
    }
  },
  byteLength: (rows, cols) => (rows / 4) * cols,
  encode(trits, rows, cols) {
    hfPackedCodec.checkShape(rows, cols, "hf-packed encode");
    if (trits.length !== rows * cols) {
      throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "hf-packed encode: wrong number of trits", {
        expected: rows * cols,
        actual: trits.length,
      });
    }
    const quarter = rows / 4;
    const out = new Uint8Array(quarter * cols);
    for (let i = 0; i < 4; i++) {
      const shift = 2 * i;
      for (let r = 0; r < quarter; r++) {
        const src = (r + i * quarter) * cols;
        const dst = r * cols;
        for (let c = 0; c < cols; c++) {
          const t = trits[src + c]!;
          if (t !== 0 && t !== 1 && t !== -1) {
            throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "hf-packed encode: value is not a trit", {
              offset: src + c,
              expected: "-1, 0 or 1",
              actual: t,
            });
          }
          out[dst + c] = out[dst + c]! | ((t + 1) << shift);
        }
      }
    }
    return out;
  },
  decodeRows(bytes, rows, cols, rowStart, rowCount, out) {
    const quarter = rows / 4;
    for (let k = 0; k < rowCount; k++) {
      const row = rowStart + k;
      const i = Math.floor(row / quarter);
      const shift = 2 * i;
      const src = (row - i * quarter) * cols;
      const dst = k * cols;
      for (let c = 0; c < cols; c++) {
        const code = (bytes[src + c]! >> shift) & 3;
        out[dst + c] = code === 3 ? 0 : code - 1;
      }
    }
  },
};

registerTernaryCodec(hfPackedCodec);
