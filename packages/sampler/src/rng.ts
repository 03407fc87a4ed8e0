// Seeded pseudo-random generator: xoshiro128** seeded through SplitMix64, identical on every machine.
import { HaloError } from "@halo/errors";
import { SamplerErrorCode } from "./errors.js";

/**
 * The random source a sampler draws from. Anything with these methods can be injected, so tests
 * and callers can replay exact draws.
 *
 * @example
 * ```ts
 * const rng: Rng = createRng(42);
 * const r = rng.nextFloat(); // in [0, 1)
 * ```
 */
export interface Rng {
  /** The next 32 uniformly random bits as an unsigned integer in [0, 2^32). */
  nextUint32(): number;
  /** A uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number;
  /** Optional: return to the initial state, so the same draws repeat. */
  reset?(): void;
}

/** A {@link Rng} made by {@link createRng}: always resettable and knows its 64-bit seed. */
export interface SeededRng extends Rng {
  /** The seed reduced to an unsigned 64-bit integer (what actually seeds the state). */
  readonly seed: bigint;
  reset(): void;
}

const MASK_64 = (1n << 64n) - 1n;
const TWO_POW_53 = 9007199254740992;
const TWO_POW_26 = 67108864;

/**
 * One SplitMix64 step (Steele, Lea, Flood 2014; the seeding routine recommended by the
 * xoshiro authors, https://prng.di.unimi.it/). Returns `[nextState, output]`.
 *
 * @internal
 */
export function splitMix64(state: bigint): [bigint, bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK_64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return [next, z ^ (z >> 31n)];
}

/** Reduces a user seed to an unsigned 64-bit integer, or throws for a non-integer. @internal */
export function normaliseSeed(seed: number | bigint, field = "seed"): bigint {
  if (typeof seed === "bigint") return BigInt.asUintN(64, seed);
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
    throw new HaloError(SamplerErrorCode.SAMPLER_BAD_OPTION, "the seed is not a safe integer", {
      field,
      expected: "an integer number in ±(2^53 − 1) or a bigint",
      actual: typeof seed === "number" ? String(seed) : typeof seed,
      hint: "Pass a whole number such as 42, or a bigint for full 64-bit seeds",
    });
  }
  return BigInt.asUintN(64, BigInt(seed));
}

class Xoshiro128StarStar implements SeededRng {
  readonly seed: bigint;
  // [4] xoshiro128** state words, each an unsigned 32-bit integer stored as int32.
  private readonly state = new Int32Array(4);
  private readonly initial = new Int32Array(4);

  constructor(seed: bigint, words?: ArrayLike<number>) {
    this.seed = seed;
    if (words !== undefined) {
      for (let i = 0; i < 4; i++) this.initial[i] = words[i] ?? 0;
    } else {
      const [next, a] = splitMix64(seed);
      const [, b] = splitMix64(next);
      this.initial[0] = Number(a & 0xffffffffn);
      this.initial[1] = Number(a >> 32n);
      this.initial[2] = Number(b & 0xffffffffn);
      this.initial[3] = Number(b >> 32n);
    }
    // The all-zero state is the one fixed point of xoshiro; SplitMix64 never yields it in
    // practice, but a hand-given state might.
    if ((this.initial[0]! | this.initial[1]! | this.initial[2]! | this.initial[3]!) === 0) this.initial[0] = 1;
    this.state.set(this.initial);
  }

  nextUint32(): number {
    const s = this.state;
    const s0 = s[0]!;
    const s1 = s[1]!;
    const s2 = s[2]!;
    const s3 = s[3]!;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    s[1] = s1 ^ n2;
    s[0] = s0 ^ n3;
    s[2] = n2 ^ t;
    s[3] = (n3 << 11) | (n3 >>> 21);
    return result;
  }

  nextFloat(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * TWO_POW_26 + low) / TWO_POW_53;
  }

  reset(): void {
    this.state.set(this.initial);
  }
}

/**
 * Creates the seeded generator samplers use: xoshiro128** (Blackman & Vigna,
 * https://prng.di.unimi.it/xoshiro128starstar.c) with its 128-bit state filled by two SplitMix64
 * outputs of the seed. Integer arithmetic only (`Math.imul`, shifts), so the same seed gives the
 * same stream on every machine and engine. `nextFloat` uses 53 bits from two outputs.
 *
 * @param seed - a safe integer (negative values wrap to 64 bits) or a bigint (taken mod 2^64).
 * @throws HaloError `SAMPLER_BAD_OPTION` when `seed` is a non-integer or unsafe number.
 * @example
 * ```ts
 * const a = createRng(42), b = createRng(42n);
 * a.nextUint32() === b.nextUint32(); // true
 * a.reset(); // replays from the start
 * ```
 */
export function createRng(seed: number | bigint): SeededRng {
  return new Xoshiro128StarStar(normaliseSeed(seed));
}

/**
 * A generator started from four raw 32-bit state words (for known-answer tests against the
 * reference algorithm).
 *
 * @internal
 */
export function createRngFromState(words: readonly [number, number, number, number]): SeededRng {
  return new Xoshiro128StarStar(0n, words);
}

/** A fresh random 64-bit seed from the platform's cryptographic source. @internal */
export function randomSeed(): bigint {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (BigInt(words[1]!) << 32n) | BigInt(words[0]!);
}
