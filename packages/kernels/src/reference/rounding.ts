// Rounding helpers the numerics are defined with: round half to even, and rounding through IEEE half precision.

/**
 * Rounds to the nearest integer, ties to even (torch.round, numpy.rint, C `rint` in the default mode).
 *
 * @example
 * ```ts
 * roundHalfEven(2.5); // 2
 * roundHalfEven(-3.5); // -4
 * ```
 */
export function roundHalfEven(value: number): number {
  const r = Math.round(value); // ties toward +∞
  return r - value === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds a number to the nearest IEEE binary16 value (ties to even, overflow to ±Infinity) and
 * returns it as a number: what storing it in an f16 buffer and reading it back gives.
 *
 * @example
 * ```ts
 * roundToF16(0.1); // 0.0999755859375
 * ```
 */
export function roundToF16(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  const abs = Math.abs(value);
  if (abs >= 65520) return value > 0 ? Infinity : -Infinity; // 65504 + half an ulp rounds up to ∞
  // Spacing of f16 values around abs: 2^(e-10) for normals, 2^-24 for subnormals.
  f32[0] = abs;
  const exponent = Math.max(((u32[0]! >>> 23) & 0xff) - 127, -14);
  const ulp = 2 ** (exponent - 10);
  const rounded = roundHalfEven(abs / ulp) * ulp;
  return value < 0 ? -rounded : rounded;
}
