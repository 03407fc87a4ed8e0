// Repetition penalty, llama.cpp style: each distinct recent token's logit is ÷p when positive, ×p otherwise.
import { clampLogit } from "./float-limits.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkLastN, checkRepeatPenalty, checkTokenId } from "./validate.js";

/**
 * llama.cpp's default window for the repetition penalty (`repeat_last_n`).
 *
 * @example
 * ```ts
 * applyRepetitionPenalty(row, history, 1.1, DEFAULT_REPEAT_LAST_N);
 * ```
 */
export const DEFAULT_REPEAT_LAST_N = 64;

/**
 * Penalises tokens that occur in the last `lastN` entries of `history`, in place, as llama.cpp's
 * penalties sampler does (CTRL, Keskar et al. 2019): a logit `l > 0` becomes `l / penalty`, a
 * logit `l ≤ 0` becomes `l · penalty`, once per distinct token however often it occurred.
 * `penalty = 1` or `lastN = 0` is a no-op; `lastN = −1` uses the whole history.
 *
 * @param history - earlier token ids, oldest first (only the last `lastN` are read).
 * @throws HaloError `SAMPLER_BAD_OPTION` for `penalty ≤ 0` or non-finite, or `lastN < −1`;
 *   `SAMPLER_BAD_TOKEN` for an id outside [0, V) inside the window.
 * @example
 * ```ts
 * const row = new Float32Array([2, -2, 2]);
 * applyRepetitionPenalty(row, [0, 1, 1], 2, 64); // row = [1, -4, 2]
 * ```
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  history: ArrayLike<number>,
  penalty: number,
  lastN: number = DEFAULT_REPEAT_LAST_N,
  scratch?: SamplerScratch,
): void {
  checkRepeatPenalty(penalty);
  checkLastN(lastN);
  if (penalty === 1 || lastN === 0 || history.length === 0) return;
  const vocabSize = logits.length;
  const buffers = scratchFor(vocabSize, scratch);
  const stamps = buffers.stamps;
  const generation = buffers.nextGeneration();
  const start = lastN < 0 ? 0 : Math.max(0, history.length - lastN);
  for (let j = start; j < history.length; j++) {
    const id = history[j]!;
    checkTokenId(id, vocabSize, j);
    if (stamps[id] === generation) continue;
    stamps[id] = generation;
    const v = logits[id]!;
    logits[id] = clampLogit(v > 0 ? v / penalty : v * penalty, v);
  }
}
