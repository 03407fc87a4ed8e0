// Named tolerances of the conformance suite: how far a backend may be from the reference, per op.

/**
 * Per-op tolerances. Errors are measured against a scale named in each entry, so the numbers
 * mean "float32 rounding of a well-ordered computation" rather than depending on magnitudes.
 * Integer parts of the numerics (activation codes, ternary dot products, greedy tokens) are exact.
 *
 * @example
 * ```ts
 * if (maxError > TOLERANCES.rmsNorm) throw new Error("rmsNorm out of tolerance");
 * ```
 */
export const TOLERANCES = {
  /** RMSNorm: |Δ| / max(|expected| of the row). */
  rmsNorm: 2e-6,
  /** Per-token and Q8_K quantisation: codes and scales must be identical. */
  quantizeCodes: 0,
  /** Ternary matmul: |Δ| / (Σ_c |W[r][c]| · |x̂[c]|), the magnitude bound of the dot product. */
  ternaryMatmul: 2e-6,
  /** RoPE: |Δ| / max(|x| of the row). Needs float64 angles (or float64-built cos/sin tables). */
  rope: 1e-5,
  /** Attention: |Δ| / max(|V|). */
  attention: 1e-5,
  /** Split-KV (tiles merged by log-sum-exp) against single-pass attention: |Δ| / max(|V|). */
  splitKv: 1e-6,
  /** LM head: |Δ| / (Σ_h |head[v][h]| · |x[h]|). */
  lmHead: 2e-6,
  /** Whole-model logits against the reference backend: max |Δ| (greedy tokens must match exactly). */
  modelLogits: 5e-2,
  /** Same sequence computed batched vs alone, prefill vs token by token, rewritten vs fresh: max |Δ|. */
  batchInvariance: 1e-4,
  /**
   * Final hidden states (`hiddenRows`, before the output norm) against the reference backend:
   * |Δ| / max(|expected| of the row) — about the relative distance {@link modelLogits} allows.
   */
  hiddenStates: 2e-2,
  /**
   * KV hand-off: decode logits after a prefill on another backend (exported and imported) against
   * the decoding backend alone: max |Δ|. The two prefills differ by up to what {@link modelLogits}
   * allows, so this is the same bound.
   */
  kvHandoff: 5e-2,
} as const;

/** Names of {@link TOLERANCES}. */
export type ToleranceName = keyof typeof TOLERANCES;
