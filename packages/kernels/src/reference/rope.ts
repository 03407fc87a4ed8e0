// NeoX half-split rotary position embedding (pairs (i, i + headDim/2)), angles in float64.

/**
 * Inverse frequencies `θ^(−2i/headDim)` for `i < headDim/2`, in float64.
 *
 * @example
 * ```ts
 * const inv = ropeInverseFrequencies(64, 500000); // Float64Array(32), inv[0] = 1
 * ```
 */
export function ropeInverseFrequencies(headDim: number, theta: number): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = Math.pow(theta, (-2 * i) / headDim);
  return out;
}

/**
 * Rotates every head of `x [n][numHeads·headDim]` in place: for `i < headDim/2`, with
 * `a = position · invFreq[i]`, `(x_i, x_{i+h}) ← (x_i cos a − x_{i+h} sin a, x_i sin a + x_{i+h} cos a)`
 * (Hugging Face `rotate_half`; llama.cpp `ROPE_TYPE_NEOX`). Float64 math, float32 results.
 *
 * @example
 * ```ts
 * applyRope(q, Int32Array.of(0, 1, 2), 4, 64, ropeInverseFrequencies(64, 500000));
 * ```
 */
export function applyRope(x: Float32Array, positions: Int32Array, numHeads: number, headDim: number, inverseFrequencies: Float64Array): Float32Array {
  const half = headDim / 2;
  const width = numHeads * headDim;
  for (let t = 0; t < positions.length; t++) {
    const position = positions[t]!;
    for (let i = 0; i < half; i++) {
      const angle = position * inverseFrequencies[i]!;
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      for (let h = 0; h < numHeads; h++) {
        const base = t * width + h * headDim;
        const a = x[base + i]!;
        const b = x[base + i + half]!;
        x[base + i] = a * cos - b * sin;
        x[base + i + half] = a * sin + b * cos;
      }
    }
  }
  return x;
}
