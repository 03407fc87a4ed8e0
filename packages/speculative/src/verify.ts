// The lossless rule for deterministic drafts: sample the row exactly as plain decoding would, keep the draft when it matches.
import type { SampleResult } from "@halo/sampler";

/** One verification row's verdict. */
export interface RowVerdict {
  /** The token the row emits: the row's own sample (equal to the drafted token when accepted). */
  readonly result: SampleResult;
  /** True when the drafted token was accepted (always false on a row without a draft). */
  readonly accepted: boolean;
}

/**
 * Verifies one row of a speculative step. `sampleRow` samples the row's token exactly as plain
 * decoding would (the request's sampler chain and seeded stream, its history so far: one draw per
 * emitted token, none for greedy); the drafted token `d` is accepted when the sample equals it.
 *
 * This is the lossless rule of speculative sampling (Leviathan et al. 2023, Theorem 1; Chen et al.
 * 2023) for a deterministic drafter, whose draft distribution q is a point mass on `d`: the rule
 * accepts `d` with probability min(1, p(d)/q(d)) = p(d) and otherwise draws from the residual
 * max(0, p − q) normalised, which is p without `d`. Sampling x ~ p and accepting iff x = d is the
 * same joint law of (accepted, emitted token): P(accept) = p(d), and after a rejection x is
 * distributed as p(x)/(1 − p(d)) over x ≠ d — exactly the residual. Every halo drafter drafts
 * deterministically, and this coupling has a property the two-draw form lacks: each emitted token
 * consumes the seeded stream exactly as plain decoding does, so a seeded request gives the same
 * tokens with or without speculation, whatever the policy drafts, and greedy rows are plain greedy.
 *
 * @example
 * ```ts
 * const { result, accepted } = verifyRow(() => sampler.sample(row, history), drafted);
 * ```
 */
export function verifyRow(sampleRow: () => SampleResult, drafted: number | null): RowVerdict {
  const result = sampleRow();
  return { result, accepted: drafted !== null && result.token === drafted };
}
