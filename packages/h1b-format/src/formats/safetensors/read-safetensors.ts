// safetensors reader: validates the header against the file and exposes lazy tensor byte ranges.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { fileSource, type ByteSource } from "../../core/byte-source.js";
import { SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, type SafetensorsDType } from "./safetensors-dtype.js";

/** Largest JSON header accepted, as in the reference Rust implementation (100 MB). */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/** One tensor entry of a safetensors header. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  /** Row-major shape; `[]` is a scalar (one element). */
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** An open, validated safetensors file. Tensor bytes are read only when asked for. */
export interface SafetensorsFile {
  readonly path: string;
  readonly source: ByteSource;
  /** Absolute offset of the data buffer (8 + header length). */
  readonly dataOffset: number;
  /** The header's `__metadata__` (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Entries in header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The entry of `name`, or `H1B_MISSING_TENSOR`. */
  tensor(name: string): SafetensorsTensorInfo;
  /** The bytes of tensor `name` (one positioned read). */
  read(name: string): Uint8Array;
  /** Closes the underlying source. */
  close(): void;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function metadataError(path: string, summary: string, field: string | undefined, expected: string, actual: unknown): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_METADATA, summary, {
    path,
    ...(field === undefined ? {} : { field }),
    expected,
    actual,
    hint: "The safetensors header is malformed; download or convert the file again",
  });
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return `array of ${value.length}`;
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeof value === "object" ? "object" : String(value);
}

/**
 * Parses and validates the header of a safetensors file: 8-byte little-endian header length,
 * UTF-8 JSON object of `{name: {dtype, shape, data_offsets}}` plus optional `__metadata__`
 * (string values), data offsets relative to the data buffer, sorted without gaps or overlaps and
 * covering it exactly, each tensor's byte size equal to its shape times its dtype size.
 * Only the header is read; nothing is allocated beyond what the file holds.
 *
 * Throws `H1B_TRUNCATED` (header or tensor past the end), `H1B_TOO_LARGE` (header over 100 MB),
 * `H1B_BAD_METADATA` (bad JSON or field types), `H1B_UNKNOWN_DTYPE`, `H1B_BAD_DIMENSION`,
 * `H1B_BAD_TENSOR` (shape vs bytes) or `H1B_BAD_OFFSET` (overlap, gap, unsorted, trailing bytes).
 *
 * @example
 * ```ts
 * const file = readSafetensors(fileSource("model.safetensors"));
 * const info = file.tensor("model.norm.weight"); // { dtype: "BF16", shape: [2560], ... }
 * file.close();
 * ```
 */
export function readSafetensors(source: ByteSource): SafetensorsFile {
  const path = source.path;
  if (source.byteLength < 8) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "file ends inside the safetensors header length", {
      path,
      offset: 0,
      expected: "at least 8 bytes",
      actual: `${source.byteLength} bytes`,
      hint: "The file is truncated or not a safetensors file",
    });
  }
  const lengthBytes = source.read(0, 8);
  const headerLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw new HaloError(H1bErrorCode.H1B_TOO_LARGE, "safetensors header length is too large", {
      path,
      offset: 0,
      expected: `at most ${MAX_SAFETENSORS_HEADER_BYTES} bytes`,
      actual: headerLength.toString(),
      hint: "The file is corrupt or not a safetensors file",
    });
  }
  const n = Number(headerLength);
  if (8 + n > source.byteLength) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "file ends inside the safetensors header", {
      path,
      offset: 8,
      expected: `${n} header bytes`,
      actual: `${source.byteLength - 8} bytes after the length field`,
      hint: "The file is truncated or not a safetensors file",
    });
  }
  let text: string;
  let header: unknown;
  try {
    text = utf8.decode(source.read(8, n));
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "safetensors header is not valid UTF-8", { path, offset: 8, cause });
  }
  try {
    header = JSON.parse(text);
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "safetensors header is not valid JSON", {
      path,
      offset: 8,
      expected: "a JSON object",
      actual: (cause as Error).message,
      hint: "The file is corrupt or not a safetensors file",
      cause,
    });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw metadataError(path, "safetensors header is not a JSON object", undefined, "a JSON object", describeValue(header));
  }
  const dataOffset = 8 + n;
  const dataLength = source.byteLength - dataOffset;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsTensorInfo[] = [];
  const begins: number[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null) continue;
      if (typeof raw !== "object" || Array.isArray(raw)) {
        throw metadataError(path, "safetensors __metadata__ is not an object", name, "an object of strings", describeValue(raw));
      }
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== "string") {
          throw metadataError(path, "safetensors __metadata__ values must be strings", `__metadata__.${key}`, "a string", describeValue(value));
        }
        metadata[key] = value;
      }
      continue;
    }
    const { info, begin } = parseEntry(path, name, raw, dataOffset, dataLength);
    entries.push(info);
    begins.push(begin);
  }
  checkLayout(path, entries, begins, dataOffset, dataLength);
  const tensors = new Map(entries.map((info) => [info.name, info] as const));
  const tensor = (name: string): SafetensorsTensorInfo => {
    const info = tensors.get(name);
    if (info === undefined) {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `tensor ${name} is not in the file`, {
        path,
        field: name,
        expected: "a tensor of that name",
        actual: `${tensors.size} other tensors`,
      });
    }
    return info;
  };
  return {
    path,
    source,
    dataOffset,
    metadata,
    tensors,
    tensor,
    read(name: string): Uint8Array {
      const info = tensor(name);
      return source.read(info.offset, info.byteLength);
    },
    close(): void {
      source.close();
    },
  };
}

function isWhole(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function parseEntry(path: string, name: string, raw: unknown, dataOffset: number, dataLength: number): { info: SafetensorsTensorInfo; begin: number } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw metadataError(path, `safetensors entry ${name} is not an object`, name, "{dtype, shape, data_offsets}", describeValue(raw));
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    if (typeof dtype !== "string") {
      throw metadataError(path, `safetensors entry ${name} has no dtype string`, `${name}.dtype`, "a dtype name", describeValue(dtype));
    }
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, `tensor ${name} has an unknown safetensors dtype`, {
      path,
      field: `${name}.dtype`,
      expected: `one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")}`,
      actual: describeValue(dtype),
      hint: "halo reads whole-byte dtypes only",
    });
  }
  if (!Array.isArray(shape) || !shape.every(isWhole)) {
    throw metadataError(
      path,
      `safetensors entry ${name} has an invalid shape`,
      `${name}.shape`,
      "an array of non-negative whole numbers",
      describeValue(shape),
    );
  }
  let count = 1;
  for (const d of shape as number[]) {
    count *= d;
    if (!Number.isSafeInteger(count)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `tensor ${name}: element count overflows`, {
        path,
        field: `${name}.shape`,
        expected: "a product below 2^53",
        actual: shape,
      });
    }
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isWhole(offsets[0]) || !isWhole(offsets[1]) || offsets[0] > offsets[1]) {
    throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, `tensor ${name} has invalid data_offsets`, {
      path,
      field: `${name}.data_offsets`,
      expected: "[begin, end] whole numbers with begin ≤ end",
      actual: Array.isArray(offsets) ? offsets : describeValue(offsets),
    });
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `file ends inside tensor ${name}`, {
      path,
      offset: dataOffset + begin,
      field: `${name}.data_offsets`,
      expected: `data up to byte ${dataOffset + end}`,
      actual: `file size ${dataOffset + dataLength}`,
      hint: "The file is truncated; download or convert it again",
    });
  }
  const byteLength = end - begin;
  const expectedBytes = count * SAFETENSORS_DTYPE_BYTES[dtype];
  if (byteLength !== expectedBytes) {
    throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${name}: shape and data size disagree`, {
      path,
      field: name,
      expected: `${expectedBytes} bytes for ${dtype} [${(shape as number[]).join(", ")}]`,
      actual: `${byteLength} bytes`,
    });
  }
  return { info: { name, dtype, shape: [...(shape as number[])], offset: dataOffset + begin, byteLength }, begin };
}

function checkLayout(path: string, entries: SafetensorsTensorInfo[], begins: number[], dataOffset: number, dataLength: number): void {
  const order = entries.map((_, i) => i).sort((a, b) => begins[a]! - begins[b]! || entries[a]!.byteLength - entries[b]!.byteLength);
  let cursor = 0;
  let previous = "the start of the data buffer";
  for (const i of order) {
    const entry = entries[i]!;
    const begin = begins[i]!;
    if (begin !== cursor) {
      throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, begin < cursor ? `tensor ${entry.name} overlaps ${previous}` : `gap before tensor ${entry.name}`, {
        path,
        offset: dataOffset + begin,
        field: `${entry.name}.data_offsets`,
        expected: `data to start at relative offset ${cursor} (end of ${previous})`,
        actual: begin,
        hint: "safetensors tensors must tile the data buffer without gaps or overlaps",
      });
    }
    cursor = begin + entry.byteLength;
    previous = `tensor ${entry.name}`;
  }
  if (cursor !== dataLength) {
    throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, "bytes after the last safetensors tensor", {
      path,
      offset: dataOffset + cursor,
      expected: `file to end at byte ${dataOffset + cursor}`,
      actual: `file size ${dataOffset + dataLength}`,
      hint: "The file has trailing data or its header is missing tensors",
    });
  }
}

/**
 * Opens a safetensors file lazily ({@link fileSource}) and validates its header. Close it when done.
 *
 * @example
 * ```ts
 * const file = openSafetensors("model.safetensors");
 * const bytes = file.read("model.embed_tokens.weight");
 * file.close();
 * ```
 */
export function openSafetensors(path: string): SafetensorsFile {
  const source = fileSource(path);
  try {
    return readSafetensors(source);
  } catch (error) {
    source.close();
    throw error;
  }
}
