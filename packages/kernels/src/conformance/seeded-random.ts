// A small seeded random number generator (SplitMix32-style) so the conformance suite needs no other package.

/**
 * Deterministic pseudo-random numbers from a 32-bit seed (Mulberry32). Same seed, same sequence,
 * on every platform.
 *
 * @example
 * ```ts
 * const random = new SeededRandom(7);
 * random.float(); // in [0, 1)
 * random.int(10); // in [0, 10)
 * ```
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** Next 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** Uniform whole number in [0, bound). */
  int(bound: number): number {
    return Math.floor(this.float() * bound);
  }

  /** Roughly normal (sum of uniforms), mean 0, standard deviation 1. */
  normal(): number {
    let sum = 0;
    for (let i = 0; i < 12; i++) sum += this.float();
    return sum - 6;
  }

  /** `count` float32 values, normal with the given standard deviation. */
  floats(count: number, deviation = 1): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.normal() * deviation;
    return out;
  }

  /** `count` trits in {-1, 0, 1}, zero with probability `zeroFraction`. */
  trits(count: number, zeroFraction = 0.4): Int8Array {
    const out = new Int8Array(count);
    for (let i = 0; i < count; i++) {
      const u = this.float();
      out[i] = u < zeroFraction ? 0 : u < zeroFraction + (1 - zeroFraction) / 2 ? -1 : 1;
    }
    return out;
  }
}
