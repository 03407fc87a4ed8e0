// The safetensors dtype names halo understands and their element sizes.

/**
 * Element size in bytes of every whole-byte safetensors dtype (the `dtype` field of a header
 * entry). Sub-byte types (`F4`, `F6_*`) are not listed and read as `H1B_UNKNOWN_DTYPE`.
 *
 * @example
 * ```ts
 * SAFETENSORS_DTYPE_BYTES.BF16; // 2
 * ```
 */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

/** A dtype name of {@link SAFETENSORS_DTYPE_BYTES}. */
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_BYTES;

/**
 * True when `name` is a dtype of {@link SAFETENSORS_DTYPE_BYTES}.
 *
 * @example
 * ```ts
 * isSafetensorsDType("BF16"); // true
 * isSafetensorsDType("F4"); // false (sub-byte)
 * ```
 */
export function isSafetensorsDType(name: unknown): name is SafetensorsDType {
  return typeof name === "string" && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, name);
}
