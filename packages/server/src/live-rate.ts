// A sliding-window rate (tokens per second over the last couple of seconds) for live stats and gauges.

/**
 * Counts events in fixed time buckets and reports their rate over the last `windowMs`. O(1) per
 * `add`, no allocation after construction.
 *
 * @example
 * ```ts
 * const rate = new LiveRate(2000);
 * rate.add(1);           // one token now
 * rate.perSecond();      // tokens per second over the last 2 s
 * ```
 */
export class LiveRate {
  private readonly counts: Float64Array;
  private readonly stamps: Float64Array;
  private readonly bucketMs: number;

  constructor(
    /** Width of the window, in milliseconds. Default 2000. */
    readonly windowMs = 2000,
    buckets = 8,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.bucketMs = windowMs / buckets;
    this.counts = new Float64Array(buckets);
    this.stamps = new Float64Array(buckets).fill(-1);
  }

  /** Records `count` events now. */
  add(count: number): void {
    const tick = Math.floor(this.now() / this.bucketMs);
    const index = tick % this.counts.length;
    if (this.stamps[index] !== tick) {
      this.stamps[index] = tick;
      this.counts[index] = 0;
    }
    this.counts[index]! += count;
  }

  /**
   * Events per second over the window that ends now: the current (partial) bucket and the
   * `buckets - 1` before it, divided by the time they actually cover.
   */
  perSecond(): number {
    const now = this.now();
    const tick = Math.floor(now / this.bucketMs);
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const stamp = this.stamps[i]!;
      if (stamp >= 0 && tick - stamp < this.counts.length) total += this.counts[i]!;
    }
    const span = (this.counts.length - 1) * this.bucketMs + (now - tick * this.bucketMs);
    return (total * 1000) / span;
  }
}
