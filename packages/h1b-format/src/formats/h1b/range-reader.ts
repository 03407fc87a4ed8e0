// Ranged byte access for tensors read from a seed file, so writers can stream them in chunks.
import type { FloatTensor } from "../../core/model.js";

const readers = new WeakMap<FloatTensor, (offset: number, length: number) => Uint8Array>();

/**
 * Remembers how to read a byte range of a tensor without loading it whole (the 2B embedding is
 * 1.3 GB of f32). `FloatTensor` only offers `bytes()`; this side table keeps the public type unchanged.
 * @internal
 */
export function registerRangeReader(tensor: FloatTensor, read: (offset: number, length: number) => Uint8Array): FloatTensor {
  readers.set(tensor, read);
  return tensor;
}

/** The range reader of a tensor, or null when it can only be read whole. @internal */
export function rangeReader(tensor: FloatTensor): ((offset: number, length: number) => Uint8Array) | null {
  return readers.get(tensor) ?? null;
}
