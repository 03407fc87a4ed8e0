// A string → id hash table that can also look up slices of one large source text without allocating.

/** Read-only token → id lookup (a `Map` fits, so does {@link StringTable}). @internal */
export interface VocabLookup {
  get(token: string): number | undefined;
}

/** FNV-1a offset basis; hashes are FNV-1a over UTF-16 code units. */
export const FNV_OFFSET = 0x811c9dc5 | 0;
/** FNV-1a prime. */
export const FNV_PRIME = 0x01000193;

/** Spreads the hash's high bits into the low bits used as the slot index (FNV's low bits mix poorly). */
function slotOf(hash: number, mask: number): number {
  let h = hash ^ (hash >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) & mask;
}

function fnv(s: string, start: number, end: number, h: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h;
}

/**
 * Open-addressing table keyed by UTF-16 strings (FNV-1a). Keys scanned out of a large source
 * text (tokenizer.json) remember where they start in it, so the merges can be resolved by
 * comparing ranges of that same text, with hashes computed during the scan: no string is
 * created per merge and every character read hits one string representation.
 *
 * Performance notes (Llama-3, 280k merges, 2-core dev VM, CPU time): `Map.get` on `slice`d merge
 * parts and their concatenation took ~230 ms. With hashes computed during the scan, keys
 * compared as ranges of the one source text, `[hash, key]` slots and `[value, start, length]`
 * records side by side (one cache line per probe), resolving the merges takes ~140 ms; it is
 * bound by memory latency (three random probes per merge), not by hashing.
 *
 * @internal
 */
export class StringTable implements VocabLookup {
  /** `[hash, key index + 1]` per slot (0 = empty): one cache line per probe. */
  private slots: Int32Array;
  private mask: number;
  private readonly keys: string[] = [];
  /** `[value, start in the source text or -1, length]` per key. */
  private info = new Int32Array(3072);
  private count = 0;

  /** @param text source text that `setFromText` keys are ranges of */
  constructor(
    expected = 16,
    private readonly text = "",
  ) {
    let size = 16;
    while (size < expected * 2) size <<= 1;
    this.slots = new Int32Array(size * 2);
    this.mask = size - 1;
  }

  /** Number of keys. */
  get size(): number {
    return this.count;
  }

  /** Sets `key` to `value`; returns the previous value or -1. */
  set(key: string, value: number): number {
    return this.insert(key, fnv(key, 0, key.length, FNV_OFFSET), value, -1);
  }

  /** Sets a key that is `text.slice(start, start + key.length)`, its hash already computed. */
  setFromText(key: string, hash: number, start: number, value: number): number {
    return this.insert(key, hash, value, start);
  }

  private insert(key: string, hash: number, value: number, start: number): number {
    const slots = this.slots;
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = slots[2 * i + 1]! - 1;
      if (k === -1) break;
      if (slots[2 * i] === hash && this.keys[k] === key) {
        const old = this.info[3 * k]!;
        this.info[3 * k] = value;
        return old;
      }
      i = (i + 1) & this.mask;
    }
    const k = this.count++;
    if (3 * k === this.info.length) {
      const grown = new Int32Array(this.info.length * 2);
      grown.set(this.info);
      this.info = grown;
    }
    slots[2 * i] = hash;
    slots[2 * i + 1] = k + 1;
    this.keys.push(key);
    this.info[3 * k] = value;
    this.info[3 * k + 1] = start;
    this.info[3 * k + 2] = key.length;
    if (this.count * 2 > this.mask + 1) this.rehash();
    return -1;
  }

  private rehash(): void {
    const old = this.slots;
    const size = (this.mask + 1) * 2;
    this.slots = new Int32Array(size * 2);
    this.mask = size - 1;
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue;
      let i = slotOf(old[j]!, this.mask);
      while (this.slots[2 * i + 1] !== 0) i = (i + 1) & this.mask;
      this.slots[2 * i] = old[j]!;
      this.slots[2 * i + 1] = old[j + 1]!;
    }
  }

  get(key: string): number | undefined {
    const id = this.getRange(key, 0, key.length);
    return id < 0 ? undefined : id;
  }

  /** Id of `source.slice(start, end)`, or -1. */
  getRange(source: string, start: number, end: number): number {
    return this.getJoined(source, start, end, source, end, end);
  }

  /** Id of `a.slice(aStart, aEnd) + b.slice(bStart, bEnd)`, or -1. */
  getJoined(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): number {
    const hash = fnv(b, bStart, bEnd, fnv(a, aStart, aEnd, FNV_OFFSET));
    const length = aEnd - aStart + (bEnd - bStart);
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = this.slots[2 * i + 1]! - 1;
      if (k === -1) return -1;
      if (this.slots[2 * i] === hash) {
        const key = this.keys[k]!;
        if (key.length === length && key.startsWith(a.slice(aStart, aEnd)) && key.endsWith(b.slice(bStart, bEnd))) return this.info[3 * k]!;
      }
      i = (i + 1) & this.mask;
    }
  }

  /**
   * Id of `text.slice(aStart, aEnd) + text.slice(bStart, bEnd)` within the source text, given
   * its hash; -1 when absent. Pass `bStart = bEnd` for a single range.
   */
  findInText(hash: number, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
    const text = this.text;
    const aLength = aEnd - aStart;
    const length = aLength + (bEnd - bStart);
    const slots = this.slots;
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = slots[2 * i + 1]! - 1;
      if (k === -1) return -1;
      if (slots[2 * i] === hash) {
        const start = this.info[3 * k + 1]!;
        if (this.info[3 * k + 2] === length) {
          let same = true;
          if (start >= 0) {
            for (let j = 0; j < aLength && same; j++) same = text.charCodeAt(start + j) === text.charCodeAt(aStart + j);
            for (let j = aLength; j < length && same; j++) same = text.charCodeAt(start + j) === text.charCodeAt(bStart + j - aLength);
          } else {
            same = this.keys[k] === text.slice(aStart, aEnd) + text.slice(bStart, bEnd);
          }
          if (same) return this.info[3 * k]!;
        }
      }
      i = (i + 1) & this.mask;
    }
  }
}
