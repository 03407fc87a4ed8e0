// Per-slot KV cache of the reference backend: float32 arrays, holding values rounded as the dtype stores them.
import type { KvDtype } from "../contract/backend.js";
import { roundHalfEven, roundToF16 } from "./rounding.js";

/**
 * Rounds `n` values through the int8 KV storage of {@link KvDtype} `"int8"` (one scale for the `n` values):
 * writes `f32(code · scale)` to `dst`.
 *
 * @example
 * ```ts
 * const out = new Float32Array(4);
 * roundRowThroughInt8(Float32Array.of(1, -0.5, 0.25, 0), 0, 4, out, 0); // out ≈ [1, −0.5039, 0.2520, 0]
 * ```
 */
export function roundRowThroughInt8(src: Float32Array, srcOffset: number, n: number, dst: Float32Array, dstOffset: number): void {
  let absmax = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(src[srcOffset + i]!);
    if (a > absmax) absmax = a; // NaN never compares greater: it is ignored here and stored as 0 below
  }
  const scale = Math.fround(absmax / 127);
  if (!(scale > 0 && Number.isFinite(scale))) {
    dst.fill(0, dstOffset, dstOffset + n);
    return;
  }
  for (let i = 0; i < n; i++) {
    const r = roundHalfEven(src[srcOffset + i]! / scale);
    const code = r > 127 ? 127 : r < -127 ? -127 : Number.isNaN(r) ? 0 : r;
    dst[dstOffset + i] = Math.fround(code * scale);
  }
}

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
 * const cache = new KvCache(2, 512, 128, 4, "int8", 64); // two KV heads of 64
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
    /** Values per int8 scale (the head dimension); only read when `dtype` is `"int8"`. */
    private readonly headDim: number = kvWidth,
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

  /** Stores one position's key and value rows for a layer, rounded as the dtype stores them (f16, or int8 per KV head). */
  write(cache: SequenceCache, layer: number, position: number, key: Float32Array, keyOffset: number, value: Float32Array, valueOffset: number): void {
    const base = (layer * this.contextLength + position) * this.kvWidth;
    if (this.dtype === "int8") {
      for (let h = 0; h < this.kvWidth; h += this.headDim) {
        roundRowThroughInt8(key, keyOffset + h, this.headDim, cache.keys, base + h);
        roundRowThroughInt8(value, valueOffset + h, this.headDim, cache.values, base + h);
      }
      return;
    }
    for (let i = 0; i < this.kvWidth; i++) {
      const k = key[keyOffset + i]!;
      const v = value[valueOffset + i]!;
      cache.keys[base + i] = this.dtype === "f16" ? roundToF16(k) : k;
      cache.values[base + i] = this.dtype === "f16" ? roundToF16(v) : v;
    }
  }

  /**
   * Makes `to` an exact copy of `from`: its length and every layer's first `length` key and value
   * rows (positions past the length are never read, so they are left as they were).
   */
  copy(from: SequenceCache, to: SequenceCache): void {
    if (from === to) return;
    const rowValues = from.length * this.kvWidth;
    for (let l = 0; l < this.numLayers; l++) {
      const start = l * this.contextLength * this.kvWidth;
      to.keys.set(from.keys.subarray(start, start + rowValues), start);
      to.values.set(from.values.subarray(start, start + rowValues), start);
    }
    to.length = from.length;
  }

  /** Copies of a sequence's keys and values, `[numLayers][length][kvWidth]` each (the rounded values the cache holds). */
  exportRows(cache: SequenceCache): { keys: Float32Array; values: Float32Array } {
    const rowValues = cache.length * this.kvWidth;
    const keys = new Float32Array(this.numLayers * rowValues);
    const values = new Float32Array(this.numLayers * rowValues);
    for (let l = 0; l < this.numLayers; l++) {
      const start = l * this.contextLength * this.kvWidth;
      keys.set(cache.keys.subarray(start, start + rowValues), l * rowValues);
      values.set(cache.values.subarray(start, start + rowValues), l * rowValues);
    }
    return { keys, values };
  }

  /**
   * Writes `length` positions of `[numLayers][length][kvWidth]` keys and values into a sequence
   * through {@link write} (so they are rounded exactly as a step's own rows are) and sets its length.
   */
  importRows(cache: SequenceCache, length: number, keys: Float32Array, values: Float32Array): void {
    for (let l = 0; l < this.numLayers; l++) {
      for (let p = 0; p < length; p++) {
        const offset = (l * length + p) * this.kvWidth;
        this.write(cache, l, p, keys, offset, values, offset);
      }
    }
    cache.length = length;
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
