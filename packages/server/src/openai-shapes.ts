// Builders of OpenAI's response objects: chat/text completions, their stream chunks, logprobs, usage.
import type { Engine, RequestEndEvent, TokenDeltaEvent } from "@halo/engine";

/** OpenAI `usage`. */
export interface OpenAiUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  /** `cached_tokens`: prompt tokens the prefix cache reused instead of computing. */
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

/** llama-server's `timings` object (extra to OpenAI; clients ignore it). */
export interface OpenAiTimings {
  readonly queued_ms: number;
  readonly prompt_n: number;
  readonly prompt_ms: number;
  readonly prompt_per_second: number;
  readonly predicted_n: number;
  readonly predicted_ms: number;
  readonly predicted_per_second: number;
}

/** One token of chat `logprobs.content`. */
export interface ChatLogprob {
  readonly token: string;
  readonly logprob: number;
  readonly bytes: number[];
  readonly top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

/** Text completion `logprobs` (the legacy shape). */
export interface CompletionLogprobs {
  readonly tokens: string[];
  readonly token_logprobs: number[];
  readonly top_logprobs: Array<Record<string, number>>;
  readonly text_offset: number[];
}

/**
 * OpenAI usage from the engine's usage.
 *
 * @example
 * ```ts
 * usageOf(end); // { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 }
 * ```
 */
export function usageOf(end: RequestEndEvent): OpenAiUsage {
  return {
    prompt_tokens: end.usage.promptTokens,
    completion_tokens: end.usage.completionTokens,
    total_tokens: end.usage.totalTokens,
    // OpenAI's field for prompt tokens served from its cache: here, those the prefix cache reused.
    prompt_tokens_details: { cached_tokens: end.usage.cachedPromptTokens ?? 0 },
  };
}

/**
 * llama-server-style timings from the engine's timings.
 *
 * @example
 * ```ts
 * timingsOf(end).predicted_per_second; // decode tok/s of this request
 * ```
 */
export function timingsOf(end: RequestEndEvent): OpenAiTimings {
  const t = end.timings;
  return {
    queued_ms: t.queuedMs,
    prompt_n: end.usage.promptTokens,
    prompt_ms: t.prefillMs,
    prompt_per_second: t.prefillTokensPerSecond,
    predicted_n: end.usage.completionTokens,
    predicted_ms: t.decodeMs,
    predicted_per_second: t.decodeTokensPerSecond,
  };
}

/** Text of one token id as the client should see it (U+FFFD for a lone part of a UTF-8 character). */
export function tokenText(engine: Engine, id: number): string {
  try {
    return engine.detokenize([id]);
  } catch {
    return "";
  }
}

function bytesOf(text: string): number[] {
  return [...Buffer.from(text, "utf8")];
}

/**
 * The chat `logprobs.content` entry of one token-delta, or null when it carries no logprob.
 *
 * @example
 * ```ts
 * chatLogprob(engine, delta); // { token: " the", logprob: -0.12, bytes: [32,116,104,101], top_logprobs: [...] }
 * ```
 */
export function chatLogprob(engine: Engine, delta: TokenDeltaEvent): ChatLogprob | null {
  if (delta.logprob === undefined || delta.tokenId < 0) return null;
  const token = tokenText(engine, delta.tokenId);
  return {
    token,
    logprob: delta.logprob,
    bytes: bytesOf(token),
    top_logprobs: (delta.topLogprobs ?? []).map((alt) => {
      const text = tokenText(engine, alt.token);
      return { token: text, logprob: alt.logprob, bytes: bytesOf(text) };
    }),
  };
}

/**
 * Appends one token-delta to a text completion `logprobs` object (`offset` = characters of text
 * before this token).
 *
 * @example
 * ```ts
 * const lp = emptyCompletionLogprobs();
 * appendCompletionLogprob(engine, lp, delta, 0);
 * ```
 */
export function appendCompletionLogprob(engine: Engine, into: CompletionLogprobs, delta: TokenDeltaEvent, offset: number): boolean {
  if (delta.logprob === undefined || delta.tokenId < 0) return false;
  into.tokens.push(tokenText(engine, delta.tokenId));
  into.token_logprobs.push(delta.logprob);
  const top: Record<string, number> = {};
  for (const alt of delta.topLogprobs ?? []) {
    const text = tokenText(engine, alt.token);
    if (!(text in top)) top[text] = alt.logprob;
  }
  into.top_logprobs.push(top);
  into.text_offset.push(offset);
  return true;
}

/** A fresh, empty text completion `logprobs` object. */
export function emptyCompletionLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/**
 * A request's speculative decoding counters in the `halo` extension field (snake_case, as the
 * rest of the answer): present when the server's model drafts and the request did not turn it off.
 */
export interface SpeculativeReport {
  /** The drafter of the server's model: `ngram`, `draft-model` or `medusa`. */
  readonly drafter: string;
  /** Steps that produced tokens (each verifies 1 + drafted rows; plain when nothing was drafted). */
  readonly decode_steps: number;
  /** Steps that fed drafts. */
  readonly verify_steps: number;
  readonly drafted_tokens: number;
  readonly accepted_tokens: number;
  /** `accepted_tokens / drafted_tokens` (0 when nothing was drafted). */
  readonly acceptance_rate: number;
  /** Tokens generated per step (1 without accepted drafts). */
  readonly tokens_per_step: number;
}

/**
 * The `halo.speculative` object of a finished request, or undefined when it did not draft.
 *
 * @example
 * ```ts
 * speculativeOf(end); // { drafter: "ngram", decode_steps: 46, verify_steps: 14, drafted_tokens: 24, accepted_tokens: 18, acceptance_rate: 0.75, tokens_per_step: 1.39 }
 * ```
 */
export function speculativeOf(end: RequestEndEvent): SpeculativeReport | undefined {
  const s = end.speculative;
  if (s === undefined) return undefined;
  return {
    drafter: s.drafter,
    decode_steps: s.decodeSteps,
    verify_steps: s.verifySteps,
    drafted_tokens: s.draftedTokens,
    accepted_tokens: s.acceptedTokens,
    acceptance_rate: s.acceptanceRate,
    tokens_per_step: s.tokensPerStep,
  };
}
