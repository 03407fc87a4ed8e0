// Seed `.h1b` ternary packings: HaloV2, Sherry 3:4, TQ1V4 base-3, Bonsai TQ2 and Bonsai Q1 (inline fp16 block scales).
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { f32ToF16 } from "../core/half.js";
import type { TernaryScale } from "../core/model.js";
import { badTrit, checkBytes, checkMatrix, checkTrits, f16Table } from "./plain.js";
import { registerTernaryCodec, type EncodeOptions, type TernaryCodec } from "./registry.js";

// Spec: research/seed-system.md §1.5 (packings) and §1.6 (worked example). Every packing stores
// each row independently (rows never share a byte), so all codecs here work row by row.
//
// Performance notes (one 2560 × 6912 matrix, best of 3, Node 20, shared 2-core VM, million
// weights per second): decoding with a per-weight shift/compare ran HaloV2 130, TQ1V4 86; a
// per-byte lookup table (4 trits per HaloV2 byte, 5 per TQ1 byte) runs HaloV2 330, TQ1V4 363,
// Bonsai TQ2 231, Sherry (32-code table) 208. Encoding stays per weight: 60–145.

// ---------------------------------------------------------------------------------------------
// HaloV2: 2 bits per weight, 4 per byte LSB-first, codes 00 = -1, 01 = 0, 10 = +1, 11 = 0.

/** Bytes of one HaloV2 row. */
export function haloV2RowBytes(cols: number): number {
  return Math.ceil(cols / 4);
}

/**
 * HaloV2 (`.h1b` v1/v2): 2-bit code `t + 1` per weight, four weights per byte, weight `c` in
 * bits `2·(c % 4)` of byte `c / 4` of its row; rows are `ceil(cols / 4)` bytes. Code `11` is
 * unused and decodes to 0. Any column count is storable.
 *
 * @example
 * ```ts
 * ternaryCodec("halo-v2").encode(Int8Array.of(1, 0, -1, 1, -1, -1, 0, 1), 1, 8); // 86 90
 * ```
 */
export const haloV2Codec: TernaryCodec = {
  packing: "halo-v2",
  bitsPerWeight: 2,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
  },
  byteLength: (rows, cols) => rows * haloV2RowBytes(cols),
  rowBytes: haloV2RowBytes,
  encode(trits, rows, cols) {
    checkMatrix(rows, cols, "halo-v2 encode");
    checkTrits(trits, rows, cols, "halo-v2");
    const rowBytes = haloV2RowBytes(cols);
    const out = new Uint8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      const dst = r * rowBytes;
      for (let c = 0; c < cols; c++) {
        const t = trits[src + c]!;
        if (t !== 0 && t !== 1 && t !== -1) throw badTrit("halo-v2", src + c, t);
        out[dst + (c >> 2)]! |= (t + 1) << ((c & 3) << 1);
      }
    }
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const rowBytes = haloV2RowBytes(cols);
    checkBytes(bytes, (rowStart + rowCount) * rowBytes, "halo-v2");
    const whole = cols >> 2;
    for (let r = 0; r < rowCount; r++) {
      const src = (rowStart + r) * rowBytes;
      const dst = r * cols;
      for (let i = 0; i < whole; i++) {
        const k = bytes[src + i]! << 2;
        const o = dst + (i << 2);
        out[o] = HALO_V2_LUT[k]!;
        out[o + 1] = HALO_V2_LUT[k + 1]!;
        out[o + 2] = HALO_V2_LUT[k + 2]!;
        out[o + 3] = HALO_V2_LUT[k + 3]!;
      }
      for (let c = whole << 2; c < cols; c++) out[dst + c] = HALO_V2_LUT[(bytes[src + (c >> 2)]! << 2) + (c & 3)]!;
    }
  },
};

/** The 4 trits of every HaloV2 byte, `[byte * 4 + lane]` (code 11 → 0). */
const HALO_V2_LUT: Int8Array = (() => {
  const lut = new Int8Array(256 * 4);
  for (let b = 0; b < 256; b++) {
    for (let lane = 0; lane < 4; lane++) {
      const code = (b >> (2 * lane)) & 3;
      lut[b * 4 + lane] = code === 0 ? -1 : code === 2 ? 1 : 0;
    }
  }
  return lut;
})();

// ---------------------------------------------------------------------------------------------
// Sherry: 3:4 sparsity, 5-bit code per group of 4: (zero_pos << 3) | signs of the 3 survivors.

/** Bytes of one Sherry row (`cols` must be a multiple of 32). */
export function sherryRowBytes(cols: number): number {
  return (cols * 5) / 32;
}

/** The 4 trits of each of the 32 Sherry codes, `[code * 4 + lane]`. */
const SHERRY_LUT: Int8Array = (() => {
  const lut = new Int8Array(32 * 4);
  for (let code = 0; code < 32; code++) {
    const zeroPos = code >> 3;
    let bit = 0;
    for (let lane = 0; lane < 4; lane++) {
      if (lane === zeroPos) continue;
      lut[code * 4 + lane] = (code >> bit) & 1 ? 1 : -1;
      bit++;
    }
  }
  return lut;
})();

/**
 * Packs one Sherry group (4 trits) with the seed packer's rule (`tools/h1b-sherry/src/sherry_pack.rs`):
 * the zero lane is the lowest-index lane of minimum |t| (lane 0, forced to zero, when the group has
 * no zero); surviving lanes store sign bit 1 for +1 and for extra zeros (which thus become +1), 0 for −1.
 * Returns the 5-bit code and how many of the 4 weights the code does not reproduce.
 * @internal
 */
export function sherryGroupCode(t0: number, t1: number, t2: number, t3: number): { code: number; changed: number } {
  const lanes = [t0, t1, t2, t3];
  let zeroPos = 0;
  let best = Math.abs(t0);
  for (let lane = 1; lane < 4; lane++) {
    const a = Math.abs(lanes[lane]!);
    if (a < best) {
      best = a;
      zeroPos = lane;
    }
  }
  let changed = lanes[zeroPos] === 0 ? 0 : 1;
  let signs = 0;
  let bit = 0;
  for (let lane = 0; lane < 4; lane++) {
    if (lane === zeroPos) continue;
    const t = lanes[lane]!;
    // Extra zeros on surviving lanes are encoded as +1 (the seed packer's rule), a lossy change.
    if (t >= 0) signs |= 1 << bit;
    if (t === 0) changed++;
    bit++;
  }
  return { code: (zeroPos << 3) | signs, changed };
}

/**
 * Sherry (`.h1b` v3, with or without the fp16-activation flag): each group of 4 consecutive
 * weights of a row has exactly one zero; the group is a 5-bit code `(zero_pos << 3) | signs`
 * (`signs` bit i = 1 for +1 on the i-th surviving lane, ascending), codes laid LSB-first in a
 * row bit stream. 1.25 bits per weight; `cols` must be a multiple of 32.
 *
 * Encoding a matrix that is not 3:4 sparse is lossy: it throws `H1B_LOSSY_CONVERSION` unless
 * `options.force`, and then applies the seed packer's rule (zero lane = lowest-index lane of
 * minimum |t|, so a group without a zero loses lane 0; extra zeros become +1) and reports the
 * number of changed weights through `options.report`.
 *
 * @example
 * ```ts
 * const codec = ternaryCodec("sherry");
 * const bytes = codec.encode(trits, rows, cols, { force: true, report: (n) => console.log(n, "weights changed") });
 * ```
 */
export const sherryCodec: TernaryCodec = {
  packing: "sherry",
  bitsPerWeight: 1.25,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
    if (cols % 32 !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: Sherry rows hold whole 32-weight groups`, {
        field: "cols",
        expected: "a multiple of 32",
        actual: cols,
        hint: "Use HaloV2 (.h1b v2) or TQ1 (.h1b v4) for this shape",
      });
    }
  },
  byteLength: (rows, cols) => rows * sherryRowBytes(cols),
  rowBytes: sherryRowBytes,
  encode(trits, rows, cols, options?: EncodeOptions) {
    sherryCodec.checkShape(rows, cols, "sherry encode");
    checkTrits(trits, rows, cols, "sherry");
    const rowBytes = sherryRowBytes(cols);
    const out = new Uint8Array(rows * rowBytes);
    let changed = 0;
    let firstLossy = -1;
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      const dst = r * rowBytes;
      for (let g = 0; g < cols / 4; g++) {
        const i = src + 4 * g;
        for (let k = 0; k < 4; k++) {
          const t = trits[i + k]!;
          if (t !== 0 && t !== 1 && t !== -1) throw badTrit("sherry", i + k, t);
        }
        const packed = sherryGroupCode(trits[i]!, trits[i + 1]!, trits[i + 2]!, trits[i + 3]!);
        if (packed.changed > 0 && firstLossy < 0) firstLossy = i;
        changed += packed.changed;
        const bitPos = 5 * g;
        const byte = dst + (bitPos >> 3);
        const shift = bitPos & 7;
        out[byte]! |= (packed.code << shift) & 0xff;
        if (shift > 3) out[byte + 1]! |= packed.code >> (8 - shift);
      }
    }
    if (changed > 0 && options?.force !== true) {
      throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, "Sherry packing would change weights (it needs exactly one zero in every group of 4)", {
        field: `trits[${firstLossy}]`,
        expected: "exactly one zero per group of 4 consecutive weights",
        actual: `${changed} of ${rows * cols} weights would change`,
        hint: "Pass force to accept the loss, or keep HaloV2/TQ1 for this model",
      });
    }
    options?.report?.(changed);
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const rowBytes = sherryRowBytes(cols);
    checkBytes(bytes, (rowStart + rowCount) * rowBytes, "sherry");
    for (let r = 0; r < rowCount; r++) {
      const src = (rowStart + r) * rowBytes;
      const dst = r * cols;
      for (let g = 0; g < cols / 4; g++) {
        const bitPos = 5 * g;
        const byte = src + (bitPos >> 3);
        const shift = bitPos & 7;
        // A code never straddles past the row: 32 weights = 8 groups = exactly 5 bytes.
        const word = bytes[byte]! | (shift > 3 ? bytes[byte + 1]! << 8 : 0);
        const code = (word >> shift) & 31;
        const o = dst + 4 * g;
        out[o] = SHERRY_LUT[code * 4]!;
        out[o + 1] = SHERRY_LUT[code * 4 + 1]!;
        out[o + 2] = SHERRY_LUT[code * 4 + 2]!;
        out[o + 3] = SHERRY_LUT[code * 4 + 3]!;
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------
// TQ1V4: 5 weights per byte in base 3, first weight least significant; rows padded to 20 weights.

/** Bytes of one TQ1V4 row: cols rounded up to 20 weights (4 bytes). */
export function tq1V4RowBytes(cols: number): number {
  return (Math.ceil(cols / 20) * 20) / 5;
}

/** Five digits per byte value; bytes ≥ 243 decode to five zeros. `[byte * 5 + i]`. */
const TQ1_LUT: Int8Array = (() => {
  const lut = new Int8Array(256 * 5);
  for (let b = 0; b < 243; b++) {
    let v = b;
    for (let i = 0; i < 5; i++) {
      lut[b * 5 + i] = (v % 3) - 1;
      v = Math.floor(v / 3);
    }
  }
  return lut;
})();

/**
 * TQ1V4 (`.h1b` v4): `byte = d0 + 3·d1 + 9·d2 + 27·d3 + 81·d4` with `d = t + 1`, the first weight
 * the least significant digit; each row is padded with zero weights (digit 1) to a multiple of 20
 * (4 bytes); bytes ≥ 243 decode to five zeros. 1.6 bits per weight. Not llama.cpp's TQ1_0.
 *
 * @example
 * ```ts
 * ternaryCodec("tq1-v4").encode(Int8Array.of(1, 0, -1, 1, 0), 1, 5); // 8c 79 79 79
 * ```
 */
export const tq1V4Codec: TernaryCodec = {
  packing: "tq1-v4",
  bitsPerWeight: 1.6,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
  },
  byteLength: (rows, cols) => rows * tq1V4RowBytes(cols),
  rowBytes: tq1V4RowBytes,
  encode(trits, rows, cols) {
    checkMatrix(rows, cols, "tq1-v4 encode");
    checkTrits(trits, rows, cols, "tq1-v4");
    const rowBytes = tq1V4RowBytes(cols);
    const out = new Uint8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      for (let b = 0; b < rowBytes; b++) {
        let value = 0;
        let power = 1;
        for (let i = 0; i < 5; i++) {
          const c = 5 * b + i;
          let digit = 1;
          if (c < cols) {
            const t = trits[src + c]!;
            if (t !== 0 && t !== 1 && t !== -1) throw badTrit("tq1-v4", src + c, t);
            digit = t + 1;
          }
          value += digit * power;
          power *= 3;
        }
        out[r * rowBytes + b] = value;
      }
    }
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const rowBytes = tq1V4RowBytes(cols);
    checkBytes(bytes, (rowStart + rowCount) * rowBytes, "tq1-v4");
    for (let r = 0; r < rowCount; r++) {
      const src = (rowStart + r) * rowBytes;
      const dst = r * cols;
      const whole = (cols / 5) | 0;
      for (let i = 0; i < whole; i++) {
        const k = bytes[src + i]! * 5;
        const o = dst + 5 * i;
        out[o] = TQ1_LUT[k]!;
        out[o + 1] = TQ1_LUT[k + 1]!;
        out[o + 2] = TQ1_LUT[k + 2]!;
        out[o + 3] = TQ1_LUT[k + 3]!;
        out[o + 4] = TQ1_LUT[k + 4]!;
      }
      for (let c = 5 * whole; c < cols; c++) out[dst + c] = TQ1_LUT[bytes[src + whole]! * 5 + (c - 5 * whole)]!;
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Bonsai (PrismML GGUF dtypes 42 and 41): 128-weight blocks with an inline fp16 scale first.

/**
 * Weights per Bonsai block (each block carries one fp16 scale).
 *
 * @example
 * ```ts
 * const scales = new Float32Array((rows * cols) / BONSAI_BLOCK).fill(0.5);
 * ```
 */
export const BONSAI_BLOCK = 128;

/**
 * The fp16 bits of each 128-weight block's scale, from any {@link TernaryScale}. Throws
 * `H1B_BAD_ARGUMENT` when the scale is missing or cannot be expressed per 128-block, and
 * `H1B_LOSSY_CONVERSION` (unless `force`) when a value is not exactly representable in fp16.
 * @internal
 */
export function bonsaiBlockScales(packing: string, rows: number, cols: number, options: EncodeOptions | undefined): Uint16Array {
  const scale = options?.scale;
  if (scale === undefined) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} encode needs the matrix scale (inline fp16 per 128 weights)`, {
      field: "scale",
      expected: "options.scale of kind 'block' with blockSize 128 (or 'tensor'/'row', replicated)",
      actual: "undefined",
    });
  }
  const blocksPerRow = cols / BONSAI_BLOCK;
  const out = new Uint16Array(rows * blocksPerRow);
  const table = f16Table();
  let inexact = 0;
  let firstInexact: number | null = null;
  const valueOf = blockValueReader(scale, rows, cols, packing);
  for (let i = 0; i < out.length; i++) {
    const value = valueOf(i);
    const bits = f32ToF16(value);
    if (table[bits] !== Math.fround(value) && !(Number.isNaN(value) && Number.isNaN(table[bits]!))) {
      inexact++;
      firstInexact ??= value;
    }
    out[i] = bits;
  }
  if (inexact > 0 && options?.force !== true) {
    throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, `${packing} stores scales as fp16; ${inexact} block scales would be rounded`, {
      field: "scale",
      expected: "scales exactly representable in fp16",
      actual: firstInexact,
      hint: "Pass force to round the scales to fp16",
    });
  }
  return out;
}

function blockValueReader(scale: TernaryScale, rows: number, cols: number, packing: string): (block: number) => number {
  const blocksPerRow = cols / BONSAI_BLOCK;
  switch (scale.kind) {
    case "tensor":
      return () => scale.value;
    case "row":
      if (scale.values.length !== rows) break;
      return (block) => scale.values[(block / blocksPerRow) | 0]!;
    case "block": {
      const size = scale.blockSize;
      if (size === BONSAI_BLOCK && scale.values.length === rows * blocksPerRow) return (block) => scale.values[block]!;
      // Larger blocks that hold whole 128-blocks replicate exactly (e.g. 256-weight GGUF blocks).
      if (Number.isSafeInteger(size) && size > 0 && size % BONSAI_BLOCK === 0 && cols % size === 0 && scale.values.length === (rows * cols) / size) {
        const per = size / BONSAI_BLOCK;
        return (block) => scale.values[(block / per) | 0]!;
      }
      break;
    }
  }
  throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} encode: the scale cannot be stored as one fp16 per 128 weights`, {
    field: "scale",
    expected: `a tensor scale, ${rows} row scales, or block scales whose block is a multiple of 128`,
    actual: scale.kind === "block" ? `block ${scale.blockSize} × ${scale.values.length}` : `${scale.values.length} row scales`,
  });
}

function checkBonsaiShape(packing: string, rows: number, cols: number, where: string): void {
  checkMatrix(rows, cols, where);
  if (cols % BONSAI_BLOCK !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: ${packing} rows hold whole 128-weight blocks`, {
      field: "cols",
      expected: "a multiple of 128",
      actual: cols,
    });
  }
}

/**
 * Reads the fp16 scale of every block of a Bonsai matrix (the first two bytes of each block) as
 * float32: `rows × cols / 128` values, row-major.
 *
 * @example
 * ```ts
 * const scales = bonsaiScales(tensor.bytes(), tensor.rows, tensor.cols, 34);
 * ```
 */
export function bonsaiScales(bytes: Uint8Array, rows: number, cols: number, blockBytes: number): Float32Array {
  const blocks = (rows * cols) / BONSAI_BLOCK;
  checkBytes(bytes, blocks * blockBytes, blockBytes === 34 ? "bonsai-tq2" : "bonsai-q1");
  const table = f16Table();
  const out = new Float32Array(blocks);
  for (let i = 0; i < blocks; i++) out[i] = table[bytes[i * blockBytes]! | (bytes[i * blockBytes + 1]! << 8)]!;
  return out;
}

/**
 * Bonsai TQ2 g128 (`.h1b` flag 0x8; PrismML GGUF dtype 42): 34-byte blocks of 128 weights,
 * `[fp16 d][32 bytes of HaloV2 codes]` (d first, verified against real files), value = code · d.
 * The scale is inline, so `encode` needs `options.scale` (kind `block` with blockSize 128; a
 * tensor or row scale is replicated). 2.125 bits per weight.
 *
 * @example
 * ```ts
 * const values = new Float32Array(rows * cols / 128).fill(0.5);
 * ternaryCodec("bonsai-tq2").encode(trits, rows, cols, { scale: { kind: "block", blockSize: 128, values } });
 * ```
 */
export const bonsaiTq2Codec: TernaryCodec = {
  packing: "bonsai-tq2",
  bitsPerWeight: (34 * 8) / 128,
  checkShape(rows, cols, where) {
    checkBonsaiShape("bonsai-tq2", rows, cols, where);
  },
  byteLength: (rows, cols) => ((rows * cols) / BONSAI_BLOCK) * 34,
  rowBytes: (cols) => (cols / BONSAI_BLOCK) * 34,
  encode(trits, rows, cols, options) {
    checkBonsaiShape("bonsai-tq2", rows, cols, "bonsai-tq2 encode");
    checkTrits(trits, rows, cols, "bonsai-tq2");
    const scales = bonsaiBlockScales("bonsai-tq2", rows, cols, options);
    const out = new Uint8Array(scales.length * 34);
    for (let block = 0; block < scales.length; block++) {
      const o = block * 34;
      out[o] = scales[block]! & 0xff;
      out[o + 1] = scales[block]! >> 8;
      const src = block * BONSAI_BLOCK;
      for (let j = 0; j < BONSAI_BLOCK; j++) {
        const t = trits[src + j]!;
        if (t !== 0 && t !== 1 && t !== -1) throw badTrit("bonsai-tq2", src + j, t);
        out[o + 2 + (j >> 2)]! |= (t + 1) << ((j & 3) << 1);
      }
    }
    options?.report?.(0);
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const blocksPerRow = cols / BONSAI_BLOCK;
    checkBytes(bytes, (rowStart + rowCount) * blocksPerRow * 34, "bonsai-tq2");
    for (let r = 0; r < rowCount; r++) {
      for (let b = 0; b < blocksPerRow; b++) {
        const src = ((rowStart + r) * blocksPerRow + b) * 34 + 2;
        const dst = r * cols + b * BONSAI_BLOCK;
        for (let i = 0; i < BONSAI_BLOCK / 4; i++) {
          const k = bytes[src + i]! << 2;
          const o = dst + (i << 2);
          out[o] = HALO_V2_LUT[k]!;
          out[o + 1] = HALO_V2_LUT[k + 1]!;
          out[o + 2] = HALO_V2_LUT[k + 2]!;
          out[o + 3] = HALO_V2_LUT[k + 3]!;
        }
      }
    }
  },
};

/**
 * Bonsai Q1 g128 (`.h1b` flag 0x4; PrismML GGUF dtype 41): 18-byte blocks of 128 weights,
 * `[fp16 d][16 bytes of sign bits]`, bit i (LSB-first in byte i/8) set = +d, clear = −d. It has
 * no zero: encoding a zero weight is lossy (`H1B_LOSSY_CONVERSION` unless `force`, which stores
 * zeros as +1 and reports how many changed). 1.125 bits per weight.
 *
 * @example
 * ```ts
 * const values = new Float32Array(rows * cols / 128).fill(0.25);
 * ternaryCodec("bonsai-q1").encode(signs, rows, cols, { scale: { kind: "block", blockSize: 128, values } });
 * ```
 */
export const bonsaiQ1Codec: TernaryCodec = {
  packing: "bonsai-q1",
  bitsPerWeight: (18 * 8) / 128,
  checkShape(rows, cols, where) {
    checkBonsaiShape("bonsai-q1", rows, cols, where);
  },
  byteLength: (rows, cols) => ((rows * cols) / BONSAI_BLOCK) * 18,
  rowBytes: (cols) => (cols / BONSAI_BLOCK) * 18,
  encode(trits, rows, cols, options) {
    checkBonsaiShape("bonsai-q1", rows, cols, "bonsai-q1 encode");
    checkTrits(trits, rows, cols, "bonsai-q1");
    let zeros = 0;
    let firstZero = -1;
    for (let i = 0; i < rows * cols; i++) {
      const t = trits[i]!;
      if (t !== 0 && t !== 1 && t !== -1) throw badTrit("bonsai-q1", i, t);
      if (t === 0) {
        zeros++;
        if (firstZero < 0) firstZero = i;
      }
    }
    if (zeros > 0 && options?.force !== true) {
      throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, "Bonsai Q1 has no zero weight; packing would change weights", {
        field: `trits[${firstZero}]`,
        expected: "only -1 and +1",
        actual: `${zeros} zero weights`,
        hint: "Pass force to store zeros as +1, or use Bonsai TQ2 (flag 0x8)",
      });
    }
    const scales = bonsaiBlockScales("bonsai-q1", rows, cols, options);
    const out = new Uint8Array(scales.length * 18);
    for (let block = 0; block < scales.length; block++) {
      const o = block * 18;
      out[o] = scales[block]! & 0xff;
      out[o + 1] = scales[block]! >> 8;
      const src = block * BONSAI_BLOCK;
      for (let j = 0; j < BONSAI_BLOCK; j++) {
        if (trits[src + j]! >= 0) out[o + 2 + (j >> 3)]! |= 1 << (j & 7);
      }
    }
    options?.report?.(zeros);
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const blocksPerRow = cols / BONSAI_BLOCK;
    checkBytes(bytes, (rowStart + rowCount) * blocksPerRow * 18, "bonsai-q1");
    for (let r = 0; r < rowCount; r++) {
      for (let b = 0; b < blocksPerRow; b++) {
        const src = ((rowStart + r) * blocksPerRow + b) * 18 + 2;
        const dst = r * cols + b * BONSAI_BLOCK;
        for (let j = 0; j < BONSAI_BLOCK; j++) out[dst + j] = (bytes[src + (j >> 3)]! >> (j & 7)) & 1 ? 1 : -1;
      }
    }
  },
};

registerTernaryCodec(haloV2Codec);
registerTernaryCodec(sherryCodec);
registerTernaryCodec(tq1V4Codec);
registerTernaryCodec(bonsaiTq2Codec);
registerTernaryCodec(bonsaiQ1Codec);
