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

/** Strings up to this many bytes are decoded in JS: TextDecoder's per-call cost dominates for vocabulary tokens. */
const SHORT_STRING = 64;

const units = new Uint16Array(2 * 64);

/** Decodes well-formed UTF-8 directly; anything else goes through TextDecoder (U+FFFD replacement). */
function decodeShort(bytes: Uint8Array, at: number, length: number): string {
  let n = 0;
  const end = at + length;
  for (let i = at; i < end;) {
    const b = bytes[i]!;
    if (b < 0x80) {
      units[n++] = b;
      i++;
      continue;
    }
    let cp: number;
    let size: number;
    if (b >= 0xc2 && b < 0xe0) {
      cp = b & 0x1f;
      size = 2;
    } else if (b >= 0xe0 && b < 0xf0) {
      cp = b & 0x0f;
      size = 3;
    } else if (b >= 0xf0 && b < 0xf5) {
      cp = b & 0x07;
      size = 4;
    } else return decoder.decode(bytes.subarray(at, end));
    if (i + size > end) return decoder.decode(bytes.subarray(at, end));
    for (let k = 1; k < size; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return decoder.decode(bytes.subarray(at, end));
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong, surrogate and out-of-range forms are malformed: let TextDecoder replace them.
    if ((size === 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (size === 4 && (cp < 0x10000 || cp > 0x10ffff))) {
      return decoder.decode(bytes.subarray(at, end));
    }
    if (cp < 0x10000) units[n++] = cp;
    else {
      units[n++] = 0xd800 + ((cp - 0x10000) >> 10);
      units[n++] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
    }
    i += size;
  }
  return unitsToString(n);
}

/** `String.fromCharCode` of the first `n` {@link units}; explicit arguments are ~4× faster than `apply` for short tokens. */
function unitsToString(n: number): string {
  const u = units;
  switch (n) {
    case 0:
      return "";
    case 1:
      return String.fromCharCode(u[0]!);
    case 2:
      return String.fromCharCode(u[0]!, u[1]!);
    case 3:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!);
    case 4:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!, u[3]!);
    case 5:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!, u[3]!, u[4]!);
    case 6:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!, u[3]!, u[4]!, u[5]!);
    case 7:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!, u[3]!, u[4]!, u[5]!, u[6]!);
    case 8:
      return String.fromCharCode(u[0]!, u[1]!, u[2]!, u[3]!, u[4]!, u[5]!, u[6]!, u[7]!);
    default: {
      let out = "";
      let i = 0;
      for (; i + 8 <= n; i += 8) out += String.fromCharCode(u[i]!, u[i + 1]!, u[i + 2]!, u[i + 3]!, u[i + 4]!, u[i + 5]!, u[i + 6]!, u[i + 7]!);
      for (; i < n; i++) out += String.fromCharCode(u[i]!);
      return out;
    }
  }
}

/** Sequential little-endian reader over a ByteSource that fetches 1 MiB windows. */
class Cursor {
  pos = 0;
  /** The current window; `take` returns offsets into it. */
  bytes: Uint8Array = new Uint8Array(0);
  view = new DataView(this.bytes.buffer);
  private windowStart = 0;
  private windowEnd = 0;

  constructor(private readonly source: ByteSource) {}

  get remaining(): number {
    return this.source.byteLength - this.pos;
  }

  /** Advances by `length` bytes and returns where they start in {@link bytes} / {@link view}. */
  take(length: number, what: string, suffix = ""): number {
    if (length > this.remaining) {
      throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `file ends inside ${what}${suffix}`, {
        path: this.source.path,
        offset: this.pos,
        expected: `${length} bytes`,
        actual: `${this.remaining} bytes before end of file (size ${this.source.byteLength})`,
        hint: "The file is truncated or corrupt; download or convert it again",
      });
    }
    if (this.pos < this.windowStart || this.pos + length > this.windowEnd) {
      this.windowStart = this.pos;
      this.bytes = this.source.read(this.pos, Math.min(Math.max(length, CHUNK), this.remaining));
      this.windowEnd = this.windowStart + this.bytes.length;
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    }
    const at = this.pos - this.windowStart;
    this.pos += length;
    return at;
  }

  u32(what: string): number {
    const at = this.take(4, what);
    return this.view.getUint32(at, true);
  }

  /** u64 as a number; `H1B_TOO_LARGE` from 2^53 up. */
  u64(what: string, suffix = ""): number {
    const start = this.pos;
    const at = this.take(8, what, suffix);
    const low = this.view.getUint32(at, true);
    const high = this.view.getUint32(at + 4, true);
    if (high < 0x200000) return high * 0x1_0000_0000 + low;
    throw new HaloError(H1bErrorCode.H1B_TOO_LARGE, `${what}${suffix} is larger than any file`, {
      path: this.source.path,
      offset: start,
      expected: "below 2^53",
      actual: this.view.getBigUint64(at, true),
    });
  }

  string(what: string): string {
    const start = this.pos;
    const length = this.u64(what, " length");
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
    const at = this.take(length, what);
    return length <= SHORT_STRING ? decodeShort(this.bytes, at, length) : decoder.decode(this.bytes.subarray(at, at + length));
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
      const at = cursor.take(1, field);
      const view = cursor.view;
      return view.getUint8(at);
    }
    case GgufValueType.INT8: {
      const at = cursor.take(1, field);
      const view = cursor.view;
      return view.getInt8(at);
    }
    case GgufValueType.UINT16: {
      const at = cursor.take(2, field);
      const view = cursor.view;
      return view.getUint16(at, true);
    }
    case GgufValueType.INT16: {
      const at = cursor.take(2, field);
      const view = cursor.view;
      return view.getInt16(at, true);
    }
    case GgufValueType.UINT32: {
      const at = cursor.take(4, field);
      const view = cursor.view;
      return view.getUint32(at, true);
    }
    case GgufValueType.INT32: {
      const at = cursor.take(4, field);
      const view = cursor.view;
      return view.getInt32(at, true);
    }
    case GgufValueType.FLOAT32: {
      const at = cursor.take(4, field);
      const view = cursor.view;
      return shortestF32(view.getFloat32(at, true));
    }
    case GgufValueType.BOOL: {
      const at = cursor.take(1, field);
      const view = cursor.view;
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
      const at = cursor.take(8, field);
      const view = cursor.view;
      const v = view.getBigUint64(at, true);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.INT64: {
      const at = cursor.take(8, field);
      const view = cursor.view;
      const v = view.getBigInt64(at, true);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.FLOAT64: {
      const at = cursor.take(8, field);
      const view = cursor.view;
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
      const itemType = cursor.u32(field);
      checkValueType(path, cursor.pos - 4, field, itemType);
      const countAt = cursor.pos;
      const count = cursor.u64(field, " element count");
      const minBytes = itemType === GgufValueType.STRING ? 8 : itemType === GgufValueType.ARRAY ? 12 : GGUF_SCALAR_SIZE[itemType]!;
      if (count * minBytes > cursor.remaining) throw tooLarge(path, countAt, field, count, minBytes, cursor.remaining);
      const items: GgufValue[] = new Array<GgufValue>(count);
      if (itemType === GgufValueType.STRING) {
        // Vocabularies are hundreds of thousands of strings: skip the generic dispatch.
        for (let i = 0; i < count; i++) items[i] = cursor.string(field);
      } else if (itemType === GgufValueType.INT32) {
        const at = cursor.take(4 * count, field);
        for (let i = 0; i < count; i++) items[i] = cursor.view.getInt32(at + 4 * i, true);
      } else {
        for (let i = 0; i < count; i++) items[i] = readValue(cursor, path, itemType, field, depth + 1);
      }
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
  const order = infos.map((_, i) => i).sort((a, b) => infos[a]!.relativeOffset - infos[b]!.relativeOffset);
  let previousEnd = dataOffset;
  let previousName = "";
  for (const i of order) {
    const t = infos[i]!;
    const offset = tensors[i]!.offset;
    if (offset < previousEnd) {
      throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, "tensors overlap", {
        path,
        offset: t.at,
        field: t.name,
        expected: `data at or after byte ${previousEnd} (end of ${previousName})`,
        actual: offset,
      });
    }
    const end = offset + t.byteLength;
    if (end > source.byteLength) {
      throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "tensor data runs past the end of the file", {
        path,
        offset: t.at,
        field: t.name,
        expected: `bytes [${offset}, ${end})`,
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
