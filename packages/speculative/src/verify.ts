// The lossless rule: accept a drafted token with probability p(d)/q(d), else resample from the residual.
import type { SampleResult } from "@halo/sampler";

/** What verification needs of a sampler: `SamplerChain` from `@halo/sampler` has all of it. */
export interface VerifyingSampler {
  /** The distribution `sample` would draw from for this row (temperature, filters, penalties applied). */
  distribution(logits: Float32Array, history: ArrayLike<number>, out: Float64Array): Float64Array;
  /** One uniform number in [0, 1) from the sequence's seeded stream. */
  uniform(): number;
  /** A draw from non-negative weights (normalised by their sum) from the same stream. */
  drawFrom(weights: Float64Array): number;
  /** The token's logprobs as `sample` would report them for the row last processed. */
  resultFor(token: number): SampleResult;
}

/** One verification row's verdict. */
export interface RowVerdict {
  /** The token the row emits (the drafted token when accepted). */
  readonly result: SampleResult;
  /** True when the drafted token was accepted (always false on a row without a draft). */
  readonly accepted: boolean;
}

/**
 * Samples one verification row losslessly (Leviathan et al. 2023, Theorem 1; Chen et al. 2023).
 * With `p` the target distribution of the row and a drafted token `d` whose draft distribution
 * `q` is a point mass (every halo drafter drafts deterministically), `d` is accepted with
 * probability `min(1, p(d)/q(d)) = p(d)`; otherwise the token is drawn from the residual
 * `max(0, p − q)` normalised, which is `p` with `d` removed. Either way the emitted token is
 * distributed exactly as `p`: `P(d) = p(d)` and `P(x ≠ d) = (1 − p(d)) · p(x)/(1 − p(d)) = p(x)`.
 * A row without a draft (the bonus row after every draft was accepted) draws from `p`. Every
 * random number comes from the sampler's seeded stream, so a seeded run repeats exactly.
 *
 * @param scratch - a float64 buffer of the vocabulary's length (overwritten).
 * @example
 * ```ts
 * const { result, accepted } = verifySampledRow(sampler, row, history, drafted, scratch);
 * ```
 */
export function verifySampledRow(
  sampler: VerifyingSampler,
  logits: Float32Array,
  history: ArrayLike<number>,
  drafted: number | null,
  scratch: Float64Array,
): RowVerdict {
  const p = sampler.distribution(logits, history, scratch);
  if (drafted !== null && drafted >= 0 && drafted < p.length) {
    const pd = p[drafted]!;
    if (pd > 0 && sampler.uniform() < pd) return { result: sampler.resultFor(drafted), accepted: true };
    p[drafted] = 0;
  }
  return { result: sampler.resultFor(sampler.drawFrom(p)), accepted: false };
}
