// A lazy ternary view of bf16/f16/f32 master weights, ternarised on read with the absmean recipe.
import type { ByteSource } from "../../core/byte-source.js";
import type { TernaryScale, TernaryTensor } from "../../core/model.js";
import { floatCodec } from "../../codecs/registry.js";
import { checkDecodeRange } from "../../core/tensors.js";
import { AbsSum, ternarizeInto, type AbsmeanParams } from "./absmean-ternarize.js";

/** Weights decoded per read while scanning or ternarising (4 Mi elements, 16 MiB of float32). */
const CHUNK_ELEMENTS = 1 << 22;

function decodeMaster(dtype: "bf16" | "f16" | "f32", bytes: Uint8Array, count: number): Float32Array {
  if (dtype !== "bf16") return floatCodec(dtype).decode(bytes, count);
  // bf16 is the top half of a float32: shift the bits instead of converting value by value.
  const out = new Float32Array(count);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = (bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16;
  return out;
}

/**
 * A {@link TernaryTensor} (packing `int8`) over master weights `[rows, cols]` stored at
 * `offset` in `source`. The first use of `scale`, `decodeRows` or `bytes` scans the matrix once
 * (in chunks, never whole) for `mean|W|`; trits are recomputed from the master bytes on every
 * decode, so nothing but the scale is cached. See {@link AbsSum} for the accumulation choice.
 *
 * @example
 * ```ts
 * const q = masterTernaryTensor("blk.0.q", 2560, 2560, "bf16", source, offset);
 * q.scale; // { kind: "tensor", value: ≈ mean|W| rounded to bf16 }
 * ```
 */
export function masterTernaryTensor(
  name: string,
  rows: number,
  cols: number,
  dtype: "bf16" | "f16" | "f32",
  source: ByteSource,
  offset: number,
): TernaryTensor {
  const elementBytes = dtype === "f32" ? 4 : 2;
  const chunkRows = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
  let params: AbsmeanParams | null = null;
  const readRows = (rowStart: number, rowCount: number): Float32Array =>
    decodeMaster(dtype, source.read(offset + rowStart * cols * elementBytes, rowCount * cols * elementBytes), rowCount * cols);
  const ternarisation = (): AbsmeanParams => {
    if (params === null) {
      const sum = new AbsSum();
      for (let r = 0; r < rows; r += chunkRows) sum.add(readRows(r, Math.min(chunkRows, rows - r)), name);
      params = sum.params(dtype);
    }
    return params;
  };
  const decodeRows = (rowStart: number, rowCount: number, out: Int8Array): void => {
    checkDecodeRange(name, rows, cols, rowStart, rowCount, out);
    const { inverse } = ternarisation();
    for (let r = 0; r < rowCount; r += chunkRows) {
      const n = Math.min(chunkRows, rowCount - r);
      ternarizeInto(readRows(rowStart + r, n), inverse, out, r * cols);
    }
  };
  return {
    kind: "ternary",
    name,
    rows,
    cols,
    packing: "int8",
    get scale(): TernaryScale {
      return { kind: "tensor", value: ternarisation().scale };
    },
    byteLength: rows * cols,
    bytes(): Uint8Array {
      const out = new Int8Array(rows * cols);
      decodeRows(0, rows, out);
      return new Uint8Array(out.buffer);
    },
    fileRange: () => null, // the int8 bytes are computed from the master weights, not stored
    decodeRows,
  };
}
