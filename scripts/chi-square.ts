// Chi-square tests for the statistical tests of sampling (shared by packages' vitest suites; not shipped):
// the upper tail of the chi-square distribution, Pearson's goodness of fit and the two-sample homogeneity test.

/** Upper tail P(X ≥ x) of a chi-square with `df` degrees of freedom: the regularized gamma Q(df/2, x/2). */
export function chiSquareSurvival(x: number, df: number): number {
  const a = df / 2;
  const z = x / 2;
  if (z <= 0) return 1;
  const logPrefix = a * Math.log(z) - z - logGamma(a);
  if (z < a + 1) {
    // Series for the lower P, then Q = 1 − P.
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= z / (a + n);
      sum += term;
      if (term < sum * 1e-15) break;
    }
    return 1 - Math.exp(logPrefix) * sum;
  }
  // Lentz's continued fraction for Q.
  let b = z + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(logPrefix) * h;
}

function logGamma(x: number): number {
  // Lanczos (g = 7, n = 9).
  const g = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let sum = g[0]!;
  for (let i = 1; i < 9; i++) sum += g[i]! / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(sum);
}

/**
 * Pearson's goodness of fit of `counts` to probabilities `p` (cells expected below 5 pooled into one),
 * and its p-value. Cells with p = 0 must be empty (an impossible token drawn fails outright).
 */
export function goodnessOfFit(counts: readonly number[], p: ArrayLike<number>): { statistic: number; df: number; pValue: number } {
  const total = counts.reduce((s, c) => s + c, 0);
  let statistic = 0;
  let cells = 0;
  let pooledCount = 0;
  let pooledExpected = 0;
  for (let i = 0; i < counts.length; i++) {
    const expected = total * p[i]!;
    if (expected === 0) {
      if (counts[i]! > 0) return { statistic: Infinity, df: 1, pValue: 0 };
      continue;
    }
    if (expected < 5) {
      pooledCount += counts[i]!;
      pooledExpected += expected;
      continue;
    }
    statistic += (counts[i]! - expected) ** 2 / expected;
    cells++;
  }
  if (pooledExpected > 0) {
    statistic += (pooledCount - pooledExpected) ** 2 / pooledExpected;
    cells++;
  }
  const df = Math.max(1, cells - 1);
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}

/**
 * Two samples of the same size from one distribution? Pearson's chi-square test of homogeneity over the categories both
 * samples show, categories with fewer than 10 draws in both together pooled into one.
 */
export function homogeneity(a: readonly string[], b: readonly string[]): { statistic: number; df: number; pValue: number } {
  const counts = new Map<string, [number, number]>();
  for (const x of a) (counts.get(x) ?? counts.set(x, [0, 0]).get(x)!)[0]++;
  for (const x of b) (counts.get(x) ?? counts.set(x, [0, 0]).get(x)!)[1]++;
  const cells: [number, number][] = [];
  const pooled: [number, number] = [0, 0];
  for (const [ca, cb] of counts.values()) {
    if (ca + cb >= 10) cells.push([ca, cb]);
    else {
      pooled[0] += ca;
      pooled[1] += cb;
    }
  }
  if (pooled[0] + pooled[1] > 0) cells.push(pooled);
  const na = a.length;
  const nb = b.length;
  let statistic = 0;
  for (const [ca, cb] of cells) {
    const total = ca + cb;
    const ea = (total * na) / (na + nb);
    const eb = (total * nb) / (na + nb);
    statistic += (ca - ea) ** 2 / ea + (cb - eb) ** 2 / eb;
  }
  const df = Math.max(1, cells.length - 1);
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}
