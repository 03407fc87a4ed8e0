// ggml block codecs: ternary TQ1_0 / TQ2_0 (llama.cpp), I2_S (bitnet.cpp), float Q8_0 / Q6_K / Q4_K.
//
// Layouts: llama.cpp ggml-common.h (block_tq1_0, block_tq2_0, block_q8_0, block_q4_K, block_q6_K)
// and Microsoft bitnet.cpp src/ggml-bitnet-mad.cpp (I2_S), as described in
// research/formats-and-peers.md §2.1 and §3.1 and docs/formats/gguf.md.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { TernaryScale } from "../core/model.js";
import { f32ToF16 } from "../core/half.js";
import { checkMatrix, f16Table } from "./plain.js";
import { registerFloatCodec, registerTernaryCodec, type EncodeOptions, type FloatCodec, type TernaryCodec } from "./registry.js";

/**
 * Weights per TQ1_0 / TQ2_0 / K-quant block.
 *
 * @example
 * ```ts
 * const blocks = (rows * cols) / QK_K;
 * ```
 */
export const QK_K = 256;
/**
 * Bytes of one TQ1_0 block: qs[48] + qh[4] + f16 d (1.6875 bits per weight).
 *
 * @example
 * ```ts
 * const bytes = ((rows * cols) / QK_K) * TQ1_0_BLOCK_BYTES;
 * ```
 */
export const TQ1_0_BLOCK_BYTES = 54;
/**
 * Bytes of one TQ2_0 block: qs[64] + f16 d (2.0625 bits per weight).
 *
 * @example
 * ```ts
 * const dOffset = block * TQ2_0_BLOCK_BYTES + 64;
 * ```
 */
export const TQ2_0_BLOCK_BYTES = 66;
/**
 * Weights per I2_S block (x86 layout, the one of Microsoft's published file).
 *
 * @example
 * ```ts
 * const byteOfWeight = (i: number) => Math.floor(i / I2_S_BLOCK) * 32 + (i % 32);
 * ```
 */
export const I2_S_BLOCK = 128;
/**
 * Bytes after the I2_S codes: one f32 scale + 28 bytes of padding.
 *
 * @example
 * ```ts
 * const tensorBytes = (rows * cols) / 4 + I2_S_TAIL_BYTES;
 * ```
 */
export const I2_S_TAIL_BYTES = 32;

const POW3 = [1, 3, 9, 27, 81, 243] as const;

function checkBlocks(rows: number, cols: number, where: string, block: number, name: string): void {
  checkMatrix(rows, cols, where);
  if (cols % block !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: ${name} rows hold whole ${block}-weight blocks`, {
      field: "cols",
      expected: `a multiple of ${block}`,
      actual: cols,
      hint: "Use a packing without blocks (int8, halo-v2) for this matrix",
    });
  }
}

function readF16(bytes: Uint8Array, offset: number): number {
  return f16Table()[bytes[offset]! | (bytes[offset + 1]! << 8)]!;
}

function checkTrit(value: number, index: number): number {
  if (value !== 0 && value !== 1 && value !== -1) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "ternary encoder got a value outside {-1, 0, +1}", {
      field: `trits[${index}]`,
      expected: "-1, 0 or 1",
      actual: value,
    });
  }
  return value + 1;
}

function missingScale(packing: string): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} stores its scales inline; encode needs options.scale`, {
    field: "options.scale",
    expected: "a TernaryScale",
    actual: "undefined",
  });
}

/**
 * One scale per 256-weight block of a `rows × cols` matrix (row-major block order) from any
 * {@link TernaryScale}. Block scales finer than 256 must be equal inside each 256-block, unless
 * `force`, which replaces them by their mean (the caller reports that change).
 *
 * @example
 * ```ts
 * blockScales({ kind: "tensor", value: 0.5 }, 2, 512, "tq2_0"); // Float32Array(4) [0.5, 0.5, 0.5, 0.5]
 * ```
 */
export function blockScales(scale: TernaryScale, rows: number, cols: number, packing: string, force = false): Float32Array {
  const perRow = cols / QK_K;
  const out = new Float32Array(rows * perRow);
  switch (scale.kind) {
    case "tensor":
      out.fill(scale.value);
      return out;
    case "row":
      for (let r = 0; r < rows; r++) out.fill(scale.values[r]!, r * perRow, (r + 1) * perRow);
      return out;
    case "block": {
      const size = scale.blockSize;
      if (size % QK_K === 0) {
        for (let b = 0; b < out.length; b++) out[b] = scale.values[Math.floor((b * QK_K) / size)]!;
        return out;
      }
      if (QK_K % size !== 0) break;
      const per = QK_K / size;
      for (let b = 0; b < out.length; b++) {
        let sum = 0;
        let uniform = true;
        const first = scale.values[b * per]!;
        for (let i = 0; i < per; i++) {
          const v = scale.values[b * per + i]!;
          sum += v;
          if (v !== first) uniform = false;
        }
        if (!uniform && !force) {
          throw new HaloError(
            H1bErrorCode.H1B_LOSSY_CONVERSION,
            `${packing} has one scale per 256 weights; these ${size}-weight block scales differ inside a 256-block`,
            {
              field: "options.scale",
              expected: "equal scales inside each 256-weight block",
              actual: `block ${b} has scales from ${first}`,
              hint: "Pass force to replace them by their mean",
            },
          );
        }
        out[b] = uniform ? first : sum / per;
      }
      return out;
    }
  }
  throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} cannot express ${scale.kind} scales of this block size`, {
    field: "options.scale.blockSize",
    expected: `a divisor or multiple of ${QK_K}`,
    actual: (scale as { blockSize: number }).blockSize,
  });
}

/**
 * The f16 `d` of every 256-weight block of a TQ1_0 or TQ2_0 matrix, as float32 (the
 * `TernaryScale` of kind `block`, blockSize 256, that a GGUF reader exposes).
 *
 * @example
 * ```ts
 * const d = tqBlockScales(bytes, "tq2_0", rows, cols); // rows * cols / 256 values
 * ```
 */
export function tqBlockScales(bytes: Uint8Array, packing: "tq1_0" | "tq2_0", rows: number, cols: number): Float32Array {
  const blockBytes = packing === "tq1_0" ? TQ1_0_BLOCK_BYTES : TQ2_0_BLOCK_BYTES;
  const count = (rows * cols) / QK_K;
  const out = new Float32Array(count);
  for (let b = 0; b < count; b++) out[b] = readF16(bytes, b * blockBytes + blockBytes - 2);
  return out;
}

/**
 * The single f32 scale of an I2_S tensor (stored right after the `rows·cols/4` code bytes).
 *
 * @example
 * ```ts
 * const s = i2sScale(tensorBytes, rows, cols);
 * ```
 */
export function i2sScale(bytes: Uint8Array, rows: number, cols: number): number {
  const at = (rows * cols) / 4;
  return new DataView(bytes.buffer, bytes.byteOffset + at, 4).getFloat32(0, true);
}

function encodeTq(trits: Int8Array, rows: number, cols: number, options: EncodeOptions | undefined, packing: "tq1_0" | "tq2_0"): Uint8Array {
  if (options?.scale === undefined) throw missingScale(packing);
  const scales = blockScales(options.scale, rows, cols, packing, options.force ?? false);
  const blockBytes = packing === "tq1_0" ? TQ1_0_BLOCK_BYTES : TQ2_0_BLOCK_BYTES;
  const blocks = (rows * cols) / QK_K;
  const out = new Uint8Array(blocks * blockBytes);
  for (let b = 0; b < blocks; b++) {
    const x = b * QK_K;
    const o = b * blockBytes;
    if (packing === "tq2_0") {
      // Byte m of half h holds element 128h + 32n + m in bits 2n..2n+1 (LSB first).
      for (let h = 0; h < 2; h++) {
        for (let m = 0; m < 32; m++) {
          let q = 0;
          for (let n = 0; n < 4; n++) {
            const i = x + 128 * h + 32 * n + m;
            q |= checkTrit(trits[i]!, i) << (2 * n);
          }
          out[o + 32 * h + m] = q;
        }
      }
    } else {
      // qs[0..31]: elements m + 32n (digit n, n = 0 most significant), qs[32..47]: 160 + m + 16n,
      // qh[0..3]: 240 + j + 4n (four digits then ×3). Each byte stores ceil(value · 256 / 243).
      const pack = (group: number, base: number, stride: number, digits: number, at: number): void => {
        for (let m = 0; m < group; m++) {
          let q = 0;
          for (let n = 0; n < digits; n++) {
            const i = x + base + m + stride * n;
            q = q * 3 + checkTrit(trits[i]!, i);
          }
          for (let n = digits; n < 5; n++) q *= 3;
          out[o + at + m] = Math.floor((q * 256 + 242) / 243);
        }
      };
      pack(32, 0, 32, 5, 0);
      pack(16, 160, 16, 5, 32);
      pack(4, 240, 4, 4, 48);
    }
    const d = f32ToF16(scales[b]!);
    out[o + blockBytes - 2] = d & 0xff;
    out[o + blockBytes - 1] = d >> 8;
  }
  return out;
}

function tritOf(byte: number, n: number): number {
  // Digit n of a ceil-scaled base-3 byte: ((byte · 3^n) mod 256) · 3 >> 8, as code 0..2.
  return ((((byte * POW3[n]!) & 0xff) * 3) >> 8) - 1;
}

function decodeTq1Block(bytes: Uint8Array, o: number, out: Int8Array, base: number): void {
  for (let n = 0; n < 5; n++) {
    for (let m = 0; m < 32; m++) out[base + 32 * n + m] = tritOf(bytes[o + m]!, n);
    for (let m = 0; m < 16; m++) out[base + 160 + 16 * n + m] = tritOf(bytes[o + 32 + m]!, n);
  }
  for (let n = 0; n < 4; n++) {
    for (let j = 0; j < 4; j++) out[base + 240 + 4 * n + j] = tritOf(bytes[o + 48 + j]!, n);
  }
}

function decodeTq2Block(bytes: Uint8Array, o: number, out: Int8Array, base: number): void {
  for (let h = 0; h < 2; h++) {
    for (let n = 0; n < 4; n++) {
      for (let m = 0; m < 32; m++) {
        const code = (bytes[o + 32 * h + m]! >> (2 * n)) & 3;
        // Code 3 never occurs in llama.cpp's quantizer; ggml would dequantise it to +2·d. We read it as 0.
        out[base + 128 * h + 32 * n + m] = code === 3 ? 0 : code - 1;
      }
    }
  }
}

function tqCodec(packing: "tq1_0" | "tq2_0"): TernaryCodec {
  const blockBytes = packing === "tq1_0" ? TQ1_0_BLOCK_BYTES : TQ2_0_BLOCK_BYTES;
  const decodeBlock = packing === "tq1_0" ? decodeTq1Block : decodeTq2Block;
  return {
    packing,
    bitsPerWeight: (blockBytes * 8) / QK_K,
    checkShape(rows, cols, where) {
      checkBlocks(rows, cols, where, QK_K, packing);
    },
    byteLength: (rows, cols) => ((rows * cols) / QK_K) * blockBytes,
    rowBytes: (cols) => (cols / QK_K) * blockBytes,
    encode: (trits, rows, cols, options) => {
      checkBlocks(rows, cols, packing, QK_K, packing);
      return encodeTq(trits, rows, cols, options, packing);
    },
    decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
      const perRow = cols / QK_K;
      const first = rowStart * perRow;
      const count = rowCount * perRow;
      for (let b = 0; b < count; b++) decodeBlock(bytes, (first + b) * blockBytes, out, b * QK_K);
    },
  };
}

/**
 * llama.cpp TQ1_0 (GGUF type 34): 256-weight blocks of base-3 digits + f16 d, 1.6875 bits per weight.
 *
 * @example
 * ```ts
 * const bytes = tq1_0Codec.encode(trits, rows, cols, { scale: { kind: "tensor", value: 0.02 } });
 * ```
 */
export const tq1_0Codec: TernaryCodec = tqCodec("tq1_0");
/**
 * llama.cpp TQ2_0 (GGUF type 35): 256-weight blocks of 2-bit codes + f16 d, 2.0625 bits per weight.
 *
 * @example
 * ```ts
 * tq2_0Codec.decodeRows(bytes, rows, cols, 0, rows, new Int8Array(rows * cols));
 * ```
 */
export const tq2_0Codec: TernaryCodec = tqCodec("tq2_0");

/**
 * bitnet.cpp I2_S (Microsoft GGUF type 36, x86 layout): the row-major tensor cut into 128-weight
 * blocks of 32 bytes, byte j holding elements j, 32+j, 64+j, 96+j in bits 7..6, 5..4, 3..2, 1..0
 * (codes 0 = −1, 1 = 0, 2 = +1), then one f32 scale and 28 zero bytes. 2 bits per weight.
 *
 * @example
 * ```ts
 * const bytes = i2sCodec.encode(trits, rows, cols, { scale: { kind: "tensor", value: 0.7 } });
 * i2sScale(bytes, rows, cols); // 0.7 (as f32)
 * ```
 */
export const i2sCodec: TernaryCodec = {
  packing: "i2_s",
  bitsPerWeight: 2,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
    if ((rows * cols) % I2_S_BLOCK !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: i2_s holds whole 128-weight blocks`, {
        expected: "rows × cols a multiple of 128",
        actual: `${rows} × ${cols}`,
      });
    }
  },
  byteLength: (rows, cols) => (rows * cols) / 4 + I2_S_TAIL_BYTES,
  // Rows are independent only when 128-weight blocks do not straddle them.
  rowBytes: (cols) => (cols % I2_S_BLOCK === 0 ? cols / 4 : null),
  encode(trits, rows, cols, options) {
    i2sCodec.checkShape(rows, cols, "i2_s");
    const scale = options?.scale;
    if (scale === undefined) throw missingScale("i2_s");
    let value: number;
    if (scale.kind === "tensor") value = scale.value;
    else {
      const first = scale.values[0]!;
      let uniform = true;
      let sum = 0;
      for (const v of scale.values) {
        sum += v;
        if (v !== first) uniform = false;
      }
      if (!uniform && !(options?.force ?? false)) {
        throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, "i2_s has one scale per tensor; these scales differ", {
          field: "options.scale",
          expected: "one scale for the whole matrix",
          actual: `${scale.kind} scales (${scale.values.length} values)`,
          hint: "Pass force to use their mean",
        });
      }
      value = uniform ? first : sum / scale.values.length;
    }
    const n = rows * cols;
    const out = new Uint8Array(n / 4 + I2_S_TAIL_BYTES);
    for (let blk = 0; blk < n / I2_S_BLOCK; blk++) {
      const x = blk * I2_S_BLOCK;
      for (let j = 0; j < 32; j++) {
        let q = 0;
        for (let g = 0; g < 4; g++) {
          const i = x + 32 * g + j;
          q |= checkTrit(trits[i]!, i) << (6 - 2 * g);
        }
        out[blk * 32 + j] = q;
      }
    }
    new DataView(out.buffer).setFloat32(n / 4, value, true);
    return out;
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const start = rowStart * cols;
    const end = start + rowCount * cols;
    for (let i = start; i < end; i++) {
      const blk = Math.floor(i / I2_S_BLOCK);
      const within = i - blk * I2_S_BLOCK;
      const g = within >> 5;
      const code = (bytes[blk * 32 + (within & 31)]! >> (6 - 2 * g)) & 3;
      out[i - start] = code === 3 ? 0 : code - 1;
    }
  },
};

/**
 * ggml Q8_0 (GGUF type 8): 32 values = f16 d + 32 int8, value = q·d (8.5 bits per value).
 *
 * @example
 * ```ts
 * const back = q8_0Codec.decode(q8_0Codec.encode!(values), values.length);
 * ```
 */
export const q8_0Codec: FloatCodec = {
  dtype: "q8_0",
  blockSize: 32,
  blockBytes: 34,
  decode(bytes, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / 32; b++) {
      const o = b * 34;
      const d = readF16(bytes, o);
      for (let i = 0; i < 32; i++) out[b * 32 + i] = ((bytes[o + 2 + i]! << 24) >> 24) * d;
    }
    return out;
  },
  encode(values) {
    if (values.length % 32 !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "q8_0 holds whole 32-value blocks", {
        expected: "a multiple of 32 values",
        actual: values.length,
      });
    }
    const out = new Uint8Array((values.length / 32) * 34);
    for (let b = 0; b < values.length / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]!));
      const d = Math.fround(amax / 127);
      const inv = d === 0 ? 0 : Math.fround(1 / d);
      const o = b * 34;
      const h = f32ToF16(d);
      out[o] = h & 0xff;
      out[o + 1] = h >> 8;
      for (let i = 0; i < 32; i++) {
        // roundf: half away from zero, like ggml's reference quantizer.
        const x = Math.fround(values[b * 32 + i]! * inv);
        const q = Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
        out[o + 2 + i] = Math.max(-127, Math.min(127, q)) & 0xff;
      }
    }
    return out;
  },
};

/**
 * ggml Q4_K (GGUF type 12): 256 values = f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128
 * bytes of nibbles. Decode only.
 *
 * @example
 * ```ts
 * const values = q4_kCodec.decode(tensorBytes, vocab * hidden);
 * ```
 */
export const q4_kCodec: FloatCodec = {
  dtype: "q4_k",
  blockSize: QK_K,
  blockBytes: 144,
  decode(bytes, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / QK_K; b++) {
      const o = b * 144;
      const d = readF16(bytes, o);
      const dmin = readF16(bytes, o + 2);
      const sc = o + 4;
      const scaleMin = (j: number): [number, number] =>
        j < 4
          ? [bytes[sc + j]! & 63, bytes[sc + j + 4]! & 63]
          : [(bytes[sc + j + 4]! & 0xf) | ((bytes[sc + j - 4]! >> 6) << 4), (bytes[sc + j + 4]! >> 4) | ((bytes[sc + j]! >> 6) << 4)];
      // Four 64-value groups; each takes 32 bytes, low nibbles first (sub-block 2g), then high (2g+1).
      for (let g = 0; g < 4; g++) {
        const [s1, m1] = scaleMin(2 * g);
        const [s2, m2] = scaleMin(2 * g + 1);
        const d1 = Math.fround(d * s1);
        const n1 = Math.fround(dmin * m1);
        const d2 = Math.fround(d * s2);
        const n2 = Math.fround(dmin * m2);
        const q = o + 16 + 32 * g;
        const y = b * QK_K + 64 * g;
        for (let l = 0; l < 32; l++) {
          out[y + l] = Math.fround(d1 * (bytes[q + l]! & 0xf)) - n1;
          out[y + 32 + l] = Math.fround(d2 * (bytes[q + l]! >> 4)) - n2;
        }
      }
    }
    return out;
  },
};

/**
 * ggml Q6_K (GGUF type 14): 256 values = ql[128] low nibbles, qh[64] high 2 bits, 16 int8
 * scales, f16 d. Decode only.
 *
 * @example
 * ```ts
 * const values = q6_kCodec.decode(tensorBytes, vocab * hidden);
 * ```
 */
export const q6_kCodec: FloatCodec = {
  dtype: "q6_k",
  blockSize: QK_K,
  blockBytes: 210,
  decode(bytes, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / QK_K; b++) {
      const o = b * 210;
      const d = readF16(bytes, o + 208);
      // Two 128-value halves: ql advances 64 bytes, qh 32, scales 8 per half.
      for (let half = 0; half < 2; half++) {
        const ql = o + 64 * half;
        const qh = o + 128 + 32 * half;
        const sc = o + 192 + 8 * half;
        const y = b * QK_K + 128 * half;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const h = bytes[qh + l]!;
          const q1 = ((bytes[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
          const q2 = ((bytes[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((bytes[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((bytes[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          const s = (i: number): number => Math.fround(d * ((bytes[sc + is + i]! << 24) >> 24));
          out[y + l] = s(0) * q1;
          out[y + l + 32] = s(2) * q2;
          out[y + l + 64] = s(4) * q3;
          out[y + l + 96] = s(6) * q4;
        }
      }
    }
    return out;
  },
};

registerTernaryCodec(tq1_0Codec);
registerTernaryCodec(tq2_0Codec);
registerTernaryCodec(i2sCodec);
registerFloatCodec(q8_0Codec);
registerFloatCodec(q4_kCodec);
registerFloatCodec(q6_kCodec);
