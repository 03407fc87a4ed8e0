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
 * Performance notes (Llama-3, 280k merges, 2-core dev machine): `Map.get` on `slice`d parts and
 * their concatenation took ~230 ms; hashing the same ranges here with a generic
 * `charCodeAt` loop over mixed string kinds was no faster; hashing during the scan and
 * comparing within the source text is what brought the load under the 300 ms goal.
 *
 * @internal
 */
export class StringTable implements VocabLookup {
  private slots: Int32Array;
  private mask: number;
  private readonly keys: string[] = [];
  private hashes = new Int32Array(1024);
  private values = new Int32Array(1024);
  private starts = new Int32Array(1024);
  private count = 0;

  /** @param text source text that `setFromText` keys are ranges of */
  constructor(
    expected = 16,
    private readonly text = "",
  ) {
    let size = 16;
    while (size < expected * 2) size <<= 1;
    this.slots = new Int32Array(size).fill(-1);
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
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = this.slots[i]!;
      if (k === -1) break;
      if (this.hashes[k] === hash && this.keys[k] === key) {
        const old = this.values[k]!;
        this.values[k] = value;
        return old;
      }
      i = (i + 1) & this.mask;
    }
    const k = this.count++;
    if (k === this.hashes.length) {
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.hashes = grow(this.hashes);
      this.values = grow(this.values);
      this.starts = grow(this.starts);
    }
    this.slots[i] = k;
    this.keys.push(key);
    this.hashes[k] = hash;
    this.values[k] = value;
    this.starts[k] = start;
    if (this.count * 2 > this.slots.length) this.rehash();
    return -1;
  }

  private rehash(): void {
    const size = this.slots.length * 2;
    this.slots = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let k = 0; k < this.count; k++) {
      let i = slotOf(this.hashes[k]!, this.mask);
      while (this.slots[i] !== -1) i = (i + 1) & this.mask;
      this.slots[i] = k;
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
    const aLength = aEnd - aStart;
    const length = aLength + (bEnd - bStart);
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = this.slots[i]!;
      if (k === -1) return -1;
      if (this.hashes[k] === hash) {
        const key = this.keys[k]!;
        if (key.length === length && key.startsWith(a.slice(aStart, aEnd)) && key.endsWith(b.slice(bStart, bEnd))) return this.values[k]!;
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
    let i = slotOf(hash, this.mask);
    while (true) {
      const k = this.slots[i]!;
      if (k === -1) return -1;
      if (this.hashes[k] === hash) {
        const start = this.starts[k]!;
        const key = this.keys[k]!;
        if (key.length === length) {
          let same = true;
          if (start >= 0) {
            for (let j = 0; j < aLength && same; j++) same = text.charCodeAt(start + j) === text.charCodeAt(aStart + j);
            for (let j = aLength; j < length && same; j++) same = text.charCodeAt(start + j) === text.charCodeAt(bStart + j - aLength);
          } else {
            same = key === text.slice(aStart, aEnd) + text.slice(bStart, bEnd);
          }
          if (same) return this.values[k]!;
        }
      }
      i = (i + 1) & this.mask;
    }
  }
}
