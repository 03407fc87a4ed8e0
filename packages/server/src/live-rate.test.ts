import { describe, expect, it } from "vitest";
import { LiveRate } from "./live-rate.js";

/** Decimal digits that must agree: the rate is a ratio of exact small sums, so only float rounding differs. */
const RATE_DIGITS = 9;

describe("LiveRate", () => {
  it("reports events per second over the window and forgets older buckets", () => {
    let now = 10_000;
    const rate = new LiveRate(2000, 8, () => now);
    for (let i = 0; i < 40; i++) {
      rate.add(5);
      now += 50;
    }
    // 5 events every 50 ms is 100 per second, whatever the bucket phase.
    expect(rate.perSecond()).toBeCloseTo(100, RATE_DIGITS);
    now += 120;
    rate.add(12);
    expect(rate.perSecond()).toBeCloseTo(100, RATE_DIGITS);
    now += 2500;
    expect(rate.perSecond()).toBe(0);
  });
});
