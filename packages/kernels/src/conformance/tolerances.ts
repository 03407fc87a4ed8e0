// Named tolerances of the conformance suite: how far a backend may be from the reference, per op.
//
// Each bound is the largest error measured on every backend and dtype that runs here, times a stated margin (10–100×),
// so that an error 10–100× larger than rounding fails: an orchestration bug that keeps the greedy token (one logit row
// off by 1e-3, a wrong KV row) must not pass. Measured 2026-12-07 on an AMD EPYC (Zen 4: AVX-512 VNNI, no AMX), node 20,
// with `conformanceChecks` on the suite's three models (`defaultConformanceModels`, plus the HIP suite's
// gqa-silu-block64-untied on the emulator), every activation quantiser and KV dtype each backend offers, on: the
// reference (single pass and split-KV tile 4), the float64 oracle model, @halo/kernels-cpu per ISA (avx512vnni, avx2,
// scalar) and @halo/kernels-hip's CPU emulator; also the kernels-cpu and kernels-hip tests that use these names
// (bf16-floats, cpu-sequence, cpu-forward, hip-model). Re-measure (and say so here) when a backend's arithmetic changes.

/**
 * Per-op tolerances. Errors are measured against a scale named in each entry, so the numbers
 * mean "float32 rounding of a well-ordered computation" rather than depending on magnitudes.
 * Integer parts of the numerics (activation codes, ternary dot products, greedy tokens) are exact.
 * Each entry's comment gives the largest error measured and where (see the note at the top of the file).
 *
 * @example
 * ```ts
 * if (maxError > TOLERANCES.rmsNorm) throw new Error("rmsNorm out of tolerance");
 * ```
 */
export const TOLERANCES = {
  /** RMSNorm: |Δ| / max(|expected| of the row). Measured 4.1e-8 (reference and cpu, every ISA): margin 49×. */
  rmsNorm: 2e-6,
  /** Per-token and Q8_K quantisation: codes and scales must be identical. */
  quantizeCodes: 0,
  /**
   * Ternary matmul: |Δ| / (Σ_c |W[r][c]| · |x̂[c]|), the magnitude bound of the dot product. Measured 5.9e-8 (per-token
   * activations; 1.5e-8 with Q8_K) on the reference and cpu, every ISA and scale kind: margin 34×.
   */
  ternaryMatmul: 2e-6,
  /**
   * RoPE: |Δ| / max(|x| of the row). Needs float64 angles (or float64-built cos/sin tables). Measured 5.0e-8 (reference
   * and cpu, every ISA): margin 40× (was 1e-5, 200×).
   */
  rope: 2e-6,
  /** Attention: |Δ| / max(|V|). Measured 3.3e-8 (reference and cpu, every ISA; single pass and split-KV): margin 30× (was 1e-5, 300×). */
  attention: 1e-6,
  /**
   * Split-KV (tiles merged by log-sum-exp) against single-pass attention: |Δ| / max(|V|). Measured 0 (the reference and
   * cpu merge in float64, and the reference backend's split-KV tile 4 and 5 give bit-identical logits); 1e-6 is about 8
   * float32 ulps, what a float32 merge costs.
   */
  splitKv: 1e-6,
  /** LM head: |Δ| / (Σ_h |head[v][h]| · |x[h]|). Measured 7.4e-8 (cpu avx512vnni; 6.2e-8 avx2, 5.2e-8 scalar and reference): margin 27×. */
  lmHead: 2e-6,
  /**
   * Whole-model logits against the reference backend or the float64 oracle model: max |Δ| (greedy tokens must match
   * exactly; the suite's logits lie within about ±8). Measured 4.8e-6 (cpu avx2, per-token, f16 KV); 3.8e-6 on cpu
   * avx512vnni and the HIP emulator for every quantiser and KV dtype; 0 for cpu scalar, the reference's split-KV and
   * the reference against the oracle (bit-identical); 1.4e-6 in hip-model and 7.2e-7 in bf16-floats: margin 21×
   * (was 5e-2, 10⁴×). One logit row off by 1e-3 fails.
   */
  modelLogits: 1e-4,
  /**
   * Same sequence computed batched vs alone, prefill vs token by token, rewritten vs fresh, exported and imported:
   * max |Δ|. Measured 7.6e-6 (cpu avx512vnni prefill vs token by token; 3.8e-6 batched vs alone), 0 on every other
   * backend and in cpu-sequence and cpu-forward: margin 13×.
   */
  batchInvariance: 1e-4,
  /**
   * Final hidden states (`hiddenRows`, before the output norm) against the reference backend or the oracle:
   * |Δ| / max(|expected| of the row). Measured 0 on every backend (the residual stream is bit-identical: the logits
   * differ only in the float32 head); 1e-5 is about 80 float32 ulps of the row's largest value, what a backend
   * summing its float parts in another order may need (was 2e-2).
   */
  hiddenStates: 1e-5,
  /**
   * KV hand-off: decode logits after a prefill on another backend (exported and imported) against the decoding backend
   * alone: max |Δ|. The two prefills may differ by up to what {@link modelLogits} allows, so this is the same bound.
   * Measured 0 in the suite (every backend, KV dtype and direction) and 9.5e-7 in cpu-sequence (was 5e-2).
   */
  kvHandoff: 1e-4,
} as const;

/** Names of {@link TOLERANCES}. */
export type ToleranceName = keyof typeof TOLERANCES;
