// An open-addressing hash table from a token-id pair to its merge rank, in typed arrays.

/**
 * Maps `(left, right)` token ids to a merge rank, the result id of each rank kept alongside.
 * Later inserts of the same pair overwrite earlier ones (as Hugging Face's HashMap collect does).
 *
 * Keys are integer pairs probed without allocating (a `Map` keyed by `left * vocab + right`
 * would key on heap doubles beyond 2^31).
 *
 * @internal
 */
export class MergeTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly rank: Int32Array;
  private readonly mask: number;
  /** Result token id of each rank. */
  readonly merged: Int32Array;
  private count = 0;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size <<= 1;
    this.mask = size - 1;
    this.left = new Int32Array(size).fill(-1);
    this.right = new Int32Array(size);
    this.rank = new Int32Array(size);
    this.merged = new Int32Array(Math.max(capacity, 1));
  }

  /** Number of distinct pairs. */
  get size(): number {
    return this.count;
  }

  private slot(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (true) {
      const l = this.left[i]!;
      if (l === -1 || (l === a && this.right[i] === b)) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Records that `a b` merges into `result` at `rank` (rank < capacity). */
  set(a: number, b: number, rank: number, result: number): void {
    const i = this.slot(a, b);
    if (this.left[i] === -1) this.count++;
    this.left[i] = a;
    this.right[i] = b;
    this.rank[i] = rank;
    this.merged[rank] = result;
  }

  /** Rank of the pair, or -1 when the pair never merges. */
  get(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (true) {
      const l = this.left[i]!;
      if (l === -1) return -1;
      if (l === a && this.right[i] === b) return this.rank[i]!;
      i = (i + 1) & this.mask;
    }
  }
}
