// Sampling one sequence: its sampler chain and token history, and whether the backend's argmax can stand in for it.
import { HaloError } from "@halo/errors";
import { createSampler, SamplerErrorCode, type SampleResult, type SamplerChain, type SamplerOptions } from "@halo/sampler";
import { verifySampledRow } from "@halo/speculative";
import type { RowOutput, StepOutputs } from "./step-plan.js";

/**
 * The sampling half of a generation: a seeded sampler chain and the history its penalties read
 * (the prompt this request runs, then each sampled token). For a request that is plain greedy —
 * temperature 0 with no logprobs, penalties or logit bias — the greedy token of a row is its
 * argmax, so {@link output} is `"argmax"` and a backend may return ids instead of logit rows;
 * whenever logits come back anyway, the chain samples them exactly as before.
 *
 * @example
 * ```ts
 * const sampling = new SamplingStep({ temperature: 0 }, vocabSize, prompt);
 * const { token } = sampling.next(outputs, outputs.positions.length - 1);
 * ```
 * @internal
 */
export class SamplingStep {
  /** What a row must return for {@link next}: `"argmax"` for plain greedy, else `"logits"`. */
  readonly output: RowOutput;
  private readonly sampler: SamplerChain;
  private readonly vocab: number;
  private readonly history: number[];
  /** [V] the target distribution of a verification row (sampled speculation only). */
  private scratch: Float64Array | null = null;

  constructor(options: SamplerOptions, vocab: number, prompt: readonly number[]) {
    this.sampler = createSampler(options, { vocabSize: vocab });
    this.vocab = vocab;
    this.history = [...prompt];
    const stages = this.sampler.stages;
    const plainGreedy = !this.sampler.options.logprobs && stages.length === 2 && stages[0] === "sanitize" && stages[1] === "greedy";
    this.output = plainGreedy ? "argmax" : "logits";
  }

  /** Samples the token after output row `row` and appends it to the history. */
  next(outputs: StepOutputs, row: number): SampleResult {
    let result: SampleResult;
    // Plain greedy takes the argmax whenever the step has it (the backend's, or the scheduler's from the logits — the
    // same ranking as the sampler's greedy, property-tested), so a logit row is never scanned twice.
    if (outputs.argmax !== null && this.output === "argmax") result = { token: this.checkedArgmax(outputs.argmax[row]!) };
    else if (outputs.logits !== null) result = this.sampler.sample(outputs.logits.subarray(row * this.vocab, (row + 1) * this.vocab), this.history);
    else throw new Error("internal: a step returned neither the logits nor the argmax a sampling step needs");
    this.history.push(result.token);
    return result;
  }

  /**
   * Verifies one row of a speculative step: the token after output row `row`, given the token the
   * drafter proposed there (`drafted`; null on the row after the last draft). Greedy requests take
   * exactly {@link next}'s token (the draft is accepted when it equals it), so greedy speculation is
   * token-for-token plain decoding; sampled requests use the lossless rule (`verifySampledRow`).
   * Appends the emitted token to the history.
   */
  verify(outputs: StepOutputs, row: number, drafted: number | null): { sample: SampleResult; accepted: boolean } {
    if (this.sampler.options.temperature === 0 || outputs.logits === null) {
      const sample = this.next(outputs, row);
      return { sample, accepted: drafted !== null && sample.token === drafted };
    }
    this.scratch ??= new Float64Array(this.vocab);
    const logits = outputs.logits.subarray(row * this.vocab, (row + 1) * this.vocab);
    const { result, accepted } = verifySampledRow(this.sampler, logits, this.history, drafted, this.scratch);
    this.history.push(result.token);
    return { sample: result, accepted };
  }

  // A backend's argmax of a row with no finite logit is refused as the sampler refuses such a row.
  private checkedArgmax(token: number): number {
    if (Number.isInteger(token) && token >= 0 && token < this.vocab) return token;
    throw new HaloError(SamplerErrorCode.SAMPLER_NO_CANDIDATES, "no token can be sampled: the backend's argmax found no finite logit", {
      field: "argmax",
      expected: `a token id in [0, ${this.vocab})`,
      actual: token,
      hint: "Check the model output for NaN (a corrupt weight file or a broken kernel)",
    });
  }
}
