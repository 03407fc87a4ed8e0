// The one interface every drafter implements: given a sequence so far, propose the tokens that come next.

/** The drafters halo ships: prompt lookup, a smaller model of the same vocabulary, and Medusa heads. */
export type DrafterKind = "ngram" | "draft-model" | "medusa";

/**
 * What a drafter is asked for one sequence in one round.
 *
 * @example
 * ```ts
 * const draft = await sequence.draft({ context: [...prompt, ...generated], maxTokens: 4, hidden: null });
 * ```
 */
export interface DraftRequest {
  /**
   * Every token of the sequence so far, oldest first: the prompt, then each generated token. The
   * last one is the token the verification step feeds first (sampled, not yet in the KV cache);
   * the drafts continue after it.
   */
  readonly context: readonly number[];
  /** Most tokens to draft, ≥ 1. A drafter may return fewer (or none: nothing worth verifying). */
  readonly maxTokens: number;
  /**
   * The final hidden state (before the output norm, `hiddenSize` floats) of the row that
   * predicted the last context token, for drafters with {@link Drafter.needsHidden}; null otherwise.
   */
  readonly hidden: Float32Array | null;
}

/**
 * Drafted tokens. Every drafter here drafts deterministically (each token its own argmax or its
 * lookup's continuation), so the draft distribution of each token is a point mass on it: the
 * lossless rule accepts a drafted token `d` with probability `p(d)` and otherwise resamples from
 * `p` without `d`.
 */
export interface Draft {
  /** The proposed continuation, at most the request's `maxTokens` long. */
  readonly tokens: readonly number[];
}

/** One sequence's drafting state (a draft model's KV slot, nothing for prompt lookup). */
export interface DrafterSequence {
  /** Proposes tokens after `request.context`. */
  draft(request: DraftRequest): Draft | Promise<Draft>;
  /**
   * Verification's verdict on the last draft: of `drafted` tokens fed, the first `accepted` were
   * kept. Drafters that adapt (prompt lookup shortens drafts from n-gram sizes that miss) learn here.
   */
  verified?(drafted: number, accepted: number): void;
  /** Releases what the sequence holds (a draft model's KV slot). Idempotent. */
  close(): void;
}

/**
 * A drafter: proposes tokens that a verification step of the target model then checks in one
 * batched forward pass. Drafters never decide what is emitted, so a bad drafter costs speed,
 * never correctness.
 *
 * @example
 * ```ts
 * const drafter = createNgramDrafter();
 * const sequence = drafter.openSequence();
 * const { tokens } = await sequence.draft({ context, maxTokens: 4, hidden: null });
 * sequence.close();
 * ```
 */
export interface Drafter {
  readonly kind: DrafterKind;
  /** A short description for logs and stats (`"ngram 1-4"`, `"draft-model halo-tiny-draft.halo (cpu)"`, `"medusa 4 heads"`). */
  readonly label: string;
  /** True when drafts need the target's final hidden state ({@link DraftRequest.hidden}). */
  readonly needsHidden: boolean;
  /** Most tokens one draft can hold (Medusa: its head count). */
  readonly maxDraftTokens: number;
  /** Per-sequence state. */
  openSequence(): DrafterSequence;
  /** Frees what the drafter holds (a draft model). Idempotent. */
  dispose(): void;
}
