// fast-check generators and plain reference implementations shared by the sampler's tests.
import fc from "fast-check";

/** Logit values with many exact ties, some −Infinity and some wide-range float32s. */
export const logitValue = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -6, max: 6 }).map((x) => x / 2) },
  { weight: 1, arbitrary: fc.constant(Number.NEGATIVE_INFINITY) },
  { weight: 3, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e4, max: 1e4 }) },
);

/** A logits row of 1…64 tokens. */
export const logitRow = fc.array(logitValue, { minLength: 1, maxLength: 64 }).map((values) => Float32Array.from(values));

/** A row that may contain NaN, ±Infinity and extreme magnitudes. */
export const hostileRow = fc
  .array(fc.oneof(logitValue, fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 3.4e38, -3.4e38, 1e-45), fc.float({ noNaN: false })), {
    minLength: 1,
    maxLength: 64,
  })
  .map((values) => Float32Array.from(values));

/** Token ids in rank order: logit descending, lower id first on ties; −Infinity excluded. */
export function rankOrder(row: ArrayLike<number>): number[] {
  const ids: number[] = [];
  for (let i = 0; i < row.length; i++) if (row[i]! > Number.NEGATIVE_INFINITY) ids.push(i);
  return ids.sort((a, b) => (row[b]! - row[a]! !== 0 ? row[b]! - row[a]! : a - b));
}

/** Ids whose value is above −Infinity. */
export function alive(row: ArrayLike<number>): number[] {
  const ids: number[] = [];
  for (let i = 0; i < row.length; i++) if (row[i]! > Number.NEGATIVE_INFINITY) ids.push(i);
  return ids;
}

/** True when any entry is NaN. */
export function hasNaN(row: ArrayLike<number>): boolean {
  for (let i = 0; i < row.length; i++) if (Number.isNaN(row[i]!)) return true;
  return false;
}

/**
 * Chi-square statistic of observed counts against expected probabilities (categories with
 * probability 0 must have count 0 and are skipped).
 */
export function chiSquare(counts: ArrayLike<number>, probabilities: ArrayLike<number>, draws: number): number {
  let statistic = 0;
  for (let i = 0; i < counts.length; i++) {
    const expected = probabilities[i]! * draws;
    if (expected === 0) continue;
    statistic += (counts[i]! - expected) ** 2 / expected;
  }
  return statistic;
}
