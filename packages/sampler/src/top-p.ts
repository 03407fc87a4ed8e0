// Top-p (nucleus): keeps the smallest rank-ordered prefix whose probability mass reaches p.
import { siftDown } from "./rank-heap.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkTopP } from "./validate.js";

/**
 * Nucleus sampling filter (Holtzman et al. 2019, https://arxiv.org/abs/1904.09751), in place.
 * Probabilities are the softmax of the current logits (temperature 1, as llama.cpp computes them
 * before its temperature stage). Tokens are ranked by logit, then lower id; the smallest prefix
 * whose mass is ≥ `p` survives and the rest become −Infinity. At least one token always survives.
 * `p = 1` is a no-op.
 *
 * Cost: O(V) to heapify the candidates plus O(m log V) for the m tokens popped, instead of sorting
 * the whole vocabulary; after top-k the candidates are only k.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `p` is outside (0, 1].
 * @example
 * ```ts
 * const row = new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
 * applyTopP(row, 0.8); // keeps ids 0 and 1 (0.5 + 0.3 ≥ 0.8)
 * ```
 */
export function applyTopP(logits: Float32Array, p: number, scratch?: SamplerScratch): void {
  checkTopP(p);
  if (p === 1) return;
  const length = logits.length;
  const buffers = scratchFor(length, scratch);
  const heap = buffers.indices;
  const weights = buffers.weights; // indexed by token id
  let count = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v === Number.NEGATIVE_INFINITY) continue;
    heap[count++] = i;
    if (v > max) max = v;
  }
  if (count <= 1) return;
  let total = 0;
  for (let j = 0; j < count; j++) {
    const id = heap[j]!;
    const w = Math.exp(logits[id]! - max);
    weights[id] = w;
    total += w;
  }
  for (let start = (count >> 1) - 1; start >= 0; start--) siftDown(heap, count, start, logits, true);
  const target = p * total;
  let cumulative = 0;
  let last = heap[0]!;
  let size = count;
  while (size > 0) {
    last = heap[0]!;
    cumulative += weights[last]!;
    if (cumulative >= target) break;
    size--;
    heap[0] = heap[size]!;
    siftDown(heap, size, 0, logits, true);
  }
  const threshold = logits[last]!;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v < threshold || (v === threshold && i > last)) logits[i] = Number.NEGATIVE_INFINITY;
  }
}
