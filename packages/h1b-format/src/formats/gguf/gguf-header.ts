// GGUF v2/v3 header parser: metadata key/values and tensor infos, validated before anything is allocated.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import type { ByteSource } from "../../core/byte-source.js";
import {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_SCALAR_SIZE,
  GgufValueType,
  ggmlTensorBytes,
  type GgmlType,
} from "./gguf-types.js";

/** A decoded metadata value. 64-bit integers are numbers when safe, bigints otherwise. */
export type GgufValue = number | bigint | boolean | string | readonly GgufValue[];

/** One metadata entry. */
export interface GgufEntry {
  /** Value type id ({@link GgufValueType}). */
  readonly type: number;
  /** For arrays: the element type id. */
  readonly itemType?: number;
  readonly value: GgufValue;
  /** Byte offset of the entry's key in the file. */
  readonly offset: number;
}

/** One tensor info. */
export interface GgufTensorInfo {
  /** Name as stored, e.g. `blk.0.attn_q.weight`. */
  readonly name: string;
  /** ggml dims, `dims[0]` fastest (columns). */
  readonly dims: readonly number[];
  readonly type: GgmlType;
  /** Offset from the start of the data section, as stored. */
  readonly relativeOffset: number;
  /** Absolute byte offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** A parsed GGUF header. */
export interface GgufHeader {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufEntry>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset of the tensor data section. */
  readonly dataOffset: number;
}

/** Nested arrays deeper than this are refused (no real file nests at all). */
const MAX_ARRAY_DEPTH = 8;
const CHUNK = 1 << 20;
const decoder = new TextDecoder("utf-8");

/** Sequential little-endian reader over a ByteSource that fetches 1 MiB windows. */
class Cursor {
  pos = 0;
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;
  private view = new DataView(this.window.buffer);

  constructor(private readonly source: ByteSource) {}

  get remaining(): number {
    return this.source.byteLength - this.pos;
  }

  take(length: number, what: string): { bytes: Uint8Array; view: DataView; at: number } {
    if (length > this.remaining) {
      throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `file ends inside ${what}`, {
        path: this.source.path,
        offset: this.pos,
        expected: `${length} bytes`,
        actual: `${this.remaining} bytes before end of file (size ${this.source.byteLength})`,
        hint: "The file is truncated or corrupt; download or convert it again",
      });
    }
    const end = this.windowStart + this.window.byteLength;
    if (this.pos < this.windowStart || this.pos + length > end) {
      this.windowStart = this.pos;
      this.window = this.source.read(this.pos, Math.min(Math.max(length, CHUNK), this.remaining));
      this.view = new DataView(this.window.buffer, this.window.byteOffset, this.window.byteLength);
    }
    const at = this.pos - this.windowStart;
    this.pos += length;
    return { bytes: this.window, view: this.view, at };
  }

  u32(what: string): number {
    const { view, at } = this.take(4, what);
    return view.getUint32(at, true);
  }

  /** u64 as a number; `H1B_TOO_LARGE` above 2^53. */
  u64(what: string): number {
    const start = this.pos;
    const { view, at } = this.take(8, what);
    const value = view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new HaloError(H1bErrorCode.H1B_TOO_LARGE, `${what} is larger than any file`, {
        path: this.source.path,
        offset: start,
        expected: "at most 2^53",
        actual: value,
      });
    }
    return Number(value);
  }

  string(what: string): string {
    const start = this.pos;
    const length = this.u64(`${what} length`);
    if (length > this.remaining) {
      throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `string length of ${what} runs past the end of the file`, {
        path: this.source.path,
        offset: start,
        field: what,
        expected: `at most ${this.remaining} bytes`,
        actual: length,
        hint: "The file is truncated or corrupt",
      });
    }
    const { bytes, at } = this.take(length, what);
    return decoder.decode(bytes.subarray(at, at + length));
  }
}

function tooLarge(path: string, offset: number, field: string, count: number, minBytes: number, remaining: number): HaloError {
  return new HaloError(H1bErrorCode.H1B_TOO_LARGE, `${field} declares more entries than the file can hold`, {
    path,
    offset,
    field,
    expected: `at most ${Math.floor(remaining / minBytes)} (${remaining} bytes left, ≥ ${minBytes} bytes each)`,
    actual: count,
    hint: "The file is corrupt; refusing to allocate for it",
  });
}

function readValue(cursor: Cursor, path: string, type: number, field: string, depth: number): GgufValue {
  const start = cursor.pos;
  switch (type) {
    case GgufValueType.UINT8: {
      const { view, at } = cursor.take(1, field);
      return view.getUint8(at);
    }
    case GgufValueType.INT8: {
      const { view, at } = cursor.take(1, field);
      return view.getInt8(at);
    }
    case GgufValueType.UINT16: {
      const { view, at } = cursor.take(2, field);
      return view.getUint16(at, true);
    }
    case GgufValueType.INT16: {
      const { view, at } = cursor.take(2, field);
      return view.getInt16(at, true);
    }
    case GgufValueType.UINT32: {
      const { view, at } = cursor.take(4, field);
      return view.getUint32(at, true);
    }
    case GgufValueType.INT32: {
      const { view, at } = cursor.take(4, field);
      return view.getInt32(at, true);
    }
    case GgufValueType.FLOAT32: {
      const { view, at } = cursor.take(4, field);
      return shortestF32(view.getFloat32(at, true));
    }
    case GgufValueType.BOOL: {
      const { view, at } = cursor.take(1, field);
      const byte = view.getUint8(at);
      if (byte > 1) {
        throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "bool metadata value is neither 0 nor 1", {
          path,
          offset: start,
          field,
          expected: "0 or 1",
          actual: byte,
        });
      }
      return byte === 1;
    }
    case GgufValueType.STRING:
      return cursor.string(field);
    case GgufValueType.UINT64: {
      const { view, at } = cursor.take(8, field);
      const v = view.getBigUint64(at, true);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.INT64: {
      const { view, at } = cursor.take(8, field);
      const v = view.getBigInt64(at, true);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.FLOAT64: {
      const { view, at } = cursor.take(8, field);
      return view.getFloat64(at, true);
    }
    case GgufValueType.ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) {
        throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "metadata arrays nested too deeply", {
          path,
          offset: start,
          field,
          expected: `at most ${MAX_ARRAY_DEPTH} levels`,
          actual: depth + 1,
        });
      }
      const itemType = cursor.u32(`${field} element type`);
      checkValueType(path, cursor.pos - 4, field, itemType);
      const countAt = cursor.pos;
      const count = cursor.u64(`${field} element count`);
      const minBytes = itemType === GgufValueType.STRING ? 8 : itemType === GgufValueType.ARRAY ? 12 : GGUF_SCALAR_SIZE[itemType]!;
      if (count * minBytes > cursor.remaining) throw tooLarge(path, countAt, field, count, minBytes, cursor.remaining);
      const items: GgufValue[] = new Array<GgufValue>(count);
      for (let i = 0; i < count; i++) items[i] = readValue(cursor, path, itemType, field, depth + 1);
      return items;
    }
  }
  throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "unknown metadata value type", {
    path,
    offset: start,
    field,
    expected: "a type id in 0..12",
    actual: type,
  });
}

/**
 * The shortest decimal that rounds to the same float32 (`1e-5`, not `0.000009999999747378752`),
 * so configs read from GGUF compare equal to the ones written.
 */
function shortestF32(value: number): number {
  if (!Number.isFinite(value)) return value;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

function checkValueType(path: string, offset: number, field: string, type: number): void {
  if (!Number.isInteger(type) || type < 0 || type > 12) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "unknown metadata value type", {
      path,
      offset,
      field,
      expected: "a type id in 0..12",
      actual: type,
      hint: "The file is corrupt or from a newer GGUF version",
    });
  }
}

/**
 * Parses and validates a GGUF v2/v3 header: magic, version, every metadata value type (nested
 * arrays included), tensor infos, `general.alignment`, and the tensor data layout (aligned, inside
 * the file, not overlapping). Reads only the header bytes. Every count is checked against the bytes
 * left in the file before anything is allocated (`H1B_TOO_LARGE`).
 *
 * @example
 * ```ts
 * const source = fileSource("model.gguf");
 * const header = readGgufHeader(source);
 * console.log(header.metadata.get("general.architecture")?.value, header.tensors.length);
 * ```
 */
export function readGgufHeader(source: ByteSource): GgufHeader {
  const path = source.path;
  const cursor = new Cursor(source);
  const magic = cursor.u32("magic");
  if (magic !== GGUF_MAGIC) {
    throw new HaloError(H1bErrorCode.H1B_BAD_MAGIC, "not a GGUF file", {
      path,
      offset: 0,
      expected: "47 47 55 46 (GGUF)",
      actual: [magic & 0xff, (magic >> 8) & 0xff, (magic >> 16) & 0xff, magic >>> 24].map((b) => b.toString(16).padStart(2, "0")).join(" "),
      hint: "Pass a .gguf file",
    });
  }
  const version = cursor.u32("version");
  if (version !== 2 && version !== 3) {
    throw new HaloError(H1bErrorCode.H1B_BAD_VERSION, "unsupported GGUF version", {
      path,
      offset: 4,
      field: "version",
      expected: "2 or 3",
      actual: version,
      hint: version === 1 ? "GGUF v1 is obsolete; convert the model again with a current llama.cpp" : "The file is corrupt or from a newer GGUF",
    });
  }
  const tensorCount = cursor.u64("tensor count");
  const kvCount = cursor.u64("metadata count");
  // Smallest possible entries: a key/value is key length (8) + 1 byte key + type (4) + 1 byte value;
  // a tensor info is name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
  if (kvCount * 14 > cursor.remaining) throw tooLarge(path, 16, "metadata count", kvCount, 14, cursor.remaining);
  if (tensorCount * 32 > cursor.remaining - kvCount * 14) {
    throw tooLarge(path, 8, "tensor count", tensorCount, 32, cursor.remaining - kvCount * 14);
  }

  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < kvCount; i++) {
    const offset = cursor.pos;
    const key = cursor.string(`metadata key ${i}`);
    if (metadata.has(key)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "duplicate metadata key", { path, offset, field: key, actual: key });
    }
    const typeAt = cursor.pos;
    const type = cursor.u32(`type of ${key}`);
    checkValueType(path, typeAt, key, type);
    const itemType = type === GgufValueType.ARRAY ? peekItemType(cursor) : undefined;
    const value = readValue(cursor, path, type, key, 0);
    metadata.set(key, itemType === undefined ? { type, value, offset } : { type, itemType, value, offset });
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = metadata.get("general.alignment");
  if (alignEntry !== undefined) {
    const a = alignEntry.value;
    if (alignEntry.type !== GgufValueType.UINT32 || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "general.alignment must be a power of two (u32)", {
        path,
        offset: alignEntry.offset,
        field: "general.alignment",
        expected: "a u32 power of two",
        actual: typeof a === "bigint" ? a : JSON.stringify(a),
      });
    }
    alignment = a;
  }

  const infos: Array<{ name: string; dims: number[]; type: GgmlType; relativeOffset: number; byteLength: number; at: number }> = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = cursor.pos;
    const name = cursor.string(`tensor ${i} name`);
    if (names.has(name)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "duplicate tensor name", { path, offset: at, field: name, actual: name });
    }
    names.add(name);
    const nDims = cursor.u32(`${name} n_dims`);
    if (nDims < 1 || nDims > GGUF_MAX_DIMS) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "tensor has an invalid number of dimensions", {
        path,
        offset: cursor.pos - 4,
        field: name,
        expected: `1..${GGUF_MAX_DIMS}`,
        actual: nDims,
      });
    }
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const dimAt = cursor.pos;
      const dim = cursor.u64(`${name} dim ${d}`);
      elements *= dim;
      if (dim === 0 || !Number.isSafeInteger(elements)) {
        throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, dim === 0 ? "tensor dimension is zero" : "tensor element count overflows", {
          path,
          offset: dimAt,
          field: `${name}.dims[${d}]`,
          expected: "positive, with a product below 2^53",
          actual: dim,
        });
      }
      dims.push(dim);
    }
    const typeAt = cursor.pos;
    const typeId = cursor.u32(`${name} type`);
    const type = GGML_TYPES.get(typeId);
    if (type === undefined) {
      throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, "unknown ggml tensor type", {
        path,
        offset: typeAt,
        field: name,
        expected: `one of ${[...GGML_TYPES.values()].map((t) => `${t.id} (${t.name})`).join(", ")}`,
        actual: typeId,
      });
    }
    const byteLength = ggmlTensorBytes(type, dims);
    if (byteLength === null) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `tensor rows are not whole ${type.name} blocks`, {
        path,
        offset: typeAt,
        field: name,
        expected: type.id === 36 ? "a multiple of 128 elements" : `dims[0] a multiple of ${type.blockSize}`,
        actual: dims,
      });
    }
    const offsetAt = cursor.pos;
    const relativeOffset = cursor.u64(`${name} offset`);
    if (relativeOffset % alignment !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, "tensor offset is not aligned", {
        path,
        offset: offsetAt,
        field: name,
        expected: `a multiple of general.alignment = ${alignment}`,
        actual: relativeOffset,
      });
    }
    infos.push({ name, dims, type, relativeOffset, byteLength, at: offsetAt });
  }

  const dataOffset = Math.ceil(cursor.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = infos.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    relativeOffset: t.relativeOffset,
    offset: dataOffset + t.relativeOffset,
    byteLength: t.byteLength,
  }));
  const sorted = infos.map((t, i) => ({ ...t, offset: tensors[i]!.offset })).sort((a, b) => a.offset - b.offset);
  let previousEnd = dataOffset;
  let previousName = "";
  for (const t of sorted) {
    if (t.offset < previousEnd) {
      throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, "tensors overlap", {
        path,
        offset: t.at,
        field: t.name,
        expected: `data at or after byte ${previousEnd} (end of ${previousName})`,
        actual: t.offset,
      });
    }
    const end = t.offset + t.byteLength;
    if (end > source.byteLength) {
      throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "tensor data runs past the end of the file", {
        path,
        offset: t.at,
        field: t.name,
        expected: `bytes [${t.offset}, ${end})`,
        actual: `file size ${source.byteLength}`,
        hint: "The file is truncated or corrupt; download or convert it again",
      });
    }
    previousEnd = end;
    previousName = t.name;
  }
  return { path, version, metadata, tensors, alignment, dataOffset };
}

function peekItemType(cursor: Cursor): number | undefined {
  if (cursor.remaining < 4) return undefined;
  const save = cursor.pos;
  const type = cursor.u32("array element type");
  cursor.pos = save;
  return type;
}
