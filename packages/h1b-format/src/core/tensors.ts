// Constructors for lazy tensors over a ByteSource or in-memory bytes.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { ByteSource } from "./byte-source.js";
import type { FloatDType, FloatTensor, TensorFileRange, TernaryPacking, TernaryScale, TernaryTensor } from "./model.js";
import { floatByteLength, floatCodec, missingCodecHint, ternaryCodec, type TernaryCodec, type TernaryCodecs } from "../codecs/registry.js";

/** Where a tensor's bytes are: a source and a byte range, or bytes in memory. */
export type TensorBytes = { readonly source: ByteSource; readonly offset: number } | { readonly data: Uint8Array };

/** The file range of bytes at `location`, when its source is a file (`ByteSource.filePath`). */
function fileRangeOf(location: TensorBytes, byteLength: number): () => TensorFileRange | null {
  if ("data" in location) return () => null;
  const path = location.source.filePath ?? null;
  if (path === null) return () => null;
  const range: TensorFileRange = { path, offset: location.offset, length: byteLength };
  return () => ({ ...range });
}

function loader(location: TensorBytes, byteLength: number): () => Uint8Array {
  if ("data" in location) {
    if (location.data.byteLength !== byteLength) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "tensor bytes have the wrong length", {
        expected: byteLength,
        actual: location.data.byteLength,
      });
    }
    const data = location.data;
    return () => data;
  }
  const { source, offset } = location;
  return () => source.read(offset, byteLength);
}

/** Builds a {@link FloatTensor}; checks the byte length against dtype and shape. */
export function floatTensor(name: string, dtype: FloatDType, shape: readonly number[], location: TensorBytes): FloatTensor {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `tensor ${name} has an invalid dimension`, {
        field: name,
        expected: "positive whole numbers",
        actual: shape,
      });
    }
    count *= d;
    if (!Number.isSafeInteger(count)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `tensor ${name} element count overflows`, {
        field: name,
        actual: shape,
      });
    }
  }
  const byteLength = floatByteLength(dtype, count);
  const read = loader(location, byteLength);
  return {
    kind: "float",
    name,
    dtype,
    shape: [...shape],
    byteLength,
    bytes: read,
    fileRange: fileRangeOf(location, byteLength),
    toFloat32: () => floatCodec(dtype).decode(read(), count),
  };
}

/**
 * Builds a {@link TernaryTensor}; checks shape against the packing and the scale's size. The
 * packing is a format packing or one of `codecs` (a backend's layout, passed for this call).
 *
 * @example
 * ```ts
 * const t = ternaryTensor("blk.0.q", "int8", 2, 3, { kind: "tensor", value: 0.5 }, { data: Uint8Array.of(1, 0, 255, 0, 1, 1) });
 * const q = ternaryTensor("blk.0.q", "halo-i2x256", rows, cols, scale, { data: bytes }, backendFactory.packings);
 * ```
 */
export function ternaryTensor(
  name: string,
  packing: TernaryPacking,
  rows: number,
  cols: number,
  scale: TernaryScale,
  location: TensorBytes,
  codecs: TernaryCodecs = [],
): TernaryTensor {
  const codec = ternaryCodec(packing, codecs);
  codec.checkShape(rows, cols, `tensor ${name}`);
  checkScale(name, rows, cols, scale);
  const byteLength = codec.byteLength(rows, cols);
  if ("data" in location) loader(location, byteLength); // length check
  return lazyTernaryTensor(name, packing, rows, cols, scale, location, codec);
}

/**
 * A {@link TernaryTensor} in a packing this call has no codec for (a backend's layout read without
 * that backend's codecs): `bytes()` and `fileRange()` work, so the backend can still map or copy
 * the stored bytes, and `decodeRows` throws `H1B_UNKNOWN_DTYPE` saying how to pass the codec. The
 * byte length is the file's (a reader checks it lies inside the file; nothing else can check it).
 * @internal
 */
export function undecodableTernaryTensor(
  name: string,
  packing: TernaryPacking,
  rows: number,
  cols: number,
  scale: TernaryScale,
  location: TensorBytes,
  byteLength: number,
): TernaryTensor {
  checkScale(name, rows, cols, scale);
  const read = loader(location, byteLength);
  return {
    kind: "ternary",
    name,
    rows,
    cols,
    packing,
    scale,
    byteLength,
    bytes: read,
    fileRange: fileRangeOf(location, byteLength),
    decodeRows(): void {
      throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, `cannot decode ${name}: no codec for its packing "${packing}" was passed`, {
        field: name,
        expected: `a codec for ${packing} in the codecs option`,
        actual: packing,
        hint: missingCodecHint(packing),
      });
    },
  };
}

/**
 * Throws `H1B_BAD_ARGUMENT` unless rows `[rowStart, rowStart + rowCount)` lie inside a `rows × cols`
 * matrix and `out` holds `rowCount × cols` values: the argument check of every `decodeRows`.
 * @internal
 */
export function checkDecodeRange(name: string, rows: number, cols: number, rowStart: number, rowCount: number, out: Int8Array): void {
  if (
    !Number.isSafeInteger(rowStart) ||
    !Number.isSafeInteger(rowCount) ||
    rowStart < 0 ||
    rowCount < 0 ||
    rowStart + rowCount > rows ||
    out.length < rowCount * cols
  ) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `decodeRows out of range for ${name}`, {
      expected: `rows within [0, ${rows}) and out.length ≥ ${rowCount * cols}`,
      actual: `rows [${rowStart}, ${rowStart + rowCount}), out.length ${out.length}`,
      hint: "Ask for rows inside the matrix with an output of rowCount × cols values",
    });
  }
}

/**
 * A {@link TernaryTensor} over bytes in memory or at an offset of a source, without checks of its
 * own (readers validate shape and scales first; {@link ternaryTensor} is the checked entry).
 * `decodeRows` reads only the rows asked for when the packing stores rows independently
 * (`TernaryCodec.rowBytes`), so decoding a 2B model row block by row block never reads a whole
 * matrix per call.
 * @internal
 */
export function lazyTernaryTensor(
  name: string,
  packing: TernaryPacking,
  rows: number,
  cols: number,
  scale: TernaryScale,
  location: TensorBytes,
  codec: TernaryCodec = ternaryCodec(packing),
): TernaryTensor {
  const byteLength = codec.byteLength(rows, cols);
  const read = "data" in location ? () => location.data : () => location.source.read(location.offset, byteLength);
  const rowBytes = codec.rowBytes?.(cols) ?? null;
  return {
    kind: "ternary",
    name,
    rows,
    cols,
    packing,
    scale,
    byteLength,
    bytes: read,
    fileRange: fileRangeOf(location, byteLength),
    decodeRows(rowStart: number, rowCount: number, out: Int8Array): void {
      checkDecodeRange(name, rows, cols, rowStart, rowCount, out);
      if (rowBytes !== null && "source" in location) {
        codec.decodeRows(location.source.read(location.offset + rowStart * rowBytes, rowCount * rowBytes), rowCount, cols, 0, rowCount, out);
      } else {
        codec.decodeRows(read(), rows, cols, rowStart, rowCount, out);
      }
    },
  };
}

function checkScale(name: string, rows: number, cols: number, scale: TernaryScale): void {
  const expected = scale.kind === "tensor" ? 1 : scale.kind === "row" ? rows : (rows * cols) / scale.blockSize;
  const actual = scale.kind === "tensor" ? 1 : scale.values.length;
  if (scale.kind === "block" && (!Number.isSafeInteger(scale.blockSize) || scale.blockSize <= 0 || cols % scale.blockSize !== 0)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `tensor ${name}: block scale size must divide cols`, {
      expected: `a divisor of ${cols}`,
      actual: scale.blockSize,
    });
  }
  if (expected !== actual) {
    throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${name}: wrong number of scales`, {
      expected,
      actual,
    });
  }
}

/** Scale of weight `(row, col)` under any {@link TernaryScale}. */
export function scaleAt(scale: TernaryScale, cols: number, row: number, col: number): number {
  switch (scale.kind) {
    case "tensor":
      return scale.value;
    case "row":
      return scale.values[row]!;
    case "block":
      return scale.values[((row * cols + col) / scale.blockSize) | 0]!;
  }
}
