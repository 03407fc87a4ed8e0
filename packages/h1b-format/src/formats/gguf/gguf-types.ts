// GGUF constants: magic, metadata value types, ggml tensor types and their byte sizes.
import type { FloatDType, TernaryPacking } from "../../core/model.js";

/**
 * `"GGUF"` read as a little-endian u32.
 *
 * @example
 * ```ts
 * const isGguf = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) === GGUF_MAGIC;
 * ```
 */
export const GGUF_MAGIC = 0x46554747;
/**
 * Default `general.alignment` of the tensor data section.
 *
 * @example
 * ```ts
 * const dataStart = Math.ceil(headerEnd / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
 * ```
 */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's `GGML_MAX_DIMS`. */
export const GGUF_MAX_DIMS = 4;

/**
 * GGUF metadata value types (gguf.h `gguf_type`).
 *
 * @example
 * ```ts
 * header.metadata.get("tokenizer.ggml.tokens")?.itemType === GgufValueType.STRING; // true
 * ```
 */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** One of the {@link GgufValueType} ids. */
export type GgufValueTypeId = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Byte size of fixed-size value types; `undefined` for strings and arrays. */
export const GGUF_SCALAR_SIZE: Readonly<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

/** What halo makes of a ggml tensor type. */
export type GgmlHaloType =
  { readonly kind: "float"; readonly dtype: FloatDType } | { readonly kind: "ternary"; readonly packing: TernaryPacking } | { readonly kind: "other" };

/** A ggml tensor type: id, name, block size (elements) and block bytes. */
export interface GgmlType {
  readonly id: number;
  readonly name: string;
  readonly blockSize: number;
  readonly blockBytes: number;
  readonly halo: GgmlHaloType;
}

const other = { kind: "other" } as const;
const TYPES: GgmlType[] = [
  { id: 0, name: "F32", blockSize: 1, blockBytes: 4, halo: { kind: "float", dtype: "f32" } },
  { id: 1, name: "F16", blockSize: 1, blockBytes: 2, halo: { kind: "float", dtype: "f16" } },
  { id: 2, name: "Q4_0", blockSize: 32, blockBytes: 18, halo: other },
  { id: 3, name: "Q4_1", blockSize: 32, blockBytes: 20, halo: other },
  { id: 6, name: "Q5_0", blockSize: 32, blockBytes: 22, halo: other },
  { id: 7, name: "Q5_1", blockSize: 32, blockBytes: 24, halo: other },
  { id: 8, name: "Q8_0", blockSize: 32, blockBytes: 34, halo: { kind: "float", dtype: "q8_0" } },
  { id: 9, name: "Q8_1", blockSize: 32, blockBytes: 36, halo: other },
  { id: 10, name: "Q2_K", blockSize: 256, blockBytes: 84, halo: other },
  { id: 11, name: "Q3_K", blockSize: 256, blockBytes: 110, halo: other },
  { id: 12, name: "Q4_K", blockSize: 256, blockBytes: 144, halo: { kind: "float", dtype: "q4_k" } },
  { id: 13, name: "Q5_K", blockSize: 256, blockBytes: 176, halo: other },
  { id: 14, name: "Q6_K", blockSize: 256, blockBytes: 210, halo: { kind: "float", dtype: "q6_k" } },
  { id: 15, name: "Q8_K", blockSize: 256, blockBytes: 292, halo: other },
  { id: 16, name: "IQ2_XXS", blockSize: 256, blockBytes: 66, halo: other },
  { id: 17, name: "IQ2_XS", blockSize: 256, blockBytes: 74, halo: other },
  { id: 18, name: "IQ3_XXS", blockSize: 256, blockBytes: 98, halo: other },
  { id: 19, name: "IQ1_S", blockSize: 256, blockBytes: 50, halo: other },
  { id: 20, name: "IQ4_NL", blockSize: 32, blockBytes: 18, halo: other },
  { id: 21, name: "IQ3_S", blockSize: 256, blockBytes: 110, halo: other },
  { id: 22, name: "IQ2_S", blockSize: 256, blockBytes: 82, halo: other },
  { id: 23, name: "IQ4_XS", blockSize: 256, blockBytes: 136, halo: other },
  { id: 24, name: "I8", blockSize: 1, blockBytes: 1, halo: other },
  { id: 25, name: "I16", blockSize: 1, blockBytes: 2, halo: other },
  { id: 26, name: "I32", blockSize: 1, blockBytes: 4, halo: other },
  { id: 27, name: "I64", blockSize: 1, blockBytes: 8, halo: other },
  { id: 28, name: "F64", blockSize: 1, blockBytes: 8, halo: other },
  { id: 29, name: "IQ1_M", blockSize: 256, blockBytes: 56, halo: other },
  { id: 30, name: "BF16", blockSize: 1, blockBytes: 2, halo: { kind: "float", dtype: "bf16" } },
  { id: 34, name: "TQ1_0", blockSize: 256, blockBytes: 54, halo: { kind: "ternary", packing: "tq1_0" } },
  { id: 35, name: "TQ2_0", blockSize: 256, blockBytes: 66, halo: { kind: "ternary", packing: "tq2_0" } },
  // Microsoft bitnet.cpp's fork: block 1, size 1, and a special case (n/4 + 32 bytes) in its ggml_nbytes.
  { id: 36, name: "I2_S", blockSize: 1, blockBytes: 1, halo: { kind: "ternary", packing: "i2_s" } },
];

/**
 * Every ggml tensor type this reader can size, by id. Upstream ids 36–38 were removed types; 36
 * here is bitnet.cpp's I2_S.
 *
 * @example
 * ```ts
 * GGML_TYPES.get(35)?.name; // "TQ2_0"
 * ```
 */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(TYPES.map((t) => [t.id, t]));

/**
 * ggml type ids of the types halo reads as halo dtypes or packings.
 *
 * @example
 * ```ts
 * GGML_TYPE_ID.TQ1_0; // 34
 * ```
 */
export const GGML_TYPE_ID = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30, TQ1_0: 34, TQ2_0: 35, I2_S: 36 } as const;

/**
 * Byte size of a tensor of `type` with ggml dims (`dims[0]` fastest), or `null` when `dims[0]`
 * is not a whole number of blocks. I2_S is `elements / 4 + 32` (codes + f32 scale + padding).
 *
 * @example
 * ```ts
 * ggmlTensorBytes(GGML_TYPES.get(35)!, [2560, 2560]); // 25600 blocks × 66 = 1689600
 * ```
 */
export function ggmlTensorBytes(type: GgmlType, dims: readonly number[]): number | null {
  let elements = 1;
  for (const d of dims) elements *= d;
  if (type.id === GGML_TYPE_ID.I2_S) return elements % 128 === 0 ? elements / 4 + 32 : null;
  if (dims[0]! % type.blockSize !== 0) return null;
  return (elements / type.blockSize) * type.blockBytes;
}
