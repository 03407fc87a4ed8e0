// NeoX half-split rotary position embedding (pairs (i, i + headDim/2)); angles in float64, or as ggml computes them.

/**
 * How RoPE angles are computed.
 * - `float64` (the definition): `angle = position · θ^(−2i/headDim)`, all in float64, float64 cos/sin.
 * - `ggml-f32`: llama.cpp's CPU rope cache: `scale = powf(θ, −2/headDim)`, `angle₀ = position`,
 *   `angleᵢ₊₁ = f32(angleᵢ · scale)`, `cosf`/`sinf`. Only for parity measurements against llama.cpp.
 *
 * @example
 * ```ts
 * const backend = referenceBackend({ ropeAngles: "ggml-f32" satisfies RopeAngleMode });
 * ```
 */
export type RopeAngleMode = "float64" | "ggml-f32";

/**
 * Computes the angles of one position, `half = headDim / 2` of them, into `out`.
 *
 * @example
 * ```ts
 * const angles = ropeAngles("float64", 64, 500000);
 * const cosSin = new Float64Array(64);
 * angles(7, cosSin); // cos in [0, 32), sin in [32, 64)
 * ```
 */
export function ropeAngles(mode: RopeAngleMode, headDim: number, theta: number): (position: number, cosSin: Float64Array) => void {
  const half = headDim / 2;
  if (mode === "ggml-f32") {
    const scale = Math.fround(Math.pow(Math.fround(theta), Math.fround(-2 / headDim)));
    return (position, cosSin) => {
      let angle = Math.fround(position);
      for (let i = 0; i < half; i++) {
        cosSin[i] = Math.fround(Math.cos(angle));
        cosSin[half + i] = Math.fround(Math.sin(angle));
        angle = Math.fround(angle * scale);
      }
    };
  }
  const inverseFrequencies = new Float64Array(half);
  for (let i = 0; i < half; i++) inverseFrequencies[i] = Math.pow(theta, (-2 * i) / headDim);
  return (position, cosSin) => {
    for (let i = 0; i < half; i++) {
      const angle = position * inverseFrequencies[i]!;
      cosSin[i] = Math.cos(angle);
      cosSin[half + i] = Math.sin(angle);
    }
  };
}

/**
 * Rotates every head of `x [n][numHeads·headDim]` in place: for `i < headDim/2`, with angle `a`
 * of the row's position, `(x_i, x_{i+h}) ← (x_i cos a − x_{i+h} sin a, x_i sin a + x_{i+h} cos a)`
 * (Hugging Face `rotate_half`; llama.cpp `ROPE_TYPE_NEOX`). Float64 math, float32 results.
 *
 * @example
 * ```ts
 * applyRope(q, Int32Array.of(0, 1, 2), 4, 64, ropeAngles("float64", 64, 500000));
 * ```
 */
export function applyRope(
  x: Float32Array,
  positions: Int32Array,
  numHeads: number,
  headDim: number,
  angles: (position: number, cosSin: Float64Array) => void,
): Float32Array {
  const half = headDim / 2;
  const width = numHeads * headDim;
  const cosSin = new Float64Array(headDim);
  for (let t = 0; t < positions.length; t++) {
    angles(positions[t]!, cosSin);
    for (let i = 0; i < half; i++) {
      const cos = cosSin[i]!;
      const sin = cosSin[half + i]!;
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
