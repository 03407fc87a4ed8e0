// When drafting pays: per-sequence acceptance against the backend's measured cost of a step of T rows.

/**
 * Step time of the target model by rows per step, learnt from calibration and from every step the
 * engine runs (an exponential average per row count), interpolated linearly between known counts.
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
  /** rows → smoothed milliseconds. */
  private readonly times = new Map<number, number>();
  private sorted: number[] | null = null;

  constructor(private readonly smoothing = 0.2) {}

  /** Records one step of `rows` rows that took `ms` milliseconds. */
  observe(rows: number, ms: number): void {
    if (!(rows >= 1) || !(ms >= 0) || !Number.isFinite(ms)) return;
    const known = this.times.get(rows);
    if (known === undefined) this.sorted = null;
    this.times.set(rows, known === undefined ? ms : known + this.smoothing * (ms - known));
  }

  /** Row counts measured so far, ascending. */
  rowCounts(): readonly number[] {
    this.sorted ??= [...this.times.keys()].sort((a, b) => a - b);
    return this.sorted;
  }

  /** Estimated milliseconds of a step of `rows` rows, or null before any observation. */
  estimate(rows: number): number | null {
    const counts = this.rowCounts();
    if (counts.length === 0) return null;
    const at = (r: number): number => this.times.get(r)!;
    if (counts.length === 1) return at(counts[0]!);
    let hi = counts.findIndex((r) => r >= rows);
    if (hi === 0) return at(counts[0]!);
    if (hi < 0) hi = counts.length - 1; // beyond the largest: extend the last segment
    const a = counts[hi - 1]!;
    const b = counts[hi]!;
    const slope = (at(b) - at(a)) / (b - a);
    return Math.max(0, at(a) + slope * (rows - a));
  }

  /** The table as `{ rows, ms }` pairs (for stats and benchmarks). */
  table(): { rows: number; ms: number }[] {
    return this.rowCounts().map((rows) => ({ rows, ms: this.times.get(rows)! }));
  }
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
 * The draft length that maximises expected tokens per millisecond for one sequence: a round of
 * `k` drafts yields `1 + expectedAccepted(a, k)` tokens and costs the step's extra rows plus the
 * drafting; plain decoding yields 1 token per step of the other rows plus one. Drafting is chosen
 * only when it beats plain decoding by `minGain`, so speculation is never slower by design —
 * within the cost model's accuracy, which the engine keeps current from every step it runs.
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
    const gain = ((1 + expectedAccepted(input.acceptance, k)) * plain) / (step + input.draftMs(k));
    if (gain > best.expectedGain) best = { k, expectedGain: gain };
  }
  return best.expectedGain >= (input.minGain ?? 1.03) ? best : { k: 0, expectedGain: 1 };
}
