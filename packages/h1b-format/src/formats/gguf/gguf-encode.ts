// Serialises GGUF v3 headers: metadata key/values and tensor infos, little-endian.
import { GgufValueType } from "./gguf-types.js";

/** A metadata value to write, with its GGUF type. */
export type GgufWriteValue =
  | { readonly type: "u32"; readonly value: number }
  | { readonly type: "i32"; readonly value: number }
  | { readonly type: "u64"; readonly value: number }
  | { readonly type: "f32"; readonly value: number }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "string[]"; readonly value: readonly string[] }
  | { readonly type: "i32[]"; readonly value: readonly number[] };

/** A tensor info to write: ggml dims (`dims[0]` fastest), type id, offset in the data section. */
export interface GgufWriteTensorInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: number;
  readonly offset: number;
}

const encoder = new TextEncoder();

/** Growable little-endian byte buffer. */
class ByteWriter {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  string(s: string): void {
    const bytes = encoder.encode(s);
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }
  pad(alignment: number): void {
    const target = Math.ceil(this.length / alignment) * alignment;
    this.reserve(target - this.length);
    this.buffer.fill(0, this.length, target);
    this.length = target;
  }
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, value: GgufWriteValue): void {
  switch (value.type) {
    case "u32":
      w.u32(GgufValueType.UINT32);
      w.u32(value.value);
      return;
    case "i32":
      w.u32(GgufValueType.INT32);
      w.i32(value.value);
      return;
    case "u64":
      w.u32(GgufValueType.UINT64);
      w.u64(value.value);
      return;
    case "f32":
      w.u32(GgufValueType.FLOAT32);
      w.f32(value.value);
      return;
    case "bool":
      w.u32(GgufValueType.BOOL);
      w.u8(value.value ? 1 : 0);
      return;
    case "string":
      w.u32(GgufValueType.STRING);
      w.string(value.value);
      return;
    case "string[]":
      w.u32(GgufValueType.ARRAY);
      w.u32(GgufValueType.STRING);
      w.u64(value.value.length);
      for (const s of value.value) w.string(s);
      return;
    case "i32[]":
      w.u32(GgufValueType.ARRAY);
      w.u32(GgufValueType.INT32);
      w.u64(value.value.length);
      for (const v of value.value) w.i32(v);
      return;
  }
}

/**
 * The bytes of a GGUF v3 header (magic, version, counts, key/values, tensor infos), padded to
 * `alignment` so the tensor data section starts right after it.
 *
 * @example
 * ```ts
 * const header = encodeGgufHeader([["general.architecture", { type: "string", value: "bitnet" }]], [], 32);
 * ```
 */
export function encodeGgufHeader(
  metadata: ReadonlyArray<readonly [string, GgufWriteValue]>,
  tensors: readonly GgufWriteTensorInfo[],
  alignment: number,
): Uint8Array {
  const w = new ByteWriter();
  w.u32(0x46554747);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset);
  }
  w.pad(alignment);
  return w.bytes();
}
