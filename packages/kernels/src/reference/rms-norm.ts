// RMSNorm as defined for halo: float64 sum of squares, one multiply per element, float32 result.

/**
 * `out[i] = x[i] · (1 / sqrt(Σx²/d + eps)) · weight[i]` for each row of `x [n][d]`. The sum of
 * squares and the products run in float64; results are stored as float32.
 *
 * @example
 * ```ts
 * const y = rmsNormRows(Float32Array.of(3, 4), Float32Array.of(1, 1), 1e-5); // ≈ [0.8485, 1.1314]
 * ```
 */
export function rmsNormRows(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array = new Float32Array(x.length)): Float32Array {
  const d = weight.length;
  const n = x.length / d;
  for (let row = 0; row < n; row++) {
    const base = row * d;
    let sum = 0;
    for (let i = 0; i < d; i++) {
      const v = x[base + i]!;
      sum += v * v;
    }
    const inv = 1 / Math.sqrt(sum / d + eps);
    for (let i = 0; i < d; i++) out[base + i] = x[base + i]! * inv * weight[i]!;
  }
  return out;
}
