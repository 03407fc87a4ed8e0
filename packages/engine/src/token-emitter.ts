// The event side of a generation: stop ids and stop strings, incremental detokenizing, token-delta / request-end events, timings and usage.
import type { SampleResult } from "@halo/sampler";
import type { StreamDecoder, Tokenizer } from "@halo/tokenizer";
import { Channel } from "./channel.js";
import type { FinishReason, GenerateEvent, SpeculativeCounts } from "./events.js";

/** What a {@link TokenEmitter} needs to know about its request. @internal */
export interface TokenEmitterOptions {
  /** Null: no text, token ids only. */
  readonly tokenizer: Tokenizer | null;
  /** Strings that end the text (not included in it). */
  readonly stopStrings: readonly string[];
  /** Token ids that end generation (included in `tokenIds`, not in the text). */
  readonly stopTokenIds: ReadonlySet<number>;
  readonly maxTokens: number;
  /** KV positions of the sequence. */
  readonly contextLength: number;
  /** Tokens of the prompt this request runs. */
  readonly promptTokens: number;
  /** Positions already in the sequence before the prompt (a session's cached prefix). */
  readonly cachedTokens: number;
  /** Messages a chat's context policy dropped. */
  readonly droppedMessages: number;
}

/**
 * Turns sampled tokens into a generation's event stream: `request-start`, one `token-delta` per
 * token (text detokenized incrementally, never half a character, never part of a stop string),
 * and `request-end` with the finish reason, the text, usage and timings. It decides when the
 * generation is over (a stop id, a stop string, `maxTokens`, a full context) but samples nothing
 * and runs no model: the engine feeds it tokens from a {@link SamplingStep}.
 *
 * @example
 * ```ts
 * const emitter = new TokenEmitter({ tokenizer, stopStrings: ["\n\n"], stopTokenIds: new Set([2]), maxTokens: 64,
 *   contextLength: 4096, promptTokens: prompt.length, cachedTokens: 0, droppedMessages: 0 });
 * emitter.start();
 * if (!emitter.accept({ token }, position)) finish();
 * emitter.end(null, false);
 * for await (const event of emitter.events) console.log(event.type);
 * ```
 * @internal
 */
export class TokenEmitter {
  /** The events, for the caller to iterate. */
  readonly events = new Channel<GenerateEvent>();
  /** Every token accepted so far, a final stop id included. */
  readonly generated: number[] = [];
  private readonly options: TokenEmitterOptions;
  private decoder: StreamDecoder | null;
  private readonly submittedAt = performance.now();
  private startedAt = this.submittedAt;
  private firstTokenAt = 0;
  private finishReason: FinishReason = "length";
  private contextFull = false;
  private text = "";
  private cachedPrompt = 0;
  /**
   * Set by a speculative task, whose one step may emit several tokens: when the request is
   * aborted, tokens the consumer has not taken yet are withdrawn ({@link retractUndelivered}), so
   * an abort lands where it lands in plain decoding (one token per step).
   */
  retractOnCancel = false;
  /** The request's speculative counters, set by a speculative task (reported in `request-end`). */
  speculative: (() => SpeculativeCounts) | undefined = undefined;

  constructor(options: TokenEmitterOptions) {
    this.options = options;
    this.decoder = options.tokenizer === null ? null : options.tokenizer.createStreamDecoder({ stopStrings: options.stopStrings, skipSpecialTokens: true });
  }

  /** Pushes `request-start`. */
  start(): void {
    const { promptTokens, cachedTokens, contextLength, droppedMessages } = this.options;
    this.events.push({ type: "request-start", promptTokens, contextTokens: cachedTokens + promptTokens, contextLength, droppedMessages });
  }

  /** The request's first step began (the end of its time in the queue). */
  /** The first `tokens` prompt tokens came from the prefix cache (reported in `usage.cachedPromptTokens`). */
  prefixReused(tokens: number): void {
    this.cachedPrompt = tokens;
  }

  stepStarted(): void {
    this.startedAt = performance.now();
  }

  /** The prompt's outputs arrived (the end of prefill); later calls change nothing. */
  outputsArrived(): void {
    if (this.firstTokenAt === 0) this.firstTokenAt = performance.now();
  }

  /** False when no token may be generated at all (`maxTokens: 0`). */
  get wantsTokens(): boolean {
    return this.options.maxTokens > 0;
  }

  /**
   * Takes the token sampled from the row at sequence position `position` (it would run at
   * `position + 1`): records it, streams its text, and says whether generation goes on (true:
   * feed it back) or ended here (a stop id, a stop string, `maxTokens`, or the context is full).
   */
  accept(sample: SampleResult, position: number): boolean {
    const { token } = sample;
    this.generated.push(token);
    if (this.options.stopTokenIds.has(token)) {
      this.finishReason = "stop";
      return false;
    }
    const piece = this.decoder === null ? "" : this.decoder.push(token);
    this.text += piece;
    this.events.push({
      type: "token-delta",
      tokenId: token,
      text: piece,
      ...(sample.logprob !== undefined ? { logprob: sample.logprob } : {}),
      ...(sample.topLogprobs !== undefined ? { topLogprobs: sample.topLogprobs } : {}),
    });
    if (this.decoder?.stopped === true) {
      this.finishReason = "stop";
      return false;
    }
    const contextFull = position + 2 >= this.options.contextLength;
    if (this.generated.length >= this.options.maxTokens || contextFull) {
      this.finishReason = "length";
      this.contextFull = contextFull;
      return false;
    }
    return true;
  }

  /**
   * Withdraws the token-deltas the consumer has not taken yet (with {@link retractOnCancel}): their
   * tokens leave {@link generated} and the text, and the decoder is rebuilt on the tokens that stay
   * (the same pieces: decoding is deterministic), so `request-end` describes what was delivered.
   */
  retractUndelivered(): void {
    if (!this.retractOnCancel) return;
    const dropped = this.events.retract((event) => event.type === "token-delta");
    if (dropped === 0) return;
    this.generated.length -= dropped;
    const tokenizer = this.options.tokenizer;
    if (tokenizer === null) return;
    this.decoder = tokenizer.createStreamDecoder({ stopStrings: this.options.stopStrings, skipSpecialTokens: true });
    this.text = "";
    for (const token of this.generated) this.text += this.decoder.push(token);
  }

  /**
   * Ends the stream: with `error`, the iteration throws it; otherwise the decoder's held-back
   * text is flushed and `request-end` pushed (`finishReason: "abort"` when `cancelled`).
   */
  end(error: unknown, cancelled: boolean): void {
    if (error !== null && error !== undefined) {
      this.events.close(error);
      return;
    }
    if (cancelled) this.finishReason = "abort";
    const decoder = this.decoder;
    if (decoder !== null && !decoder.stopped) {
      const tail = decoder.flush();
      if (tail.length > 0) {
        this.text += tail;
        this.events.push({ type: "token-delta", tokenId: -1, text: tail });
      }
    }
    const { promptTokens, cachedTokens } = this.options;
    const generated = this.generated;
    const end = performance.now();
    const prefillMs = (this.firstTokenAt || end) - this.startedAt;
    const decodeMs = this.firstTokenAt === 0 ? 0 : end - this.firstTokenAt;
    const decoded = Math.max(0, generated.length - 1);
    this.events.push({
      type: "request-end",
      finishReason: this.finishReason,
      contextFull: this.contextFull,
      contextTokens: cachedTokens + promptTokens + generated.length,
      text: this.text,
      stopString: decoder?.stopString ?? null,
      tokenIds: generated,
      usage: {
        promptTokens,
        completionTokens: generated.length,
        totalTokens: promptTokens + generated.length,
        cachedPromptTokens: this.cachedPrompt,
      },
      ...(this.speculative !== undefined ? { speculative: this.speculative() } : {}),
      timings: {
        queuedMs: this.startedAt - this.submittedAt,
        prefillMs,
        decodeMs,
        // The rate of the prompt tokens computed (a prefix cache hit computes only the rest).
        prefillTokensPerSecond: prefillMs > 0 ? ((promptTokens - this.cachedPrompt) * 1000) / prefillMs : 0,
        decodeTokensPerSecond: decodeMs > 0 ? (decoded * 1000) / decodeMs : 0,
      },
    });
    this.events.close();
  }
}
