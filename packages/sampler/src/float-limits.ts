// Float32 limits and the clamp that keeps processors from turning finite logits into ±Infinity.

/**
 * Largest finite float32, the value +Infinity logits are clamped to.
 *
 * @example
 * ```ts
 * const row = new Float32Array([Infinity]);
 * sanitizeLogits(row); // row[0] === FLOAT32_MAX
 * ```
 */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Clamps a processed logit to the finite float32 range unless the logit it came from was already
 * −Infinity (a ban stays a ban). Keeps later `l − max` arithmetic free of `Infinity − Infinity`.
 *
 * @internal
 */
export function clampLogit(value: number, original: number): number {
  if (original === Number.NEGATIVE_INFINITY) return original;
  return value > FLOAT32_MAX ? FLOAT32_MAX : value < -FLOAT32_MAX ? -FLOAT32_MAX : value;
}
