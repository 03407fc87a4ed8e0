// The byte-level BPE model: vocabulary, merge ranks, the heap-driven merge loop and a pre-token cache.
import { BYTE_TO_CHAR } from "./byte-level.js";
import { MergeTable } from "./merge-table.js";
import type { VocabLookup } from "./string-table.js";

/** Settings of a BPE model that change its output. */
export interface BpeOptions {
  /** A pre-token found whole in the vocabulary becomes that one id (Llama-3's `ignore_merges`). */
  readonly ignoreMerges: boolean;
  /** Pieces are UTF-8 bytes written with the GPT-2 byte map (ByteLevel pre-tokenizer present). */
  readonly byteLevel: boolean;
  /** Id used for symbols missing from the vocabulary, or null to drop them (Hugging Face default). */
  readonly unkId: number | null;
  /** Fall back to `<0xXX>` byte tokens for unknown symbols (SentencePiece-style BPE). */
  readonly byteFallback: boolean;
}

const CACHE_LIMIT = 200_000;
const RANK_SCALE = 2 ** 32;

/**
 * A BPE model over a vocabulary (`token → id`) and a merge table. `encodePiece` turns one
 * pre-token into ids exactly as Hugging Face's `BPE::tokenize` does: lowest merge rank first,
 * leftmost on ties.
 *
 * @internal
 */
export class BpeModel {
  private readonly cache = new Map<string, number | readonly number[]>();
  /** Id of the one-symbol token of each byte (byte-level), or -1. */
  private readonly byteIds: Int32Array;
  // Scratch buffers for the merge loop, grown on demand.
  private sym = new Int32Array(64);
  private prev = new Int32Array(64);
  private next = new Int32Array(64);
  private heap = new Float64Array(192);
  private readonly encoder = new TextEncoder();
  private bytes = new Uint8Array(256);

  constructor(
    readonly vocab: VocabLookup,
    readonly merges: MergeTable,
    readonly options: BpeOptions,
  ) {
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(BYTE_TO_CHAR[b]!) ?? -1;
  }

  /** Appends the ids of one pre-token to `out`. */
  encodePiece(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      if (typeof hit === "number") out.push(hit);
      else for (let i = 0; i < hit.length; i++) out.push(hit[i]!);
      return;
    }
    const ids = this.tokenize(piece);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids.length === 1 ? ids[0]! : ids);
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }

  /** Ids of one pre-token, without the cache. */
  tokenize(piece: string): number[] {
    if (!this.options.byteLevel) {
      if (this.options.ignoreMerges) {
        const whole = this.vocab.get(piece);
        if (whole !== undefined) return [whole];
      }
      return this.mergeAll(this.loadChars(piece));
    }
    if (this.bytes.length < piece.length * 3) this.bytes = new Uint8Array(piece.length * 3 + 16);
    const written = this.encoder.encodeInto(piece, this.bytes).written;
    if (this.options.ignoreMerges) {
      const whole = this.vocab.get(this.mappedString(written));
      if (whole !== undefined) return [whole];
    }
    this.grow(written);
    let n = 0;
    for (let i = 0; i < written; i++) {
      const id = this.byteIds[this.bytes[i]!]!;
      if (id >= 0) this.sym[n++] = id;
      else if (this.options.unkId !== null) this.sym[n++] = this.options.unkId;
    }
    return this.mergeAll(n);
  }

  private mappedString(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[this.bytes[i]!]!;
    return s;
  }

  private grow(n: number): void {
    if (this.sym.length >= n) return;
    let size = this.sym.length;
    while (size < n) size *= 2;
    this.sym = new Int32Array(size);
    this.prev = new Int32Array(size);
    this.next = new Int32Array(size);
    this.heap = new Float64Array(size * 3);
  }

  private loadChars(piece: string): number {
    this.grow(piece.length * 4);
    let n = 0;
    for (const ch of piece) {
      const id = this.vocab.get(ch);
      if (id !== undefined) this.sym[n++] = id;
      else if (this.options.byteFallback) {
        const bytes = this.encoder.encode(ch);
        let all = true;
        const start = n;
        for (const b of bytes) {
          const byteId = this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
          if (byteId === undefined) {
            all = false;
            break;
          }
          this.sym[n++] = byteId;
        }
        if (!all) {
          n = start;
          if (this.options.unkId !== null) this.sym[n++] = this.options.unkId;
        }
      } else if (this.options.unkId !== null) this.sym[n++] = this.options.unkId;
    }
    return n;
  }

  /** The merge loop over `this.sym[0..n)`: a doubly linked list and a binary min-heap of (rank, position). */
  private mergeAll(n: number): number[] {
    if (n === 0) return [];
    const { sym, prev, next, heap, merges } = this;
    let size = 0;
    const push = (key: number): void => {
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]! <= key) break;
        heap[i] = heap[parent]!;
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap[--size]!;
      let i = 0;
      while (true) {
        let child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= last) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
      return top;
    };
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (let i = 0; i + 1 < n; i++) {
      const rank = merges.get(sym[i]!, sym[i + 1]!);
      if (rank >= 0) push(rank * RANK_SCALE + i);
    }
    while (size > 0) {
      const key = pop();
      const rank = Math.floor(key / RANK_SCALE);
      const pos = key - rank * RANK_SCALE;
      const right = next[pos]!;
      // Stale entries: the symbol was absorbed (prev = -2), is last, or the pair changed.
      if (prev[pos] === -2 || right === -1) continue;
      if (merges.get(sym[pos]!, sym[right]!) !== rank) continue;
      sym[pos] = merges.merged[rank]!;
      const after = next[right]!;
      next[pos] = after;
      prev[right] = -2;
      if (after !== -1) prev[after] = pos;
      const before = prev[pos]!;
      if (before >= 0) {
        const r = merges.get(sym[before]!, sym[pos]!);
        if (r >= 0) push(r * RANK_SCALE + before);
      }
      if (after !== -1) {
        const r = merges.get(sym[pos]!, sym[after]!);
        if (r >= 0) push(r * RANK_SCALE + pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i !== -1; i = next[i]!) out.push(sym[i]!);
    return out;
  }
}
