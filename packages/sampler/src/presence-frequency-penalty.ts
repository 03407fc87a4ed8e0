// Presence and frequency penalties with OpenAI's formula: l −= count·frequency + (count > 0)·presence.
import { clampLogit } from "./float-limits.js";
import { scratchFor, type SamplerScratch } from "./scratch.js";
import { checkAdditivePenalty, checkTokenId } from "./validate.js";

/**
 * Applies OpenAI's presence and frequency penalties in place
 * (https://platform.openai.com/docs/advanced-usage/parameter-details):
 * `l[j] −= c[j] · frequency + (c[j] > 0 ? presence : 0)`, where `c[j]` counts token `j` in
 * `history`. The whole `history` counts: pass exactly the tokens that should be penalised (OpenAI
 * counts the tokens generated so far; llama.cpp counts its `repeat_last_n` window, so pass
 * `history.slice(-64)` for its behaviour). Both 0 is a no-op. O(len(history)), no V-sized pass.
 *
 * @throws HaloError `SAMPLER_BAD_OPTION` for a non-finite penalty; `SAMPLER_BAD_TOKEN` for an id
 *   outside [0, V).
 * @example
 * ```ts
 * const row = new Float32Array([1, 1, 1]);
 * applyPresenceFrequencyPenalty(row, [2, 2, 0], 0.5, 0.25); // row = [0.25, 1, 0]
 * ```
 */
export function applyPresenceFrequencyPenalty(
  logits: Float32Array,
  history: ArrayLike<number>,
  presence: number,
  frequency: number,
  scratch?: SamplerScratch,
): void {
  checkAdditivePenalty(presence, "presencePenalty");
  checkAdditivePenalty(frequency, "frequencyPenalty");
  if ((presence === 0 && frequency === 0) || history.length === 0) return;
  const vocabSize = logits.length;
  const buffers = scratchFor(vocabSize, scratch);
  const { stamps, counts, indices: touched } = buffers;
  const generation = buffers.nextGeneration();
  let distinct = 0;
  for (let j = 0; j < history.length; j++) {
    const id = history[j]!;
    checkTokenId(id, vocabSize, j);
    if (stamps[id] === generation) {
      counts[id]!++;
    } else {
      stamps[id] = generation;
      counts[id] = 1;
      touched[distinct++] = id;
    }
  }
  for (let t = 0; t < distinct; t++) {
    const id = touched[t]!;
    const v = logits[id]!;
    logits[id] = clampLogit(v - counts[id]! * frequency - presence, v);
  }
}
