// Top-k: keeps exactly the k best-ranked tokens (ties to the lower id), in O(V log k).
import { selectBest } from "./rank-heap.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkTopK } from "./validate.js";

/**
 * Keeps the `k` highest logits and sets the rest to −Infinity, in place. Ranking is by logit, then
 * by lower id on exact ties, so exactly `min(k, finite count)` tokens survive and the choice is
 * deterministic. `k = 0` or `k ≥ V` is a no-op. Cost O(V log k) with a bounded heap, no sort of V.
 * Returns the number of tokens left above −Infinity (counting only when it filtered).
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `k` is negative or not an integer.
 * @example
 * ```ts
 * const row = new Float32Array([1, 5, 5, 2]);
 * applyTopK(row, 2); // row = [-Infinity, 5, 5, -Infinity]
 * ```
 */
export function applyTopK(logits: Float32Array, k: number, scratch?: SamplerScratch): number {
  checkTopK(k);
  const length = logits.length;
  if (k === 0 || k >= length) return length;
  const heap = scratchFor(length, scratch).indices;
  const kept = selectBest(logits, length, k, heap);
  if (kept < k) return kept; // fewer than k finite logits: nothing to cut
  const worst = heap[0]!;
  const threshold = logits[worst]!;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v < threshold || (v === threshold && i > worst)) logits[i] = Number.NEGATIVE_INFINITY;
  }
  return kept;
}
