// Per-slot KV cache of the reference backend: float32 arrays, optionally holding f16-rounded values.
import type { KvDtype } from "../contract/backend.js";
import { roundToF16 } from "./rounding.js";

/** One sequence's cache. */
export interface SequenceCache {
  /** Positions held. */
  length: number;
  /** `[numLayers][contextLength][numKvHeads·headDim]` */
  readonly keys: Float32Array;
  /** `[numLayers][contextLength][numKvHeads·headDim]` */
  readonly values: Float32Array;
}

/**
 * Slots of KV cache for up to `maxSequences` sequences, allocated lazily per slot.
 *
 * @example
 * ```ts
 * const cache = new KvCache(2, 512, 128, 4, "f32");
 * const slot = cache.allocate();
 * ```
 */
export class KvCache {
  private readonly slots: Array<SequenceCache | undefined>;

  constructor(
    private readonly numLayers: number,
    private readonly contextLength: number,
    private readonly kvWidth: number,
    maxSequences: number,
    private readonly dtype: KvDtype,
  ) {
    this.slots = new Array<SequenceCache | undefined>(maxSequences).fill(undefined);
  }

  /** Lowest free slot id, or -1 when all are taken. */
  allocate(): number {
    const slot = this.slots.indexOf(undefined);
    if (slot < 0) return -1;
    const size = this.numLayers * this.contextLength * this.kvWidth;
    this.slots[slot] = { length: 0, keys: new Float32Array(size), values: new Float32Array(size) };
    return slot;
  }

  /** The cache of a slot, or undefined when not allocated. */
  get(slot: number): SequenceCache | undefined {
    return Number.isInteger(slot) && slot >= 0 ? this.slots[slot] : undefined;
  }

  free(slot: number): void {
    this.slots[slot] = undefined;
  }

  /** Stores one position's key and value rows for a layer (rounded through f16 when the dtype is f16). */
  write(cache: SequenceCache, layer: number, position: number, key: Float32Array, keyOffset: number, value: Float32Array, valueOffset: number): void {
    const base = (layer * this.contextLength + position) * this.kvWidth;
    for (let i = 0; i < this.kvWidth; i++) {
      const k = key[keyOffset + i]!;
      const v = value[valueOffset + i]!;
      cache.keys[base + i] = this.dtype === "f16" ? roundToF16(k) : k;
      cache.values[base + i] = this.dtype === "f16" ? roundToF16(v) : v;
    }
  }

  /** Views of a layer's keys and values for positions `0 … length-1`. */
  layerView(cache: SequenceCache, layer: number, length: number): { keys: Float32Array; values: Float32Array } {
    const start = layer * this.contextLength * this.kvWidth;
    const end = start + length * this.kvWidth;
    return { keys: cache.keys.subarray(start, end), values: cache.values.subarray(start, end) };
  }

  dispose(): void {
    this.slots.fill(undefined);
  }
}
