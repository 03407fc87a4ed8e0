// A chat request that fills the context: the server's context policy, and how the answer reports it (header and `halo` field).
import { fitChatToContextAsync, rendersEveryMessage, type ChatMessage, type ContextFit, type Engine, type RequestEndEvent } from "@halo/engine";
import { HaloError, isHaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

/**
 * What `/v1/chat/completions` does with a conversation that does not fit the context window with
 * room for the answer: `"drop-oldest"` (default) drops the oldest turns and keeps the system
 * prompt and the newest user message; `"error"` answers 400 `context_length_exceeded` when the
 * prompt leaves no room at all. See `fitChatToContext` in `@halo/engine`.
 *
 * @example
 * ```ts
 * createServer({ engine, contextShift: "error" });
 * ```
 */
export type ServerContextShift = "drop-oldest" | "error";

/**
 * The response header of `/v1/chat/completions` that says how many messages the server dropped
 * to fit the context (0 when none).
 *
 * @example
 * ```ts
 * const response = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers, body });
 * const dropped = Number(response.headers.get(CONTEXT_DROPPED_HEADER) ?? 0);
 * ```
 */
export const CONTEXT_DROPPED_HEADER = "x-halo-context-dropped";

/**
 * Fits a chat request's messages to the engine's context with `policy`. `encode` renders and
 * tokenizes; its `SERVER_CONTEXT_OVERFLOW` (a byte bound: the text cannot fit whatever its tokens)
 * means "too long" to the policy, which may still drop turns. When nothing fits, the refusal says
 * why in the server's words: the byte bound's own message when that decided, else the engine's.
 * @internal
 */
export async function fitChatRequest(
  engine: Engine,
  messages: readonly ChatMessage[],
  maxTokens: number,
  policy: ServerContextShift,
  encode: (messages: readonly ChatMessage[]) => Promise<number[]>,
): Promise<ContextFit> {
  let byteRefusal: unknown = null;
  const measured = async (candidate: readonly ChatMessage[]): Promise<number[] | null> => {
    try {
      const ids = await encode(candidate);
      byteRefusal = null;
      return ids;
    } catch (error) {
      if (!isHaloError(error) || error.code !== "SERVER_CONTEXT_OVERFLOW") throw error;
      byteRefusal = error;
      return null;
    }
  };
  try {
    // A built-in template renders every message to at least one token: candidates of contextLength messages or more are not rendered.
    return await fitChatToContextAsync(messages, {
      contextLength: engine.contextLength,
      maxTokens,
      policy,
      encode: measured,
      oneTokenPerMessage: rendersEveryMessage(engine.chatTemplate.source),
    });
  } catch (error) {
    if (!isHaloError(error) || error.code !== "ENGINE_CONTEXT_OVERFLOW") throw error;
    // The last candidate tried was the shortest; when the byte bound refused it, its message says more.
    if (byteRefusal !== null) throw byteRefusal;
    const dropping = policy === "drop-oldest";
    throw new HaloError(
      ServerErrorCode.SERVER_CONTEXT_OVERFLOW,
      dropping
        ? "the newest message does not fit in the model's context window, even after dropping every older turn"
        : "the conversation does not fit in the model's context window (this server does not drop old turns)",
      {
        field: "messages",
        expected: error.expected,
        actual: error.actual,
        hint: dropping
          ? "Shorten the newest message or the system prompt, or start the server with a larger context length"
          : "Send fewer or shorter messages, or start the server with --context-shift drop-oldest or a larger context length",
        cause: error,
      },
    );
  }
}

/**
 * The `halo` field of an answer: context use of the request (an extra top-level field of the JSON
 * body and of a stream's finish chunk; OpenAI clients ignore it).
 *
 * @example
 * ```ts
 * const body = await response.json();
 * if (body.halo?.context_full) console.warn("the answer was cut: the context is full");
 * ```
 */
export interface ContextReport {
  /** Messages the server dropped from the conversation to fit it (0 when none, and for completions). */
  readonly dropped_messages: number;
  /** KV positions the request used: prompt plus answer. */
  readonly context_tokens: number;
  readonly context_length: number;
  /** True when the answer was cut because the context was full (`finish_reason` is then `length`). */
  readonly context_full: boolean;
}

/** The `halo` field for a finished request. @internal */
export function contextReport(end: RequestEndEvent, droppedMessages: number, contextLength: number): ContextReport {
  return { dropped_messages: droppedMessages, context_tokens: end.contextTokens, context_length: contextLength, context_full: end.contextFull };
}
