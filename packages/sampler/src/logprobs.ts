// Log-probabilities of a chosen token and the top-n alternatives, sorted by logprob then id.
import { selectBest, sortSelected } from "./rank-heap.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkTopLogprobs } from "./validate.js";

/** One entry of {@link TokenLogprobs.top}. */
export interface TokenLogprob {
  /** Token id. */
  readonly token: number;
  /** Natural-log probability (≤ 0). */
  readonly logprob: number;
}

/** Result of {@link computeLogprobs}. */
export interface TokenLogprobs {
  /** `log p(token)` under `log_softmax(logits)`; −Infinity if the token's logit is −Infinity. */
  readonly logprob: number;
  /** Up to `topN` most likely tokens (tokens of probability 0 are left out), logprob descending, lower id first on ties. */
  readonly top: readonly TokenLogprob[];
}

/**
 * Log-softmax of a logits row at temperature 1, evaluated for `token` and for the `topN` most likely
 * tokens (`topN ≤ 20`, OpenAI's limit). Ranking ties go to the lower id. Float64 throughout;
 * O(V log topN), allocating only the `topN` result entries.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `topN` is not an integer in [0, 20].
 * @example
 * ```ts
 * const { logprob, top } = computeLogprobs(new Float32Array([0, 0, -Infinity]), 1, 2);
 * // logprob = -Math.LN2, top = [{ token: 0, logprob: -Math.LN2 }, { token: 1, logprob: -Math.LN2 }]
 * ```
 */
export function computeLogprobs(logits: Float32Array | Float64Array, token: number, topN = 0, scratch?: SamplerScratch): TokenLogprobs {
  checkTopLogprobs(topN);
  const length = logits.length;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < length; i++) {
    const v = logits[i]!;
    if (v > max) max = v;
  }
  let total = 0;
  if (max !== Number.NEGATIVE_INFINITY) for (let i = 0; i < length; i++) total += Math.exp(logits[i]! - max);
  // log p_i = (l_i − max) − log Σ exp(l_j − max); keeps full precision near 0.
  const logTotal = Math.log(total);
  const logprobOf = (id: number): number => {
    const v = logits[id];
    if (v === undefined || v === Number.NEGATIVE_INFINITY || max === Number.NEGATIVE_INFINITY) return Number.NEGATIVE_INFINITY;
    return v - max - logTotal;
  };
  const top: TokenLogprob[] = [];
  if (topN > 0) {
    const heap = scratchFor(length, scratch).indices;
    const size = selectBest(logits, length, topN, heap);
    sortSelected(heap, size, logits);
    for (let j = 0; j < size; j++) {
      const id = heap[j]!;
      top.push({ token: id, logprob: logprobOf(id) });
    }
  }
  return { logprob: logprobOf(token), top };
}
