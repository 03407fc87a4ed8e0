// When drafting pays: per-sequence acceptance against the backend's measured cost of a step of T rows.

/**
 * Step time of the target model by rows per step, learnt from calibration and from every step the
 * engine runs. Per row count it keeps the median of the last {@link STEP_COST_WINDOW} observations
 * (robust to a step slowed by another process); {@link estimate} is the straight line through
 * those medians (least squares, each weighted by its observations): a step's fixed cost plus a
 * non-negative cost per row. A line, not the points joined, because the policy weighs the cost of
 * k more rows — a difference of two noisy times — and one slow sample between two row counts must
 * not make the rows after it look free.
 *
 * @example
 * ```ts
 * const cost = new StepCostModel();
 * cost.observe(1, 40.2);
 * cost.observe(5, 47.9);
 * cost.estimate(3); // ≈ 44
 * ```
 */
export class StepCostModel {
  /** rows → the last observations (a ring, oldest overwritten). */
  private readonly samples = new Map<number, number[]>();
  /** rows → the median of its observations, kept current by {@link observe} (one small sort per observation). */
  private readonly medians = new Map<number, number>();
  /** The row counts seen, ascending (a new one is inserted in place). */
  private readonly sortedRows: number[] = [];
  /** rows → next ring index. */
  private readonly cursor = new Map<number, number>();
  /** Row counts whose time is a prior (calibration), replaced by the first real observation. */
  private readonly priors = new Set<number>();
  /** Cached monotone table, rebuilt after an observation. */
  private cache: { rows: number[]; ms: number[] } | null = null;
  /** Cached line through the medians, rebuilt after an observation. */
  private line: { fixed: number; perRow: number } | null = null;

  /**
   * Records one step of `rows` rows that took `ms` milliseconds. A `prior` (a calibration
   * measurement) is replaced, not joined, by the first observation that is not one.
   */
  observe(rows: number, ms: number, prior = false): void {
    if (!Number.isInteger(rows) || rows < 1 || !(ms >= 0) || !Number.isFinite(ms)) return;
    this.cache = null;
    this.line = null;
    if (!this.medians.has(rows)) {
      const at = this.sortedRows.findIndex((r) => r > rows);
      this.sortedRows.splice(at < 0 ? this.sortedRows.length : at, 0, rows);
    }
    let list = this.samples.get(rows);
    if (prior) {
      if (list !== undefined && !this.priors.has(rows)) return; // real observations outrank a prior
      this.samples.set(rows, [ms]);
      this.medians.set(rows, ms);
      this.cursor.set(rows, 0);
      this.priors.add(rows);
      return;
    }
    if (list === undefined || this.priors.delete(rows)) {
      list = [];
      this.samples.set(rows, list);
      this.cursor.set(rows, 0);
    }
    if (list.length < STEP_COST_WINDOW) list.push(ms);
    else {
      const at = this.cursor.get(rows)!;
      list[at] = ms;
      this.cursor.set(rows, (at + 1) % STEP_COST_WINDOW);
    }
    this.medians.set(rows, median(list));
  }

  /** Row counts measured so far, ascending. */
  rowCounts(): readonly number[] {
    return this.table().map((entry) => entry.rows);
  }

  /** Estimated milliseconds of a step of `rows` rows, or null before any observation. */
  estimate(rows: number): number | null {
    const line = this.fit();
    return line === null ? null : Math.max(0, line.fixed + line.perRow * rows);
  }

  /** The fixed cost and the cost per row of the line {@link estimate} follows, or null before any observation. */
  costLine(): { readonly fixed: number; readonly perRow: number } | null {
    return this.fit();
  }

  private fit(): { fixed: number; perRow: number } | null {
    if (this.line !== null) return this.line;
    if (this.sortedRows.length === 0) return null;
    let weight = 0;
    let sumX = 0;
    let sumY = 0;
    for (const r of this.sortedRows) {
      const w = this.samples.get(r)!.length;
      weight += w;
      sumX += w * r;
      sumY += w * this.medians.get(r)!;
    }
    const meanX = sumX / weight;
    const meanY = sumY / weight;
    let sxx = 0;
    let sxy = 0;
    for (const r of this.sortedRows) {
      const w = this.samples.get(r)!.length;
      sxx += w * (r - meanX) ** 2;
      sxy += w * (r - meanX) * (this.medians.get(r)! - meanY);
    }
    const perRow = sxx > 0 ? Math.max(0, sxy / sxx) : 0;
    this.line = { fixed: meanY - perRow * meanX, perRow };
    return this.line;
  }

  /** The measured medians by row count, made non-decreasing in rows, as `{ rows, ms }` pairs (for stats and benchmarks). */
  table(): { rows: number; ms: number }[] {
    const { rows, ms } = this.monotone();
    return rows.map((r, i) => ({ rows: r, ms: ms[i]! }));
  }

  private monotone(): { rows: number[]; ms: number[] } {
    if (this.cache !== null) return this.cache;
    const rows = [...this.sortedRows];
    const ms: number[] = [];
    for (const r of rows) ms.push(Math.max(this.medians.get(r)!, ms.length > 0 ? ms[ms.length - 1]! : 0));
    this.cache = { rows, ms };
    return this.cache;
  }
}

/** Observations per row count that {@link StepCostModel} takes the median of. */
export const STEP_COST_WINDOW = 15;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Expected drafts accepted of `k` when each is accepted with probability `a` given the ones before
 * it were: `a + a² + … + a^k`.
 *
 * @example
 * ```ts
 * expectedAccepted(0.5, 4); // 0.9375
 * ```
 */
export function expectedAccepted(a: number, k: number): number {
  let total = 0;
  let term = 1;
  for (let i = 0; i < k; i++) {
    term *= a;
    total += term;
  }
  return total;
}

/**
 * A sequence's acceptance rate per drafted token, from its recent rounds (decayed counts with a
 * prior of `prior` over `priorWeight` tokens, so a new sequence starts hopeful and one bad round
 * does not end drafting). A round of `drafted` tokens with `accepted` kept counts `accepted`
 * successes and, when one was rejected, one failure (tokens after a rejection were never judged).
 *
 * @example
 * ```ts
 * const t = new AcceptanceTracker();
 * t.record(4, 1);
 * t.rate; // < 0.6
 * ```
 */
export class AcceptanceTracker {
  private successes: number;
  private failures: number;

  constructor(
    prior = 0.6,
    priorWeight = 2,
    private readonly decay = 0.85,
  ) {
    this.successes = prior * priorWeight;
    this.failures = (1 - prior) * priorWeight;
  }

  /** Records a verified round. */
  record(drafted: number, accepted: number): void {
    if (drafted <= 0) return;
    this.successes = this.decay * this.successes + accepted;
    this.failures = this.decay * this.failures + (accepted < drafted ? 1 : 0);
  }

  /** Estimated probability that a drafted token is accepted. */
  get rate(): number {
    return this.successes / (this.successes + this.failures);
  }
}

/** What {@link chooseDraftLength} weighs. */
export interface DraftCostInput {
  /** The sequence's estimated per-token acceptance ({@link AcceptanceTracker.rate}). */
  readonly acceptance: number;
  /** Most drafts allowed (options, drafter, context and `maxTokens` room). */
  readonly maxDraft: number;
  /** Rows the other sequences add to the same step (0 alone). */
  readonly otherRows: number;
  /** Step time by rows ({@link StepCostModel.estimate}); null while unknown. */
  readonly stepMs: (rows: number) => number | null;
  /** Milliseconds the drafter takes to draft `k` tokens (0 for prompt lookup). */
  readonly draftMs: (k: number) => number;
  /** Least gain, as a ratio over plain decoding, for drafting to be worth it. Default 1.03. */
  readonly minGain?: number;
}

/** The draft length chosen and the gain the cost model expects from it. */
export interface DraftChoice {
  /** Tokens to draft; 0: plain decoding pays better. */
  readonly k: number;
  /** Expected tokens per unit time over plain decoding's (1 for k = 0). */
  readonly expectedGain: number;
}

/**
 * The draft length that maximises the step's expected tokens per millisecond — the whole step's,
 * since this sequence's extra rows slow every sequence in it. Plain, the step of `otherRows + 1`
 * rows yields at most `otherRows + 1` tokens (each row at most one: an upper bound, which keeps the
 * choice on the side of not drafting); with `k` drafts it yields `expectedAccepted(a, k)` more and
 * costs the step of `otherRows + 1 + k` rows plus the drafting. Drafting is chosen only when it
 * beats plain decoding by `minGain`, so speculation is never slower by design — within the cost
 * model's accuracy, which the engine keeps current from every step it runs. Alone (`otherRows` 0)
 * this is `(1 + E) · t(1) / (t(1 + k) + draft(k))`.
 *
 * @example
 * ```ts
 * chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 0, stepMs: (r) => 10 + r, draftMs: () => 0 }).k; // 4
 * ```
 */
export function chooseDraftLength(input: DraftCostInput): DraftChoice {
  const plain = input.stepMs(input.otherRows + 1);
  if (plain === null || plain <= 0 || input.maxDraft < 1) return { k: 0, expectedGain: 1 };
  let best: DraftChoice = { k: 0, expectedGain: 1 };
  for (let k = 1; k <= input.maxDraft; k++) {
    const step = input.stepMs(input.otherRows + 1 + k);
    if (step === null) break;
    const base = input.otherRows + 1;
    const gain = ((base + expectedAccepted(input.acceptance, k)) * plain) / (base * (step + input.draftMs(k)));
    if (gain > best.expectedGain) best = { k, expectedGain: gain };
  }
  return best.expectedGain >= (input.minGain ?? 1.03) ? best : { k: 0, expectedGain: 1 };
}
