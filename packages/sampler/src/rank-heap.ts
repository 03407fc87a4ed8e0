// Binary heaps of token ids ordered by (logit descending, id ascending): the one ranking every processor uses.

/** Logit rows the ranking reads. @internal */
export type LogitRow = Float32Array | Float64Array;

/**
 * True when token `a` ranks before token `b`: higher logit first, and on an exact tie the lower id.
 * Callers keep NaN out of rows (NaN is turned into −Infinity first).
 *
 * @internal
 */
export function ranksBefore(logits: LogitRow, a: number, b: number): boolean {
  const la = logits[a]!;
  const lb = logits[b]!;
  return la > lb || (la === lb && a < b);
}

/**
 * Restores the heap property below `start` in `heap[0..size)`. With `bestOnTop` the root is the
 * best-ranked token (a max-heap, for popping in rank order); without it the root is the worst
 * (a bounded min-heap, for keeping the k best).
 *
 * @internal
 */
export function siftDown(heap: Int32Array, size: number, start: number, logits: LogitRow, bestOnTop: boolean): void {
  let i = start;
  const item = heap[i]!;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    const right = child + 1;
    if (right < size) {
      const c = heap[child]!;
      const r = heap[right]!;
      if (bestOnTop ? ranksBefore(logits, r, c) : ranksBefore(logits, c, r)) child = right;
    }
    const chosen = heap[child]!;
    if (bestOnTop ? !ranksBefore(logits, chosen, item) : !ranksBefore(logits, item, chosen)) break;
    heap[i] = chosen;
    i = child;
  }
  heap[i] = item;
}

/** Moves `heap[index]` up until its parent is on the right side of it. @internal */
export function siftUp(heap: Int32Array, index: number, logits: LogitRow, bestOnTop: boolean): void {
  let i = index;
  const item = heap[i]!;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent]!;
    if (bestOnTop ? !ranksBefore(logits, item, p) : !ranksBefore(logits, p, item)) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = item;
}

/**
 * Fills `heap[0..k)` with the k best-ranked ids among those with a logit above −Infinity, worst at
 * the root, in O(V log k). Returns how many were kept (less than k when fewer are finite).
 *
 * @internal
 */
export function selectBest(logits: LogitRow, length: number, k: number, heap: Int32Array): number {
  let size = 0;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v === Number.NEGATIVE_INFINITY) continue;
    if (size < k) {
      heap[size] = i;
      siftUp(heap, size, logits, false);
      size++;
    } else if (v > logits[heap[0]!]!) {
      // Ids arrive in increasing order, so an equal logit never beats the root (lower id wins).
      heap[0] = i;
      siftDown(heap, size, 0, logits, false);
    }
  }
  return size;
}

/**
 * Sorts `heap[0..size)` (a worst-at-root heap from {@link selectBest}) into rank order, best
 * first, in place.
 *
 * @internal
 */
export function sortSelected(heap: Int32Array, size: number, logits: LogitRow): void {
  for (let end = size - 1; end > 0; end--) {
    const worst = heap[0]!;
    heap[0] = heap[end]!;
    heap[end] = worst;
    siftDown(heap, end, 0, logits, false);
  }
}
