// Sampling one sequence: its sampler chain and token history, and whether the backend's argmax can stand in for it.
import { HaloError } from "@halo/errors";
import { createSampler, SamplerErrorCode, type SampleResult, type SamplerChain, type SamplerOptions } from "@halo/sampler";
import { verifyRow } from "@halo/speculative";
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
   * Verifies one row of a speculative step: the token after output row `row`, sampled exactly as
   * {@link next} samples it (one draw of the seeded stream per token, the argmax for plain greedy),
   * the drafted token (`drafted`; null on the row after the last draft) accepted when it is that
   * token — the lossless rule for deterministic drafts (`verifyRow` in `@halo/speculative`). So
   * greedy and seeded sampled output are token-for-token plain decoding's.
   */
  verify(outputs: StepOutputs, row: number, drafted: number | null): { sample: SampleResult; accepted: boolean } {
    const { result, accepted } = verifyRow(() => this.next(outputs, row), drafted);
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
