// What one sequence asks of one scheduler step (tokens to feed, rows to return), what it gets back, and how it answers.

/**
 * What a row returns: its whole logits row, or only its greedy token (`"argmax"`, which a backend
 * with an on-device argmax computes without copying the row off the device).
 * @internal
 */
export type RowOutput = "logits" | "argmax";

/**
 * One sequence's part of one step. The scheduler offers up to `maxRows` tokens from the front of
 * the sequence's pending queue; the plan takes `feed` of them (they run at the sequence's next
 * positions, in order) and names the fed rows whose outputs it needs.
 *
 * @example
 * ```ts
 * // Verify 3 drafted tokens after the last accepted one: feed all 4, logits of every row.
 * const plan: StepPlan = { feed: 4, outputRows: [0, 1, 2, 3], output: "logits" };
 * ```
 * @internal
 */
export interface StepPlan {
  /** Tokens taken from the front of the pending queue this step: 1 … the `maxRows` offered. */
  readonly feed: number;
  /** Indices in `[0, feed)` of the rows whose output is wanted, strictly increasing; empty: nothing back this step. */
  readonly outputRows: readonly number[];
  /**
   * `"argmax"` when the greedy token of each output row is enough. The scheduler may still hand
   * the logits (when another sequence of the same step needs them, or the backend computes argmax
   * only on the host), so a plan asking argmax must accept either.
   */
  readonly output: RowOutput;
  /**
   * Indices in `[0, feed)` of the rows whose final hidden state (before the output norm) is
   * wanted, strictly increasing (Medusa-style heads). Needs a backend with `forward` and
   * `capabilities.hiddenRows`.
   */
  readonly hiddenRows?: readonly number[];
}

/**
 * What a step returned for one sequence's planned rows.
 *
 * @example
 * ```ts
 * const last = outputs.positions.length - 1;
 * const token = outputs.argmax?.[last] ?? argmaxOf(outputs.logits!.subarray(last * vocab));
 * ```
 * @internal
 */
export interface StepOutputs {
  /** Sequence position of each output row, in plan order; the row at position `p` predicts the token at `p + 1`. */
  readonly positions: readonly number[];
  /** `[positions.length][vocabSize]` logits, or null when the step returned argmax only. A view: copy to keep. */
  readonly logits: Float32Array | null;
  /** `[positions.length]` greedy ids (lowest id on ties) when the plan asked for argmax; null otherwise. */
  readonly argmax: Int32Array | null;
  /** `[hiddenRows.length][hiddenSize]` final hidden states when the plan asked for them; null otherwise. */
  readonly hidden: Float32Array | null;
  /** Positions the sequence holds after this step (every fed row included). */
  readonly length: number;
}

/**
 * A sequence's answer to a step: tokens to queue, and optionally a rewind. With `keepLength`,
 * the scheduler first cuts the sequence's KV to its first `keepLength` positions
 * (`model.truncateSequence`) and continues from there — rejected draft tokens are forgotten this
 * way. Tokens still pending stay queued, ahead of `append`, and run from position `keepLength`.
 *
 * @example
 * ```ts
 * // Of 3 drafts fed after position 9 (10 positions before the step, 14 after), 1 was accepted:
 * // keep the 10 + 1 fed token + 1 accepted draft, queue the corrected token.
 * const update: SequenceUpdate = { append: [bonus], keepLength: 12 };
 * ```
 * @internal
 */
export interface SequenceUpdate {
  /** Tokens to add to the end of the pending queue. */
  readonly append: readonly number[];
  /** Positions to keep, in `[0, outputs.length]`; absent: keep them all. */
  readonly keepLength?: number;
  /** Forget the tokens still pending before queueing `append` (drafts a step had no room to feed). */
  readonly dropPending?: boolean;
}

/**
 * The plan of plain generation: feed as much of the queue as offered, and ask for the last row
 * only once the queue is fed completely (a prompt chunk that is not the end returns nothing).
 *
 * @example
 * ```ts
 * planLastRow(10, 4, "logits"); // { feed: 4, outputRows: [], output: "logits" }
 * planLastRow(3, 256, "argmax"); // { feed: 3, outputRows: [2], output: "argmax" }
 * ```
 * @internal
 */
export function planLastRow(pending: number, maxRows: number, output: RowOutput): StepPlan {
  const feed = Math.min(pending, maxRows);
  return { feed, outputRows: feed === pending ? [feed - 1] : [], output };
}

/**
 * The plan that scores every fed row (evaluation, perplexity).
 *
 * @example
 * ```ts
 * planEveryRow(3, 256); // { feed: 3, outputRows: [0, 1, 2], output: "logits" }
 * ```
 * @internal
 */
export function planEveryRow(pending: number, maxRows: number): StepPlan {
  const feed = Math.min(pending, maxRows);
  return { feed, outputRows: Array.from({ length: feed }, (_, i) => i), output: "logits" };
}
