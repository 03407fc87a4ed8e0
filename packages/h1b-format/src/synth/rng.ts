// Deterministic pseudo-random numbers for synthetic models (splitmix32 streams keyed by seed and labels).

/** Mixes a 32-bit value (splitmix32 finaliser). */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A 32-bit key from a seed and any number of integer labels (tensor index, row). */
export function streamKey(seed: number, ...labels: number[]): number {
  let h = mix32(seed >>> 0);
  for (const label of labels) h = mix32(h ^ (label >>> 0));
  return h;
}

/** A small fast generator: `next()` gives uniform uint32, `float()` uniform [0, 1). */
export class Rng {
  private state: number;
  constructor(key: number) {
    this.state = key >>> 0;
  }
  /** Uniform 32-bit unsigned integer. */
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
  /** Approximately normal (sum of four uniforms, variance 1). */
  normal(): number {
    return (this.float() + this.float() + this.float() + this.float() - 2) * Math.sqrt(3);
  }
}
