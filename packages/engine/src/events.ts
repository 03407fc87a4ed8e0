// The typed events a generation streams: request-start, token-delta, request-end.
import type { TokenLogprob } from "@halo/sampler";

/** Why a generation ended. */
export type FinishReason = "stop" | "length" | "abort";

/** Token counts of one request. */
export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
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
  /** Tokens of the prompt (after the chat template and BOS). */
  readonly promptTokens: number;
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

/** Last event of every generation (also after an abort). */
export interface RequestEndEvent {
  readonly type: "request-end";
  readonly finishReason: FinishReason;
  /** The full generated text (without the stop string or stop token). */
  readonly text: string;
  /** The stop string that ended the text, when one did. */
  readonly stopString: string | null;
  /** Every generated token id, including a final stop id. */
  readonly tokenIds: readonly number[];
  readonly usage: Usage;
  readonly timings: Timings;
}

/** What {@link Engine.generate} yields. */
export type GenerateEvent = RequestStartEvent | TokenDeltaEvent | RequestEndEvent;
