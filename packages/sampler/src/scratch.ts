// Reusable vocabulary-sized buffers, so sampling a token allocates nothing of size V.
import { checkVocabSize } from "./validate.js";

/**
 * Work buffers for one vocabulary size. A sampler owns one; processors called on their own accept
 * one to avoid allocating. Not safe to share between samplers that run re-entrantly, but JavaScript
 * runs one `sample` at a time, so samplers on one thread may share it.
 *
 * @example
 * ```ts
 * const scratch = createSamplerScratch(128256);
 * applyTopP(logits, 0.95, scratch);
 * ```
 */
export interface SamplerScratch {
  /** Vocabulary size the buffers are sized for. */
  readonly vocabSize: number;
  /** [V] candidate token ids / heap storage. */
  readonly indices: Int32Array;
  /** [V] float64 weights exp(l − max) of candidates. */
  readonly weights: Float64Array;
  /** [V] generation stamps marking tokens seen in the current history pass. */
  readonly stamps: Uint32Array;
  /** [V] occurrence counts, valid only where `stamps[id]` equals the current generation. */
  readonly counts: Uint32Array;
  /** [V] working copy of the logits row. */
  readonly work: Float32Array;
  /** [V] snapshot of the logits the logprobs are computed from. */
  readonly snapshot: Float32Array;
  /** Advances and returns the stamp generation (wraps by clearing `stamps`). */
  nextGeneration(): number;
}

class Scratch implements SamplerScratch {
  readonly vocabSize: number;
  readonly indices: Int32Array;
  readonly weights: Float64Array;
  readonly stamps: Uint32Array;
  readonly counts: Uint32Array;
  readonly work: Float32Array;
  readonly snapshot: Float32Array;
  private generation = 0;

  constructor(vocabSize: number) {
    this.vocabSize = vocabSize;
    this.indices = new Int32Array(vocabSize);
    this.weights = new Float64Array(vocabSize);
    this.stamps = new Uint32Array(vocabSize);
    this.counts = new Uint32Array(vocabSize);
    this.work = new Float32Array(vocabSize);
    this.snapshot = new Float32Array(vocabSize);
  }

  nextGeneration(): number {
    if (this.generation === 0xffffffff) {
      this.stamps.fill(0);
      this.generation = 0;
    }
    return ++this.generation;
  }
}

/**
 * Allocates the work buffers for a vocabulary size (about 30 bytes per token: 3.8 MB at 128256).
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` when `vocabSize` is not a positive integer.
 * @example
 * ```ts
 * const scratch = createSamplerScratch(32000);
 * ```
 */
export function createSamplerScratch(vocabSize: number): SamplerScratch {
  return new Scratch(checkVocabSize(vocabSize));
}

/** Returns `scratch` when it fits `vocabSize`, else a fresh one (for standalone processor calls). @internal */
export function scratchFor(vocabSize: number, scratch: SamplerScratch | undefined): SamplerScratch {
  if (scratch !== undefined && scratch.vocabSize >= vocabSize) return scratch;
  return createSamplerScratch(vocabSize);
}
