// Perplexity with the seed's method: independent windows from position 0, exp(mean NLL) in float64.
import { HaloError } from "@halo/errors";
import { EngineErrorCode } from "./errors.js";
import { checkInteger } from "./generate-options.js";
import type { SequenceTask } from "./scheduler.js";
import { planEveryRow } from "./step-plan.js";

/** Options of {@link Engine.perplexity}. */
export interface PerplexityOptions {
  /** Tokens per window (each window runs from position 0 with a fresh KV). Default: the engine's context length. */
  readonly contextLength?: number;
  /**
   * How far each window advances. Default `contextLength`: independent chunks, the seed's
   * (gen-2) method, where each chunk's first token is never scored. A smaller stride gives a
   * sliding window: every token after the first is scored exactly once, by the first window
   * that has at least `contextLength - stride` tokens of context before it.
   */
  readonly stride?: number;
  /** Cancels the computation. */
  readonly signal?: AbortSignal;
}

/** Result of {@link Engine.perplexity}. */
export interface PerplexityResult {
  /** exp(meanNll). */
  readonly perplexity: number;
  /** Mean negative log-likelihood (natural log) over the scored tokens. */
  readonly meanNll: number;
  /** Tokens scored. */
  readonly scoredTokens: number;
  /** Tokens in the text (including BOS). */
  readonly totalTokens: number;
  /** Windows run. */
  readonly windows: number;
}

/** Negative log-likelihood of `target` under one logits row, with a float64 log-sum-exp. */
export function tokenNll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum) - logits[target]!;
}

/** @internal Runs the windows through `submit` (the engine's scheduler). */
export async function perplexityOf(
  ids: readonly number[],
  options: PerplexityOptions,
  engineContext: number,
  vocab: number,
  submit: (task: SequenceTask) => void,
): Promise<PerplexityResult> {
  const window = checkInteger("contextLength", options.contextLength ?? engineContext, 2, engineContext);
  const stride = checkInteger("stride", options.stride ?? window, 1, window);
  if (ids.length < 2) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "perplexity needs at least two tokens", {
      field: "text",
      actual: `${ids.length} token(s)`,
    });
  }
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new HaloError(EngineErrorCode.ENGINE_TOKEN_OUT_OF_RANGE, "token id out of range", {
        expected: `[0, ${vocab})`,
        actual: id,
      });
    }
  }
  let nllSum = 0;
  let scored = 0;
  let windows = 0;
  // Every token index < scoredUpTo has been scored already (index 0 never is).
  let scoredUpTo = 1;
  for (let begin = 0; begin < ids.length - 1; begin += stride) {
    options.signal?.throwIfAborted();
    const end = Math.min(begin + window, ids.length);
    const chunk = ids.slice(begin, end);
    const firstTarget = Math.max(scoredUpTo, begin + 1);
    windows++;
    await new Promise<void>((resolve, reject) => {
      const task: SequenceTask = {
        prompt: chunk,
        cancelled: false,
        plan: (pending, maxRows) => planEveryRow(pending.length, maxRows),
        onStep({ logits, positions }) {
          if (options.signal?.aborted === true) {
            task.cancelled = true;
            return null;
          }
          for (let r = 0; r < positions.length; r++) {
            const target = begin + positions[r]! + 1; // the row at position p predicts token p+1
            if (target >= end || target < firstTarget) continue;
            nllSum += tokenNll(logits!.subarray(r * vocab, (r + 1) * vocab), ids[target]!);
            scored++;
          }
          return { append: [] };
        },
        onEnd(error) {
          if (error !== null && error !== undefined) reject(error);
          else if (options.signal?.aborted === true) reject(options.signal.reason);
          else resolve();
        },
      };
      submit(task);
    });
    scoredUpTo = end;
    if (end === ids.length) break;
  }
  const meanNll = nllSum / scored;
  return { perplexity: Math.exp(meanNll), meanNll, scoredTokens: scored, totalTokens: ids.length, windows };
}
