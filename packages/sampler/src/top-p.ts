// Top-p (nucleus): keeps the smallest rank-ordered prefix whose probability mass reaches p.
import { ranksBefore } from "./rank-heap.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkTopP } from "./validate.js";

/** Ranges at most this long are finished by insertion sort instead of further partitioning. */
const SMALL_RANGE = 16;

/**
 * Nucleus sampling filter (Holtzman et al. 2019, https://arxiv.org/abs/1904.09751), in place.
 * Probabilities are the softmax of the current logits (temperature 1, as llama.cpp computes them
 * before its temperature stage). Tokens are ranked by logit, then lower id; the smallest prefix
 * whose mass is ≥ `p` survives and the rest become −Infinity. At least one token always survives.
 * `p = 1` is a no-op.
 *
 * Cost: expected O(V), no sort of the vocabulary — a weighted quickselect finds the boundary token
 * (partition around a pivot, compare the mass ranked before it with `p`, continue on one side).
 * After top-k only the k survivors take part.
 *
 * Performance notes (V = 128256, this repo's 2-core dev box, `bench/sample-speed.mjs`): a binary
 * heap popping tokens in rank order cost 45 ms per call on broad distributions (p = 0.95 of a
 * Gaussian row needs most of V) and 129 ms on flat ones, as slow as a full comparator sort
 * (133 ms); the quickselect replaced it.
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
  const ids = buffers.indices;
  const weights = buffers.weights; // indexed by token id
  let count = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v === Number.NEGATIVE_INFINITY) continue;
    ids[count++] = i;
    if (v > max) max = v;
  }
  if (count <= 1) return;
  let total = 0;
  for (let j = 0; j < count; j++) {
    const id = ids[j]!;
    const w = Math.exp(logits[id]! - max);
    weights[id] = w;
    total += w;
  }
  const boundary = nucleusBoundary(logits, ids, count, weights, p * total);
  if (boundary < 0) return; // rounding left the whole set short of p·total: keep everything
  const threshold = logits[boundary]!;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v < threshold || (v === threshold && i > boundary)) logits[i] = Number.NEGATIVE_INFINITY;
  }
}

/**
 * The first token, in rank order, at which the cumulative weight reaches `target`; −1 if none.
 * Reorders `ids[0..count)`.
 *
 * @internal
 */
export function nucleusBoundary(logits: Float32Array, ids: Int32Array, count: number, weights: Float64Array, target: number): number {
  let lo = 0;
  let hi = count;
  let before = 0; // mass of every token ranked before ids[lo..hi)
  let state = 0x9e3779b9 ^ count; // deterministic pivot choice, no RNG needed
  while (hi - lo > SMALL_RANGE) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const pick = lo + ((state >>> 0) % (hi - lo));
    const pivot = ids[pick]!;
    ids[pick] = ids[hi - 1]!;
    ids[hi - 1] = pivot;
    let store = lo;
    let leftMass = 0;
    for (let j = lo; j < hi - 1; j++) {
      const id = ids[j]!;
      if (ranksBefore(logits, id, pivot)) {
        ids[j] = ids[store]!;
        ids[store++] = id;
        leftMass += weights[id]!;
      }
    }
    ids[hi - 1] = ids[store]!;
    ids[store] = pivot;
    if (before + leftMass >= target) {
      hi = store;
    } else if (before + leftMass + weights[pivot]! >= target) {
      return pivot;
    } else {
      before += leftMass + weights[pivot]!;
      lo = store + 1;
    }
  }
  for (let i = lo + 1; i < hi; i++) {
    const id = ids[i]!;
    let j = i - 1;
    while (j >= lo && ranksBefore(logits, id, ids[j]!)) {
      ids[j + 1] = ids[j]!;
      j--;
    }
    ids[j + 1] = id;
  }
  for (let i = lo; i < hi; i++) {
    const id = ids[i]!;
    before += weights[id]!;
    if (before >= target) return id;
  }
  return -1;
}
