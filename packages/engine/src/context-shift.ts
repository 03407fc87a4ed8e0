// What a chat does when its conversation no longer fits the context window: drop the oldest turns, refuse, or a caller's policy.
import { HaloError } from "@halo/errors";
import type { ChatMessage } from "@halo/tokenizer";
import { EngineErrorCode } from "./errors.js";

/** Facts a {@link ContextShiftFunction} decides with. */
export interface ContextShiftInfo {
  /** KV positions of the sequence. */
  readonly contextLength: number;
  /** Tokens of the whole conversation as rendered with the chat template (BOS included). */
  readonly promptTokens: number;
  /** Tokens kept free for the answer: see {@link answerRoom}. */
  readonly answerRoom: number;
  /** The most prompt tokens that still leave {@link answerRoom}: `contextLength - answerRoom`. */
  readonly maxPromptTokens: number;
  /** Tokens of other messages rendered with the same template (to try candidates). */
  countTokens(messages: readonly ChatMessage[]): number;
}

/**
 * A custom context policy: given the conversation that does not fit and the facts above, return
 * the messages to run instead (fewer, shorter or summarised). Called only when the rendered
 * conversation exceeds `info.maxPromptTokens`. What it returns must fit in the context window
 * (fewer than `contextLength` tokens), or the chat fails with `ENGINE_CONTEXT_OVERFLOW`.
 *
 * @example
 * ```ts
 * // Keep the system prompt and only the newest message.
 * const lastOnly: ContextShiftFunction = (messages) => [...messages.filter((m) => m.role === "system"), messages.at(-1)!];
 * engine.chat(messages, { contextShift: lastOnly });
 * ```
 */
export type ContextShiftFunction = (messages: readonly ChatMessage[], info: ContextShiftInfo) => readonly ChatMessage[];

/**
 * What a chat does when the conversation does not fit the context window with room for the answer:
 * - `"drop-oldest"` (default): drop the fewest whole oldest turns (a user message and the replies
 *   after it) that make it fit; system messages and the newest user message are never dropped.
 * - `"error"`: never change the messages; a prompt that leaves no room for even one token fails
 *   with `ENGINE_CONTEXT_OVERFLOW`, a shorter one runs and its answer may be cut by the context.
 * - a {@link ContextShiftFunction}.
 */
export type ContextShiftPolicy = "drop-oldest" | "error" | ContextShiftFunction;

/**
 * The named policies (for flags and request fields).
 *
 * @example
 * ```ts
 * CONTEXT_SHIFT_POLICIES.includes("drop-oldest"); // true
 * ```
 */
export const CONTEXT_SHIFT_POLICIES = ["drop-oldest", "error"] as const;

/** What {@link fitChatToContext} decided. */
export interface ContextFit {
  /** The messages that run (the input itself when nothing was dropped). */
  readonly messages: readonly ChatMessage[];
  /** Their prompt token ids. */
  readonly ids: number[];
  /** How many messages were removed (0 when the conversation fitted). */
  readonly droppedMessages: number;
  /** Tokens the whole conversation needed before anything was removed (null: an async encoder said "too long" without counting). */
  readonly promptTokensBefore: number | null;
}

/** Options of {@link fitChatToContext}. */
export interface FitChatOptions {
  readonly contextLength: number;
  /** The request's `maxTokens` (the answer room is derived from it). */
  readonly maxTokens: number;
  /** Default `"drop-oldest"`. */
  readonly policy?: ContextShiftPolicy | undefined;
  /** Messages → prompt token ids, with the template the request uses. */
  readonly encode: (messages: readonly ChatMessage[]) => number[];
  /**
   * Every message renders to at least one token (true of the built-in templates, see
   * `rendersEveryMessage`). Then a candidate of `contextLength` messages or more cannot fit and is
   * passed over without rendering it, so a conversation of many short messages costs renders of
   * at most `contextLength` messages, not of all of them. Default false (a template may skip
   * messages).
   */
  readonly oneTokenPerMessage?: boolean | undefined;
}

/**
 * Tokens a chat keeps free for the answer when it drops old turns: `maxTokens`, but at most a
 * quarter of the context (so a large `maxTokens` does not throw away most of the conversation),
 * and at least 1. An answer longer than this room still runs until the context is full.
 *
 * @example
 * ```ts
 * answerRoom(4096, 256); // 256
 * answerRoom(64, 512);   // 16
 * answerRoom(64, 0);     // 1
 * ```
 */
export function answerRoom(contextLength: number, maxTokens: number): number {
  return Math.max(1, Math.min(maxTokens, Math.floor(contextLength / 4)));
}

/** Throws `ENGINE_BAD_OPTION` unless `policy` is a named policy or a function. */
export function checkContextShift(policy: unknown): ContextShiftPolicy {
  if (policy === undefined) return "drop-oldest";
  if (typeof policy === "function" || (typeof policy === "string" && (CONTEXT_SHIFT_POLICIES as readonly string[]).includes(policy))) {
    return policy as ContextShiftPolicy;
  }
  throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "contextShift must be a policy name or a function", {
    field: "contextShift",
    expected: `${CONTEXT_SHIFT_POLICIES.map((p) => `"${p}"`).join(" or ")} or (messages, info) => messages`,
    actual: policy,
  });
}

/**
 * The turns of a conversation that may be dropped, oldest first: index lists of the non-system
 * messages before the newest user message, each starting at a user message (a leading reply
 * without its question is a turn of its own).
 */
function droppableTurns(messages: readonly ChatMessage[]): number[][] {
  let newest = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      newest = i;
      break;
    }
  }
  if (newest < 0) newest = messages.length - 1;
  const turns: number[][] = [];
  for (let i = 0; i < newest; i++) {
    const role = messages[i]!.role;
    if (role === "system") continue;
    if (role === "user" || turns.length === 0) turns.push([i]);
    else turns.at(-1)!.push(i);
  }
  return turns;
}

function withoutTurns(messages: readonly ChatMessage[], turns: readonly number[][], count: number): ChatMessage[] {
  const dropped = new Set(turns.slice(0, count).flat());
  return messages.filter((_, i) => !dropped.has(i));
}

function overflow(message: string, tokens: number | string, contextLength: number, hint: string): HaloError {
  return new HaloError(EngineErrorCode.ENGINE_CONTEXT_OVERFLOW, message, {
    field: "messages",
    expected: `fewer than ${contextLength} prompt tokens (room for at least one new token)`,
    actual: `${tokens} tokens`,
    hint,
  });
}

function checkMessages(value: unknown): readonly ChatMessage[] {
  if (Array.isArray(value) && value.every((m) => typeof m === "object" && m !== null && typeof m.role === "string" && typeof m.content === "string")) {
    return value as ChatMessage[];
  }
  throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "the contextShift function must return an array of chat messages", {
    field: "contextShift",
    expected: "an array of { role, content } objects",
    actual: Array.isArray(value) ? "an array with other values" : typeof value,
  });
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => (typeof setImmediate === "function" ? setImmediate(resolve) : setTimeout(resolve, 0)));

/** Options of {@link fitChatToContextAsync}: an encoder that may yield to the event loop. */
export interface FitChatAsyncOptions extends Omit<FitChatOptions, "encode" | "policy"> {
  /** Default `"drop-oldest"`. A custom function needs {@link fitChatToContext} (its `countTokens` is synchronous). */
  readonly policy?: "drop-oldest" | "error" | undefined;
  /**
   * Messages → prompt token ids, or null when the messages are known not to fit the context
   * without tokenizing them (a byte bound), which spares tokenizing a long conversation.
   */
  readonly encode: (messages: readonly ChatMessage[]) => Promise<number[] | null>;
}

// The decision as a generator: it yields the messages it needs encoded and gets their ids back
// (null: certainly longer than the context), so one algorithm serves sync and async encoders.
function* fitSteps(
  messages: readonly ChatMessage[],
  contextLength: number,
  maxTokens: number,
  policy: ContextShiftPolicy,
  countTokens: ((m: readonly ChatMessage[]) => number) | null,
  oneTokenPerMessage: boolean,
): Generator<readonly ChatMessage[], ContextFit, number[] | null> {
  // Candidates that certainly do not fit are not rendered (null: longer than the context).
  function* measure(candidate: readonly ChatMessage[]): Generator<readonly ChatMessage[], number[] | null, number[] | null> {
    if (oneTokenPerMessage && candidate.length >= contextLength) return null;
    return yield candidate;
  }
  const full = yield* measure(messages);
  const room = answerRoom(contextLength, maxTokens);
  const budget = contextLength - room;
  const length = (ids: number[] | null): number => ids?.length ?? Number.POSITIVE_INFINITY;
  const fitted = (kept: readonly ChatMessage[], keptIds: number[]): ContextFit => ({
    messages: kept,
    ids: keptIds,
    droppedMessages: Math.max(0, messages.length - kept.length),
    promptTokensBefore: full?.length ?? null,
  });
  const shown = (ids: number[] | null): number | string => ids?.length ?? `more than ${contextLength}`;
  if (full !== null && full.length <= budget) return fitted(messages, full);

  if (policy === "error") {
    if (full !== null && full.length < contextLength) return fitted(messages, full);
    throw overflow(
      'the conversation does not fit in the context window, and the context policy is "error"',
      shown(full),
      contextLength,
      'Start a new conversation, use contextShift: "drop-oldest" to drop the oldest turns, or load the model with a larger contextLength',
    );
  }

  if (typeof policy === "function") {
    if (countTokens === null || full === null) throw new Error("unreachable: custom policies run synchronously");
    const kept = checkMessages(policy(messages, { contextLength, promptTokens: full.length, answerRoom: room, maxPromptTokens: budget, countTokens }));
    const keptIds = yield* measure(kept);
    if (keptIds === null || keptIds.length >= contextLength) {
      throw overflow(
        "the messages the contextShift function returned still do not fit in the context window",
        shown(keptIds),
        contextLength,
        "Return fewer or shorter messages from the contextShift function, or load the model with a larger contextLength",
      );
    }
    return fitted(kept, keptIds);
  }

  // drop-oldest: the smallest number of whole turns whose removal leaves the answer room.
  const turns = droppableTurns(messages);
  let kept = withoutTurns(messages, turns, turns.length);
  let ids = turns.length === 0 ? full : yield* measure(kept);
  if (ids === null || ids.length >= contextLength) {
    throw overflow(
      turns.length > 0
        ? `the newest message does not fit in the context window even after dropping all ${turns.length} older turn${turns.length === 1 ? "" : "s"}`
        : "the newest message does not fit in the context window",
      shown(ids),
      contextLength,
      "Shorten the newest message or the system prompt, or load the model with a larger contextLength",
    );
  }
  if (ids.length <= budget) {
    // Invariant: dropping `high` turns fits the budget, dropping `low` does not.
    let low = 0;
    let high = turns.length;
    while (high - low > 1) {
      const middle = (low + high) >> 1;
      const candidate = withoutTurns(messages, turns, middle);
      const candidateIds = yield* measure(candidate);
      if (length(candidateIds) <= budget) {
        high = middle;
        kept = candidate;
        ids = candidateIds!;
      } else low = middle;
    }
  }
  return fitted(kept, ids);
}

/**
 * Fits a conversation into the context window with a {@link ContextShiftPolicy}: renders it, and
 * when the prompt leaves less than {@link answerRoom} tokens free, applies the policy. With
 * `"drop-oldest"` it drops the fewest whole oldest turns that leave that room (found by bisection,
 * so a long conversation costs a few renders, not one per turn); when even dropping every older
 * turn does not leave the room, it runs with all of them dropped as long as the prompt leaves at
 * least one token. Throws `ENGINE_CONTEXT_OVERFLOW` when the system prompt and newest message
 * alone fill the context, and `ENGINE_BAD_OPTION` for a policy that is neither a name nor a function.
 * {@link Engine.chat} and {@link Session.chat} call it; servers that render chats themselves can too.
 *
 * @example
 * ```ts
 * const fit = fitChatToContext(messages, {
 *   contextLength: engine.contextLength,
 *   maxTokens: 256,
 *   encode: (m) => engine.tokenizer!.encodeChat(m),
 * });
 * if (fit.droppedMessages > 0) console.warn(`dropped the ${fit.droppedMessages} oldest messages`);
 * ```
 */
export function fitChatToContext(messages: readonly ChatMessage[], options: FitChatOptions): ContextFit {
  const policy = checkContextShift(options.policy);
  const steps = fitSteps(messages, options.contextLength, options.maxTokens, policy, (m) => options.encode(m).length, options.oneTokenPerMessage === true);
  let step = steps.next();
  while (step.done !== true) step = steps.next(options.encode(step.value));
  return step.value;
}

/**
 * {@link fitChatToContext} with an asynchronous encoder (one that tokenizes in slices, or knows
 * from the byte length alone that a text cannot fit): the same decisions, for the named policies,
 * with an event-loop turn between one candidate's encoding and the next.
 *
 * @example
 * ```ts
 * const fit = await fitChatToContextAsync(messages, {
 *   contextLength: engine.contextLength,
 *   maxTokens: 256,
 *   encode: async (m) => engine.tokenizer!.encodeChat(m),
 * });
 * ```
 */
export async function fitChatToContextAsync(messages: readonly ChatMessage[], options: FitChatAsyncOptions): Promise<ContextFit> {
  const policy = checkContextShift(options.policy);
  if (typeof policy === "function") {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "fitChatToContextAsync takes a named context policy", {
      field: "contextShift",
      expected: `${CONTEXT_SHIFT_POLICIES.map((p) => `"${p}"`).join(" or ")}`,
      actual: "a function",
      hint: "Use fitChatToContext (synchronous) for a custom policy function",
    });
  }
  const steps = fitSteps(messages, options.contextLength, options.maxTokens, policy, null, options.oneTokenPerMessage === true);
  let step = steps.next();
  let first = true;
  while (step.done !== true) {
    // Each candidate is rendered synchronously: let other work run between them.
    if (!first) await yieldToLoop();
    first = false;
    step = steps.next(await options.encode(step.value));
  }
  return step.value;
}
