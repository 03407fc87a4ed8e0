// The typed events a generation streams: request-start, token-delta, request-end.
import type { TokenLogprob } from "@halo/sampler";
import type { DrafterKind } from "@halo/speculative";

/** Why a generation ended. */
export type FinishReason = "stop" | "length" | "abort";

/** Token counts of one request. */
export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
  /** Prompt tokens whose KV came from the prefix cache instead of being computed (0 without a hit). */
  readonly cachedPromptTokens: number;
}

/** Wall-clock timings of one request, in milliseconds, and the rates they imply. */
export interface Timings {
  /** From submission to the first step that included this request (time in the queue). */
  readonly queuedMs: number;
  /** From the first step to the first sampled token (the prompt's forward pass). */
  readonly prefillMs: number;
  /** From the first sampled token to the end. */
  readonly decodeMs: number;
  readonly prefillTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
}

/** First event of every generation. */
export interface RequestStartEvent {
  readonly type: "request-start";
  /** Tokens of the prompt (after the chat template and BOS) that this request runs (a session's cached prefix is not counted). */
  readonly promptTokens: number;
  /** KV positions the sequence holds once the prompt is in (a session's cached prefix included). */
  readonly contextTokens: number;
  /** KV positions of the sequence: the answer ends (`contextFull`) when they are all used. */
  readonly contextLength: number;
  /**
   * Messages dropped from a chat to make it fit the context window (the `contextShift` policy);
   * 0 when nothing was dropped and for plain generations.
   */
  readonly droppedMessages: number;
}

/** One generated token and the text it completes (possibly empty while a character or stop string is pending). */
export interface TokenDeltaEvent {
  readonly type: "token-delta";
  readonly tokenId: number;
  /** Text safe to show now (never half a UTF-8 character, never part of a stop string). */
  readonly text: string;
  /** Natural-log probability of the token, when logprobs were requested. */
  readonly logprob?: number;
  /** The most likely alternatives, when `topLogprobs > 0`. */
  readonly topLogprobs?: readonly TokenLogprob[];
}

/**
 * Speculative decoding counters of one request (`request-end.speculative`), or of the engine
 * since load ({@link SpeculativeEngineStats}).
 *
 * @example
 * ```ts
 * if (e.type === "request-end" && e.speculative) console.log(`${e.speculative.tokensPerStep.toFixed(2)} tokens/step`);
 * ```
 */
export interface SpeculativeCounts {
  /** The drafter of the loaded model. */
  readonly drafter: DrafterKind;
  /** Steps that produced tokens (the prompt's last step, then each decode step: one verification of 1 + drafted rows, plain when nothing was drafted). */
  readonly decodeSteps: number;
  /** Decode steps that fed drafts. */
  readonly verifySteps: number;
  /** Drafted tokens fed for verification. */
  readonly draftedTokens: number;
  /** Drafted tokens accepted. */
  readonly acceptedTokens: number;
  /** `acceptedTokens / draftedTokens` (0 when nothing was drafted). */
  readonly acceptanceRate: number;
  /** Tokens generated per step that produced tokens (1 without accepted drafts: the gain over plain decoding in steps). */
  readonly tokensPerStep: number;
}

/** Last event of every generation (also after an abort). */
export interface RequestEndEvent {
  readonly type: "request-end";
  /**
   * `"length"` is kept for both limits (as OpenAI does); `contextFull` tells which one it was.
   */
  readonly finishReason: FinishReason;
  /** True when the answer ended because the context window was full (not `maxTokens`, not a stop). */
  readonly contextFull: boolean;
  /** KV positions the sequence used at the end: prompt (with a session's cached prefix) plus generated tokens. */
  readonly contextTokens: number;
  /** The full generated text (without the stop string or stop token). */
  readonly text: string;
  /** The stop string that ended the text, when one did. */
  readonly stopString: string | null;
  /** Every generated token id, including a final stop id. */
  readonly tokenIds: readonly number[];
  readonly usage: Usage;
  readonly timings: Timings;
  /** Speculative decoding of this request, when the model was loaded with a drafter and the request did not turn it off. */
  readonly speculative?: SpeculativeCounts;
}

/** What {@link Engine.generate} yields. */
export type GenerateEvent = RequestStartEvent | TokenDeltaEvent | RequestEndEvent;
