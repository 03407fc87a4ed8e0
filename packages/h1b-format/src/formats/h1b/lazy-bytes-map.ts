// A ReadonlyMap of byte blobs whose values are read from the source only when asked for.

/**
 * `HaloModel.extras` for files whose extras are large (legacy norm slots, trailing bytes): keys are
 * known at open, bytes are loaded on each `get` (not cached, so a 1 GB trailer costs nothing until used).
 * @internal
 */
export class LazyBytesMap implements ReadonlyMap<string, Uint8Array> {
  readonly #loaders: Map<string, () => Uint8Array>;

  constructor(loaders: Iterable<readonly [string, () => Uint8Array]>) {
    this.#loaders = new Map(loaders);
  }

  get size(): number {
    return this.#loaders.size;
  }

  get(key: string): Uint8Array | undefined {
    return this.#loaders.get(key)?.();
  }

  has(key: string): boolean {
    return this.#loaders.has(key);
  }

  forEach(callback: (value: Uint8Array, key: string, map: ReadonlyMap<string, Uint8Array>) => void, thisArg?: unknown): void {
    for (const [key, load] of this.#loaders) callback.call(thisArg, load(), key, this);
  }

  *entries(): MapIterator<[string, Uint8Array]> {
    for (const [key, load] of this.#loaders) yield [key, load()];
  }

  keys(): MapIterator<string> {
    return this.#loaders.keys();
  }

  *values(): MapIterator<Uint8Array> {
    for (const load of this.#loaders.values()) yield load();
  }

  [Symbol.iterator](): MapIterator<[string, Uint8Array]> {
    return this.entries();
  }
}
