// Plain codecs: int8 trits, f32, f16, bf16.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../core/half.js";
import { registerFloatCodec, registerTernaryCodec, type FloatCodec, type TernaryCodec } from "./registry.js";

/** One signed byte per weight, row-major: the canonical unpacked ternary form (8 bits per weight). */
export const int8Codec: TernaryCodec = {
  packing: "int8",
  bitsPerWeight: 8,
  checkShape(rows, cols, where) {
    checkMatrix(rows, cols, where);
  },
  byteLength: (rows, cols) => rows * cols,
  rowBytes: (cols) => cols,
  encode(trits) {
    return new Uint8Array(trits.buffer.slice(trits.byteOffset, trits.byteOffset + trits.byteLength));
  },
  decodeRows(bytes, _rows, cols, rowStart, rowCount, out) {
    const src = new Int8Array(bytes.buffer, bytes.byteOffset + rowStart * cols, rowCount * cols);
    for (let i = 0; i < src.length; i++) {
      const t = src[i]!;
      out[i] = t > 0 ? 1 : t < 0 ? -1 : 0;
    }
  },
};

/** Throws `H1B_BAD_DIMENSION` unless rows and cols are positive integers with a safe product. */
export function checkMatrix(rows: number, cols: number, where: string): void {
  for (const [name, value] of [
    ["rows", rows],
    ["cols", cols],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: ${name} must be a positive whole number`, {
        field: name,
        expected: "> 0",
        actual: value,
      });
    }
  }
  if (!Number.isSafeInteger(rows * cols) || rows * cols > 2 ** 40) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${where}: rows × cols overflows`, {
      expected: "at most 2^40 weights",
      actual: `${rows} × ${cols}`,
    });
  }
}

/** Throws `H1B_BAD_ARGUMENT` unless `trits` holds at least `rows × cols` values (encoders of every packing). */
export function checkTrits(trits: Int8Array, rows: number, cols: number, packing: string): void {
  if (trits.length < rows * cols) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} encode: too few trits`, {
      expected: `${rows} × ${cols} = ${rows * cols} values`,
      actual: trits.length,
      hint: "Pass the whole matrix, row-major, one value per weight",
    });
  }
}

/** The `H1B_BAD_ARGUMENT` an encoder throws for a weight outside {-1, 0, +1}. */
export function badTrit(packing: string, index: number, value: number): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `${packing} encode: weights must be -1, 0 or +1`, {
    field: `trits[${index}]`,
    expected: "-1, 0 or 1",
    actual: value,
    hint: "Ternarise the weights first (absmean scaling and rounding), then encode the trits",
  });
}

/** Throws `H1B_TRUNCATED` when a packed tensor has fewer than `needed` bytes (decoders of every packing). */
export function checkBytes(bytes: Uint8Array, needed: number, packing: string): void {
  if (bytes.length < needed) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `${packing} decode: packed bytes too short`, {
      expected: `${needed} bytes`,
      actual: bytes.length,
      hint: "The tensor's data is truncated: download or convert the model file again",
    });
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** IEEE float32, little-endian. */
export const f32Codec: FloatCodec = {
  dtype: "f32",
  blockSize: 1,
  blockBytes: 4,
  decode(bytes, count) {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count).slice();
    const out = new Float32Array(count);
    const dv = view(bytes);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  },
  encode(values) {
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  },
};

/** IEEE binary16, little-endian. */
export const f16Codec: FloatCodec = {
  dtype: "f16",
  blockSize: 1,
  blockBytes: 2,
  decode(bytes, count) {
    const out = new Float32Array(count);
    const table = f16Table();
    for (let i = 0; i < count; i++) out[i] = table[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
    return out;
  },
  encode(values) {
    const out = new Uint8Array(values.length * 2);
    for (let i = 0; i < values.length; i++) {
      const h = f32ToF16(values[i]!);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >> 8;
    }
    return out;
  },
};

let f16Lookup: Float32Array | null = null;
/** All 65536 f16 values as float32 (built once, 256 KiB). */
export function f16Table(): Float32Array {
  if (f16Lookup === null) {
    f16Lookup = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Lookup[i] = f16ToF32(i);
  }
  return f16Lookup;
}

/** bfloat16, little-endian. */
export const bf16Codec: FloatCodec = {
  dtype: "bf16",
  blockSize: 1,
  blockBytes: 2,
  decode(bytes, count) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = bf16ToF32(bytes[2 * i]! | (bytes[2 * i + 1]! << 8));
    return out;
  },
  encode(values) {
    const out = new Uint8Array(values.length * 2);
    for (let i = 0; i < values.length; i++) {
      const h = f32ToBf16(values[i]!);
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >> 8;
    }
    return out;
  },
};

registerTernaryCodec(int8Codec);
registerFloatCodec(f32Codec);
registerFloatCodec(f16Codec);
registerFloatCodec(bf16Codec);
