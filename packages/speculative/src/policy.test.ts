// The policy's parts: the step-cost table, the expected accepted count, the acceptance tracker and the draft length choice.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AcceptanceTracker, chooseDraftLength, expectedAccepted, STEP_COST_WINDOW, StepCostModel } from "./policy.js";

describe("StepCostModel", () => {
  it("knows nothing before an observation, then one time for every row count", () => {
    const cost = new StepCostModel();
    expect(cost.estimate(1)).toBeNull();
    expect(cost.table()).toEqual([]);
    cost.observe(3, 12);
    for (const rows of [1, 3, 7, 100]) expect(cost.estimate(rows)).toBe(12);
  });

  it("estimates by the least-squares line through the medians, weighted by their observations", () => {
    const cost = new StepCostModel();
    cost.observe(5, 47.9);
    cost.observe(1, 40.2);
    expect(cost.rowCounts()).toEqual([1, 5]);
    // Two points: the line through them.
    expect(cost.estimate(3)).toBeCloseTo((40.2 + 47.9) / 2, 10);
    expect(cost.estimate(9)).toBeCloseTo(47.9 + (47.9 - 40.2), 10);
    // Collinear medians give that line exactly, whatever the weights.
    const line = new StepCostModel();
    for (const [rows, times] of [
      [1, 3],
      [2, 1],
      [4, 5],
      [8, 2],
    ] as const) {
      for (let n = 0; n < times; n++) line.observe(rows, 10 + 2.5 * rows);
    }
    expect(line.costLine()!.fixed).toBeCloseTo(10, 10);
    expect(line.costLine()!.perRow).toBeCloseTo(2.5, 10);
    expect(line.estimate(20)).toBeCloseTo(60, 10);
    // A row count seen more often pulls the line harder: 4 observations at 1 row against 1 at 3 rows off the line.
    const weighted = new StepCostModel();
    for (let n = 0; n < 4; n++) weighted.observe(1, 10);
    weighted.observe(2, 12);
    weighted.observe(3, 20);
    expect(weighted.estimate(1)!).toBeLessThan(11);
    expect(weighted.table()).toEqual([
      { rows: 1, ms: 10 },
      { rows: 2, ms: 12 },
      { rows: 3, ms: 20 },
    ]);
  });

  it("never has a negative cost per row: noise that makes more rows look cheaper gives a flat line", () => {
    const cost = new StepCostModel();
    cost.observe(1, 10);
    cost.observe(2, 4);
    expect(cost.costLine()!.perRow).toBe(0);
    expect(cost.estimate(2)).toBe(7);
    expect(cost.estimate(30)).toBe(7);
    // The table shown keeps its non-decreasing medians.
    expect(cost.table()).toEqual([
      { rows: 1, ms: 10 },
      { rows: 2, ms: 10 },
    ]);
  });

  it("one slow step between two row counts does not make the rows after it look free (a line, not the points joined)", () => {
    const cost = new StepCostModel();
    for (let rows = 1; rows <= 12; rows++) for (let n = 0; n < 5; n++) cost.observe(rows, 40 + 10 * rows);
    cost.observe(7, 400); // one hiccup: the median of 7 rows does not move
    for (let rows = 8; rows <= 12; rows++) expect(cost.estimate(rows + 1)! - cost.estimate(rows)!).toBeCloseTo(10, 6);
  });

  it("takes the median of the last STEP_COST_WINDOW observations (a step slowed by another process moves nothing) and ignores invalid ones", () => {
    const cost = new StepCostModel();
    cost.observe(1, 10);
    cost.observe(1, 20);
    expect(cost.estimate(1)).toBe(15);
    cost.observe(1, 500); // one outlier
    expect(cost.estimate(1)).toBe(20);
    for (let i = 0; i < STEP_COST_WINDOW; i++) cost.observe(1, 30);
    expect(cost.estimate(1)).toBe(30); // the old ones left the window
    for (const [rows, ms] of [
      [0, 5],
      [-1, 5],
      [1.5, 5],
      [Number.NaN, 5],
      [2, Number.NaN],
      [2, -1],
      [2, Number.POSITIVE_INFINITY],
    ] as const) {
      cost.observe(rows, ms);
    }
    expect(cost.rowCounts()).toEqual([1]);
  });

  it("replaces a calibration prior by the first real observation, and never lets a prior overwrite real ones", () => {
    const cost = new StepCostModel();
    cost.observe(5, 3, true);
    cost.observe(5, 4, true); // a newer prior replaces the older
    expect(cost.estimate(5)).toBe(4);
    cost.observe(5, 9);
    expect(cost.estimate(5)).toBe(9); // not the median of 4 and 9
    cost.observe(5, 1, true);
    expect(cost.estimate(5)).toBe(9);
  });

  it("is non-negative and non-decreasing in rows (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { minLength: 8, maxLength: 8 }),
        (rows, times) => {
          const cost = new StepCostModel();
          rows.forEach((r, i) => cost.observe(r, times[i]!));
          let previous = -Infinity;
          for (let query = 1; query <= 48; query++) {
            const estimate = cost.estimate(query)!;
            expect(estimate).toBeGreaterThanOrEqual(0);
            expect(estimate).toBeGreaterThanOrEqual(previous - 1e-9);
            previous = estimate;
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("expectedAccepted", () => {
  it("is a + a² + … + a^k", () => {
    expect(expectedAccepted(0.5, 4)).toBe(0.9375);
    expect(expectedAccepted(0.7, 0)).toBe(0);
    expect(expectedAccepted(0, 5)).toBe(0);
    expect(expectedAccepted(1, 6)).toBe(6);
  });

  it("equals the closed form a(1 − a^k)/(1 − a) (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.999, noNaN: true }), fc.integer({ min: 0, max: 32 }), (a, k) => {
        expect(expectedAccepted(a, k)).toBeCloseTo((a * (1 - a ** k)) / (1 - a), 9);
      }),
      { numRuns: 300 },
    );
  });

  it("is the mean accepted count of simulated rounds (each draft kept with probability a after the ones before it)", () => {
    let state = 12345;
    const random = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const a = 0.65;
    const k = 5;
    const rounds = 40_000;
    let total = 0;
    for (let r = 0; r < rounds; r++) {
      let kept = 0;
      while (kept < k && random() < a) kept++;
      total += kept;
    }
    // The count's standard deviation is below k; 5 standard errors.
    expect(Math.abs(total / rounds - expectedAccepted(a, k))).toBeLessThan((5 * k) / Math.sqrt(rounds));
  });
});

describe("AcceptanceTracker", () => {
  it("starts at its prior and moves with each round: accepted drafts up, a rejection down", () => {
    const tracker = new AcceptanceTracker();
    expect(tracker.rate).toBeCloseTo(0.6, 12);
    tracker.record(4, 4);
    // successes 0.85·1.2 + 4, failures 0.85·0.8 + 0
    expect(tracker.rate).toBeCloseTo((0.85 * 1.2 + 4) / (0.85 * 1.2 + 4 + 0.85 * 0.8), 12);
    const before = tracker.rate;
    tracker.record(4, 1);
    expect(tracker.rate).toBeLessThan(before);
    // A round without drafts changes nothing.
    const still = tracker.rate;
    tracker.record(0, 0);
    expect(tracker.rate).toBe(still);
    // The doc example: one bad round of a new tracker takes it below its prior.
    const t = new AcceptanceTracker();
    t.record(4, 1);
    expect(t.rate).toBeLessThan(0.6);
  });

  it("tends to 1 when every draft is accepted and to 0 when every draft is rejected, staying in (0, 1)", () => {
    const good = new AcceptanceTracker();
    const bad = new AcceptanceTracker();
    for (let i = 0; i < 200; i++) {
      good.record(4, 4);
      bad.record(4, 0);
      for (const t of [good, bad]) {
        expect(t.rate).toBeGreaterThan(0);
        expect(t.rate).toBeLessThan(1);
      }
    }
    expect(good.rate).toBeGreaterThan(0.999);
    expect(bad.rate).toBeLessThan(0.001);
  });

  it("takes its prior, weight and decay from the constructor", () => {
    const t = new AcceptanceTracker(0.2, 10, 0.5);
    expect(t.rate).toBeCloseTo(0.2, 12);
    t.record(3, 3);
    expect(t.rate).toBeCloseTo((0.5 * 2 + 3) / (0.5 * 2 + 3 + 0.5 * 8), 12);
  });
});

describe("chooseDraftLength", () => {
  const affine =
    (fixed: number, perRow: number) =>
    (rows: number): number =>
      fixed + perRow * rows;

  it("drafts the doc example's 4 tokens, and nothing when the cost is unknown or the room is 0", () => {
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 0, stepMs: affine(10, 1), draftMs: () => 0 }).k).toBe(4);
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 0, stepMs: () => null, draftMs: () => 0 })).toEqual({ k: 0, expectedGain: 1 });
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 0, otherRows: 0, stepMs: affine(10, 1), draftMs: () => 0 })).toEqual({ k: 0, expectedGain: 1 });
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 0, stepMs: () => 0, draftMs: () => 0 })).toEqual({ k: 0, expectedGain: 1 });
    // Costs known only up to 2 rows: k stops where the table does.
    const known = (rows: number): number | null => (rows <= 2 ? 10 : null);
    expect(chooseDraftLength({ acceptance: 0.9, maxDraft: 6, otherRows: 0, stepMs: known, draftMs: () => 0 }).k).toBe(1);
  });

  it("does not make a busy batch slower: 8 sequences on a compute-bound step do not draft where one alone would", () => {
    // 1 ms per row plus 2 ms fixed: alone, 4 drafts at acceptance 0.8 pay; beside 7 others their rows slow all eight.
    const stepMs = affine(2, 1);
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 0, stepMs, draftMs: () => 0 }).k).toBeGreaterThan(0);
    expect(chooseDraftLength({ acceptance: 0.8, maxDraft: 4, otherRows: 7, stepMs, draftMs: () => 0 }).k).toBe(0);
  });

  it("does not draft when rows cost as much as steps (a compute-bound step), nor when drafting is slow", () => {
    expect(chooseDraftLength({ acceptance: 0.9, maxDraft: 8, otherRows: 0, stepMs: affine(0, 10), draftMs: () => 0 }).k).toBe(0);
    expect(chooseDraftLength({ acceptance: 0.9, maxDraft: 8, otherRows: 0, stepMs: affine(10, 0.1), draftMs: (k) => 50 * k }).k).toBe(0);
  });

  it("returns the k of the best gain, and drafts only when that gain reaches minGain (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 0, max: 64 }),
        fc.double({ min: 0.1, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 20, noNaN: true }),
        fc.double({ min: 0, max: 5, noNaN: true }),
        fc.double({ min: 1, max: 2, noNaN: true }),
        (acceptance, maxDraft, otherRows, fixed, perRow, draftPerToken, minGain) => {
          const stepMs = affine(fixed, perRow);
          const draftMs = (k: number): number => draftPerToken * k;
          const choice = chooseDraftLength({ acceptance, maxDraft, otherRows, stepMs, draftMs, minGain });
          const plain = stepMs(otherRows + 1);
          // The whole step's tokens per ms: plain yields at most otherRows + 1 tokens, a draft of k adds its expected accepted ones.
          const base = otherRows + 1;
          const gain = (k: number): number => ((base + expectedAccepted(acceptance, k)) * plain) / (base * (stepMs(base + k) + draftMs(k)));
          const best = Math.max(1, ...Array.from({ length: maxDraft }, (_, i) => gain(i + 1)));
          if (choice.k === 0) {
            expect(choice.expectedGain).toBe(1);
            expect(best).toBeLessThan(minGain * (1 + 1e-12));
          } else {
            expect(choice.k).toBeLessThanOrEqual(maxDraft);
            expect(choice.expectedGain).toBeGreaterThanOrEqual(minGain);
            expect(choice.expectedGain).toBeCloseTo(gain(choice.k), 12);
            expect(choice.expectedGain).toBeCloseTo(best, 12);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("drafts no fewer tokens when acceptance is higher (property over affine step costs)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 0, max: 16 }),
        fc.double({ min: 0.1, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 20, noNaN: true }),
        (x, y, maxDraft, otherRows, fixed, perRow) => {
          const [low, high] = x < y ? [x, y] : [y, x];
          const input = { maxDraft, otherRows, stepMs: affine(fixed, perRow), draftMs: () => 0 };
          const a = chooseDraftLength({ ...input, acceptance: low });
          const b = chooseDraftLength({ ...input, acceptance: high });
          expect(b.k).toBeGreaterThanOrEqual(a.k);
          expect(b.expectedGain).toBeGreaterThanOrEqual(a.expectedGain - 1e-12);
        },
      ),
      { numRuns: 500 },
    );
    // A cheap step for extra rows: from no draft at low acceptance to the longest at high acceptance.
    const ks = [0.02, 0.2, 0.5, 0.8, 0.98].map(
      (acceptance) => chooseDraftLength({ acceptance, maxDraft: 8, otherRows: 0, stepMs: affine(10, 0.5), draftMs: () => 0 }).k,
    );
    expect(ks[0]).toBe(0);
    expect(ks.at(-1)).toBe(8);
    for (let i = 1; i < ks.length; i++) expect(ks[i]).toBeGreaterThanOrEqual(ks[i - 1]!);
  });
});
