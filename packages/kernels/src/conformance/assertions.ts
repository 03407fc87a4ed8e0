// Assertions of the conformance suite: they throw KERNELS_CONFORMANCE_MISMATCH with where and by how much.
import { HaloError, isHaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";

/**
 * Fails a check.
 *
 * @example
 * ```ts
 * throw mismatch("ternaryMatmul M=3 K=17", "value differs", { index: 4, expected: 1.5, actual: 1.25 });
 * ```
 */
export function mismatch(check: string, summary: string, details: { index?: number; expected?: unknown; actual?: unknown; hint?: string } = {}): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_CONFORMANCE_MISMATCH, `${check}: ${summary}`, {
    ...(details.index === undefined ? {} : { offset: details.index }),
    ...(details.expected === undefined ? {} : { expected: details.expected }),
    ...(details.actual === undefined ? {} : { actual: details.actual }),
    ...(details.hint === undefined ? {} : { hint: details.hint }),
  });
}

/**
 * Checks `|actual[i] − expected[i]| ≤ tolerance · scale(i)` for all i; returns the largest
 * relative error seen. `scale` gives the magnitude each error is measured against.
 *
 * @example
 * ```ts
 * assertClose("rmsNorm d=7", out, expected, TOLERANCES.rmsNorm, () => rowMax);
 * ```
 */
export function assertClose(
  check: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  scale: (index: number) => number,
): number {
  if (actual.length !== expected.length) throw mismatch(check, "result has the wrong length", { expected: expected.length, actual: actual.length });
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const s = Math.max(scale(i), Number.MIN_VALUE);
    const error = Math.abs(a - e) / s;
    if (!(error <= tolerance) || Number.isNaN(a)) {
      throw mismatch(check, `value out of tolerance (relative error ${error.toExponential(3)} > ${tolerance})`, { index: i, expected: e, actual: a });
    }
    worst = Math.max(worst, error);
  }
  return worst;
}

/**
 * Checks two integer arrays are identical.
 *
 * @example
 * ```ts
 * assertEqualArrays("greedy tokens", got, want);
 * ```
 */
export function assertEqualArrays(check: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  if (actual.length !== expected.length) throw mismatch(check, "length differs", { expected: expected.length, actual: actual.length });
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i]) && actual[i] !== expected[i]) {
      throw mismatch(check, "values differ", { index: i, expected: Array.from(expected).slice(i, i + 8), actual: Array.from(actual).slice(i, i + 8) });
    }
  }
}

/**
 * Checks `run` throws a HaloError with `code` (sync or async).
 *
 * @example
 * ```ts
 * await assertThrowsCode("unknown slot", KernelsErrorCode.KERNELS_UNKNOWN_SLOT, () => model.freeSequence(99));
 * ```
 */
export async function assertThrowsCode(check: string, code: string, run: () => unknown): Promise<void> {
  try {
    await run();
  } catch (error) {
    if (isHaloError(error) && error.code === code) return;
    throw mismatch(check, "threw the wrong error", {
      expected: code,
      actual: isHaloError(error) ? error.code : String(error),
    });
  }
  throw mismatch(check, "did not throw", { expected: code });
}

/** Largest |Δ| between two arrays of equal length. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? worst : Infinity;
}
