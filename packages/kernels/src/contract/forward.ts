// forwardBatch: the contract-2 step for any loaded model, deriving argmax / top-k on the host when a backend has no forward().
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { LoadedModel, StepBatch, StepResult } from "./loaded-model.js";
import { validateOutputs } from "./validate-batch.js";

/** Largest finite float32: argmaxRows ranks +∞ as this, as the sampler's greedy (which sanitises +∞ to it first) does. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The greedy id of each of `rows` rows of `vocab` logits: the highest logit, the lowest id on ties
 * (NaN never wins; +∞ ranks as the largest finite float32, exactly as the sampler's greedy ranks it
 * after sanitising, so `FLOAT32_MAX` at a lower id beats +∞ at a higher one). A row with no logit
 * above −∞ (all NaN or −∞) gives −1: nothing can be sampled from it, and callers refuse it as the
 * sampler refuses such a row. The definition every backend's on-device argmax matches.
 *
 * @example
 * ```ts
 * argmaxRows(Float32Array.of(1, 3, 3, 0), 1, 4); // Int32Array [1]
 * ```
 */
export function argmaxRows(logits: Float32Array, rows: number, vocab: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    let best = -1;
    let bestValue = -Infinity;
    for (let i = 0; i < vocab; i++) {
      const raw = logits[base + i]!;
      const v = raw > FLOAT32_MAX ? FLOAT32_MAX : raw;
      if (v > bestValue) {
        bestValue = v;
        best = i;
      }
    }
    out[r] = best;
  }
  return out;
}

/**
 * The `k` best ids of each of `rows` rows of `vocab` logits with their logits, best first (higher
 * logit, then lower id; NaN ranks last). The definition every backend's on-device top-k matches.
 *
 * @example
 * ```ts
 * topKRows(Float32Array.of(1, 3, 3, 0), 1, 4, 2); // { k: 2, ids: [1, 2], logits: [3, 3] }
 * ```
 */
export function topKRows(logits: Float32Array, rows: number, vocab: number, k: number): { k: number; ids: Int32Array; logits: Float32Array } {
  const ids = new Int32Array(rows * k);
  const values = new Float32Array(rows * k);
  const order = new Int32Array(vocab);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    for (let i = 0; i < vocab; i++) order[i] = i;
    // NaN ranks below −∞; +∞ ties with FLOAT32_MAX (lower id first), as argmaxRows and the sampler's greedy rank it.
    const key = (i: number): number => (Number.isNaN(row[i]!) ? -Infinity : Math.min(row[i]!, FLOAT32_MAX));
    // A full sort keeps this the obviously-correct twin; backends may select instead.
    const sorted = Array.from(order).sort((a, b) => key(b) - key(a) || (Number.isNaN(row[a]!) ? 1 : 0) - (Number.isNaN(row[b]!) ? 1 : 0) || a - b);
    for (let j = 0; j < k; j++) {
      ids[r * k + j] = sorted[j]!;
      values[r * k + j] = row[sorted[j]!]!;
    }
  }
  return { k, ids, logits: values };
}

/**
 * Runs a contract-2 step on any {@link LoadedModel}: its own `forward` when it has one, else `step`
 * with argmax / top-k derived on the host from the logits. A batch with non-empty `hiddenRows` on a
 * model without `forward` is refused with `KERNELS_UNSUPPORTED_CONFIG` (its backend cannot return
 * hidden states); an empty `hiddenRows` gives an empty `hidden`, as every `forward` does. The engine
 * steps every backend through here.
 *
 * @example
 * ```ts
 * const { argmax } = await forwardBatch(model, { ...batch, output: "argmax" });
 * ```
 */
export async function forwardBatch(model: LoadedModel, batch: StepBatch): Promise<StepResult> {
  if (typeof model.forward === "function") return model.forward(batch);
  if (batch.hiddenRows !== undefined && batch.hiddenRows.length > 0) {
    throw new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, "this backend does not return hidden states", {
      field: "hiddenRows",
      expected: "a backend whose capabilities().hiddenRows is true",
      actual: `${batch.hiddenRows.length} hidden rows`,
      hint: "Use a backend that lists hiddenRows (reference, cpu), or run without Medusa heads",
    });
  }
  validateOutputs(batch, model.config.vocabSize);
  const output = batch.output ?? "logits";
  const { output: _output, topK: _topK, hiddenRows: _hidden, ...plain } = batch;
  void _output;
  void _hidden;
  const logits = await model.step(plain);
  const result = deriveOutputs(logits, batch.logitRows.length, model.config.vocabSize, output, _topK);
  return _hidden === undefined ? result : { ...result, hidden: new Float32Array(0) };
}

/**
 * The {@link StepResult} of `output` (no `hidden`) from host logits `[rows][vocab]`: the logits
 * themselves, or {@link argmaxRows} / {@link topKRows} of them with empty logits — what a backend's
 * `forward` returns for an output it does not compute on its device, and what {@link forwardBatch}
 * returns for a backend without `forward`. `topK` is required with output `"top-k"` (validated
 * batches carry it).
 *
 * @example
 * ```ts
 * const { argmax } = deriveOutputs(await model.step(batch), batch.logitRows.length, vocab, "argmax", undefined);
 * ```
 */
export function deriveOutputs(logits: Float32Array, rows: number, vocab: number, output: StepBatch["output"], topK: number | undefined): StepResult {
  if (output === undefined || output === "logits") return { logits };
  if (output === "argmax") return { logits: new Float32Array(0), argmax: argmaxRows(logits, rows, vocab) };
  return { logits: new Float32Array(0), topK: topKRows(logits, rows, vocab, topK ?? 1) };
}
