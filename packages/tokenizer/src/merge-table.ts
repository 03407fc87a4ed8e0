// An open-addressing hash table from a token-id pair to its merge rank, in one interleaved typed array.

/**
 * Maps `(left, right)` token ids to a merge rank, the result id of each rank kept alongside.
 * Later inserts of the same pair overwrite earlier ones (as Hugging Face's HashMap collect does).
 *
 * Keys are integer pairs probed without allocating (a `Map` keyed by `left * vocab + right`
 * would key on heap doubles beyond 2^31). Each slot is `[left, right, rank]` side by side, so a
 * probe touches one cache line: building Llama-3's 280k-merge table is memory-latency bound.
 *
 * @internal
 */
export class MergeTable {
  /** `[left, right, rank]` per slot; left = -1 marks an empty slot. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  /** Result token id of each rank. */
  readonly merged: Int32Array;
  private count = 0;

  constructor(capacity: number) {
    let size = 16;
    while (size * 0.7 < capacity) size <<= 1;
    this.mask = size - 1;
    this.slots = new Int32Array(size * 3).fill(-1);
    this.merged = new Int32Array(Math.max(capacity, 1));
  }

  /** Number of distinct pairs. */
  get size(): number {
    return this.count;
  }

  /** Records that `a b` merges into `result` at `rank` (rank < capacity). */
  set(a: number, b: number, rank: number, result: number): void {
    const slots = this.slots;
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (true) {
      const at = i * 3;
      const l = slots[at]!;
      if (l === -1) {
        slots[at] = a;
        slots[at + 1] = b;
        this.count++;
        slots[at + 2] = rank;
        break;
      }
      if (l === a && slots[at + 1] === b) {
        slots[at + 2] = rank;
        break;
      }
      i = (i + 1) & this.mask;
    }
    this.merged[rank] = result;
  }

  /** Rank of the pair, or -1 when the pair never merges. */
  get(a: number, b: number): number {
    const slots = this.slots;
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (true) {
      const at = i * 3;
      const l = slots[at]!;
      if (l === -1) return -1;
      if (l === a && slots[at + 1] === b) return slots[at + 2]!;
      i = (i + 1) & this.mask;
    }
  }
}
