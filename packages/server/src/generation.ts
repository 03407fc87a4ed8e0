// Runs one chat or text completion request: prompt check, admission, engine stream, SSE or JSON answer.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ChatMessage, Engine, GenerateEvent, RequestEndEvent } from "@halo/engine";
import { HaloError } from "@halo/errors";
import type { AdmissionQueue } from "./admission-queue.js";
import { CONTEXT_DROPPED_HEADER, contextReport, fitChatRequest, type ContextReport, type ServerContextShift } from "./chat-context.js";
import { ServerErrorCode } from "./errors.js";
import { toOpenAiError } from "./openai-error.js";
import {
  appendCompletionLogprob,
  chatLogprob,
  emptyCompletionLogprobs,
  speculativeOf,
  timingsOf,
  usageOf,
  type ChatLogprob,
  type SpeculativeReport,
} from "./openai-shapes.js";
import type { ParsedRequest } from "./parse-request.js";
import { encodeChatPromptAsync, encodeTextPromptAsync } from "./prompt-tokens.js";
import { completionId } from "./request-id.js";
import { sendSseComment, sendSseData, sendSseDone, startSse } from "./sse.js";

/** Counters the server keeps while generations run. @internal */
export interface GenerationHooks {
  /** Prompt tokens were processed (reported at the first token). */
  promptProcessed(tokens: number): void;
  /** Tokens were generated. */
  tokensGenerated(tokens: number): void;
  /** Seconds from request to first token. */
  firstToken(seconds: number): void;
  /** A generation finished normally after `ms`. */
  finished(ms: number): void;
  /** KV positions `sequence` (one object per running generation) holds now; 0 when it ended. */
  contextHeld(sequence: object, tokens: number): void;
  /** A chat was shortened to fit the context by dropping `count` messages. */
  messagesDropped(count: number): void;
  /** A generation failed with `error` after its answer started streaming (the server cannot see it otherwise). */
  streamFailed(error: unknown): void;
}

/** What a generation needs from its server. @internal */
export interface GenerationContext {
  readonly engine: Engine;
  readonly modelId: string;
  readonly admission: AdmissionQueue;
  readonly requestTimeoutMs: number;
  readonly defaultMaxTokens: number;
  readonly keepAliveMs: number;
  /** What a chat that does not fit the context does. */
  readonly contextShift: ServerContextShift;
  /** Aborted when a shutdown gives up waiting for running requests. */
  readonly shutdownSignal: AbortSignal;
  readonly hooks: GenerationHooks;
}

/** How a generation ended, for the access log. @internal */
export interface GenerationOutcome {
  readonly status: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly finishReason: string;
  readonly queuedMs: number;
}

/** Why a running generation was aborted. @internal */
export type AbortCause = "client" | "timeout" | "shutdown";

/** The `halo` extension field of an answer: the request's context use, and its speculative decoding counters when it drafted. @internal */
export type HaloReport = ContextReport & { readonly speculative?: SpeculativeReport };

/** What an answer writer works with: the engine's events of one admitted generation and the shared bookkeeping. @internal */
export interface AnswerRun {
  readonly context: GenerationContext;
  readonly res: ServerResponse;
  readonly request: ParsedRequest;
  readonly headers: Readonly<Record<string, string>>;
  readonly events: AsyncIterable<GenerateEvent>;
  /** The prompt's token ids as the model runs them. */
  readonly promptIds: readonly number[];
  /** Text to put before the answer (a completion's `echo`). */
  readonly echo: string;
  /** Every event goes through this first (counters, first-token time). */
  onEvent(event: GenerateEvent): void;
  /** Why the generation was aborted, once it was. */
  causeOf(): AbortCause | null;
  /** A streaming writer hands over its keep-alive timer, cleared when the generation ends. */
  setKeepAlive(timer: NodeJS.Timeout): void;
  /** The `halo` report of a finished generation. */
  report(end: RequestEndEvent): HaloReport;
}

/** How an answer went: its HTTP status and the request-end event when the engine got that far. @internal */
export interface Answer {
  readonly status: number;
  readonly end: RequestEndEvent | null;
}

/**
 * Writes one admitted generation's answer in an API's shape (OpenAI's SSE or JSON by default; Ollama's NDJSON): it reads
 * `run.events` to the end and returns how it answered. Throws only before its first byte.
 * @internal
 */
export type AnswerWriter = (run: AnswerRun) => Promise<Answer>;

// Text prompts are refused before tokenizing when their bytes cannot fit, and tokenized in slices that stop at the context (prompt-tokens.ts).
async function promptIds(context: GenerationContext, request: ParsedRequest): Promise<{ ids: number[]; echo: string; droppedMessages: number }> {
  const { engine } = context;
  if (request.kind === "chat") {
    // A conversation longer than the context drops its oldest turns (the server's contextShift policy).
    const encode = (messages: readonly ChatMessage[]): Promise<number[]> => encodeChatPromptAsync(engine, messages);
    const fit = await fitChatRequest(engine, request.messages, request.maxTokens ?? context.defaultMaxTokens, context.contextShift, encode);
    return { ids: fit.ids, echo: "", droppedMessages: fit.droppedMessages };
  }
  if (typeof request.prompt === "string") {
    return { ids: await encodeTextPromptAsync(engine, request.prompt), echo: request.echo ? request.prompt : "", droppedMessages: 0 };
  }
  const ids = [...request.prompt];
  return { ids, echo: request.echo ? engine.detokenize(ids, { skipSpecialTokens: true }) : "", droppedMessages: 0 };
}

function timeoutError(ms: number): HaloError {
  return new HaloError(ServerErrorCode.SERVER_TIMEOUT, "the request took longer than the server's per-request timeout and was cancelled", {
    expected: `at most ${ms} ms from arrival to the last token`,
    hint: "Ask for fewer tokens (max_tokens), retry when the server is less busy, or raise the timeout",
  });
}

function shutdownError(): HaloError {
  return new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down; the request was cancelled", {
    hint: "Retry against a running server",
  });
}

/**
 * Serves one generation request whose body is already validated. Throws (before any byte is
 * written) for a prompt that does not fit (`SERVER_CONTEXT_OVERFLOW`), a full queue
 * (`SERVER_QUEUE_FULL`, synchronously), a timeout or shutdown while queued, and engine refusals;
 * once the answer has started, failures are reported in the stream as `data: {"error":…}`
 * followed by `data: [DONE]`.
 * @internal
 */
export async function serveGeneration(
  context: GenerationContext,
  req: IncomingMessage,
  res: ServerResponse,
  request: ParsedRequest,
  headers: Readonly<Record<string, string>>,
  arrivedAt: number,
  writer: AnswerWriter = openAiAnswer,
): Promise<GenerationOutcome> {
  const { engine } = context;
  const speculative = request.options.speculative;
  if (speculative !== undefined && speculative !== false && engine.speculative === null) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, "this request asks for speculative decoding but the server's model runs without a drafter", {
      field: "speculative",
      expected: "false or absent (or a server started with a drafter: halo serve --speculative ngram|draft|medusa)",
      actual: JSON.stringify(speculative),
      hint: "Leave the speculative field out",
    });
  }
  const { ids, echo, droppedMessages } = await promptIds(context, request);
  if (droppedMessages > 0) context.hooks.messagesDropped(droppedMessages);
  const report = (end: RequestEndEvent): HaloReport => {
    const speculative = speculativeOf(end);
    return { ...contextReport(end, droppedMessages, engine.contextLength), ...(speculative !== undefined ? { speculative } : {}) };
  };
  const answerHeaders = request.kind === "chat" ? { ...headers, [CONTEXT_DROPPED_HEADER]: String(droppedMessages) } : headers;
  const field = request.kind === "chat" ? "messages" : "prompt";
  if (ids.length === 0) throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, "the prompt has no tokens", { field, expected: "at least one token" });
  if (ids.length >= engine.contextLength) {
    throw new HaloError(ServerErrorCode.SERVER_CONTEXT_OVERFLOW, "the prompt does not fit in the model's context window", {
      field,
      expected: `fewer than ${engine.contextLength} prompt tokens (room for at least one new token)`,
      actual: `${ids.length} tokens`,
      hint: "Shorten the prompt, or start the server with a larger context length",
    });
  }

  const controller = new AbortController();
  let cause: AbortCause | null = null;
  const abort = (why: AbortCause, reason: unknown): void => {
    if (cause !== null) return;
    cause = why;
    controller.abort(reason);
  };
  const onClose = (): void => {
    if (!res.writableEnded) abort("client", new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, "the client disconnected"));
  };
  res.on("close", onClose);
  const onShutdown = (): void => abort("shutdown", shutdownError());
  if (context.shutdownSignal.aborted) onShutdown();
  context.shutdownSignal.addEventListener("abort", onShutdown, { once: true });
  const remaining = Math.max(1, context.requestTimeoutMs - (performance.now() - arrivedAt));
  const timer = setTimeout(() => abort("timeout", timeoutError(context.requestTimeoutMs)), remaining);
  timer.unref();
  let keepAlive: NodeJS.Timeout | undefined;
  const cleanup = (): void => {
    clearTimeout(timer);
    if (keepAlive !== undefined) clearInterval(keepAlive);
    res.off("close", onClose);
    context.shutdownSignal.removeEventListener("abort", onShutdown);
  };

  let release: () => void;
  try {
    release = await context.admission.enter(controller.signal);
  } catch (error) {
    cleanup();
    if (cause === "client")
      return { status: 499, promptTokens: ids.length, completionTokens: 0, finishReason: "client_gone", queuedMs: performance.now() - arrivedAt };
    throw error;
  }
  const admittedAt = performance.now();
  let kvHeld = 0;
  const sequence = {};
  const holdKv = (n: number): void => {
    kvHeld += n;
    context.hooks.contextHeld(sequence, kvHeld);
  };
  try {
    const maxTokens = request.maxTokens ?? Math.max(1, Math.min(context.defaultMaxTokens, engine.contextLength - ids.length));
    // A chat stops where Engine.chat would (the template's stop strings join the request's).
    const options = request.kind === "chat" ? engine.withTemplateStops(request.options, engine.chatTemplate.source) : request.options;
    const events = engine.generate({ ...options, prompt: ids, maxTokens, signal: controller.signal });
    holdKv(ids.length);
    const run: RunState = { firstTokenAt: 0, counted: 0 };
    const onEvent = (event: GenerateEvent): void => {
      if (event.type !== "token-delta" || event.tokenId < 0) return;
      if (run.firstTokenAt === 0) {
        run.firstTokenAt = performance.now();
        context.hooks.firstToken((run.firstTokenAt - arrivedAt) / 1000);
        context.hooks.promptProcessed(ids.length);
      }
      run.counted++;
      context.hooks.tokensGenerated(1);
      holdKv(1);
    };
    const finishCounts = (end: RequestEndEvent | null): void => {
      if (end === null) return;
      if (run.firstTokenAt === 0 && end.usage.completionTokens > 0) context.hooks.promptProcessed(ids.length);
      const extra = end.usage.completionTokens - run.counted;
      if (extra > 0) context.hooks.tokensGenerated(extra);
    };
    const answer = await writer({
      context,
      res,
      request,
      headers: answerHeaders,
      events,
      promptIds: ids,
      echo,
      onEvent,
      causeOf: () => cause,
      setKeepAlive: (t) => (keepAlive = t),
      report,
    });
    finishCounts(answer.end);
    if (answer.end !== null && answer.end.finishReason !== "abort") context.hooks.finished(performance.now() - admittedAt);
    return {
      status: answer.status,
      promptTokens: ids.length,
      completionTokens: answer.end?.usage.completionTokens ?? 0,
      finishReason: answer.end?.finishReason === "abort" ? `abort:${cause ?? "unknown"}` : (answer.end?.finishReason ?? "error"),
      queuedMs: admittedAt - arrivedAt,
    };
  } finally {
    context.hooks.contextHeld(sequence, 0);
    release();
    cleanup();
  }
}

interface RunState {
  firstTokenAt: number;
  counted: number;
}

/** The error a generation aborted by the server (timeout, shutdown) answers with. @internal */
export function abortError(cause: AbortCause | null, context: GenerationContext): HaloError {
  return cause === "timeout" ? timeoutError(context.requestTimeoutMs) : shutdownError();
}

/** OpenAI's answers: SSE chunks when the request streams, one JSON body otherwise. */
const openAiAnswer: AnswerWriter = (run) =>
  run.request.stream
    ? streamAnswer(run.context, run.res, run.request, run.headers, run.events, run.echo, run.onEvent, run.causeOf, run.setKeepAlive, run.report)
    : jsonAnswer(run.context, run.res, run.request, run.headers, run.events, run.echo, run.onEvent, run.causeOf, run.report);

async function streamAnswer(
  context: GenerationContext,
  res: ServerResponse,
  request: ParsedRequest,
  headers: Readonly<Record<string, string>>,
  events: AsyncIterable<GenerateEvent>,
  echo: string,
  onEvent: (event: GenerateEvent) => void,
  causeOf: () => AbortCause | null,
  setKeepAlive: (timer: NodeJS.Timeout) => void,
  report: (end: RequestEndEvent) => HaloReport,
): Promise<Answer> {
  const chat = request.kind === "chat";
  const id = completionId(chat ? "chatcmpl" : "cmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = {
    id,
    object: chat ? "chat.completion.chunk" : "text_completion",
    created,
    model: context.modelId,
    system_fingerprint: `halo-${context.engine.backend}`,
  };
  const usageField = request.includeUsage ? { usage: null } : {};
  const chunk = (delta: Record<string, unknown>, logprobs: unknown, finishReason: string | null, extra: Record<string, unknown> = {}): unknown =>
    chat
      ? { ...base, choices: [{ index: 0, delta, logprobs, finish_reason: finishReason }], ...usageField, ...extra }
      : { ...base, choices: [{ text: delta["content"] ?? "", index: 0, logprobs, finish_reason: finishReason }], ...usageField, ...extra };

  startSse(res, headers);
  setKeepAlive(setInterval(() => sendSseComment(res, "keep-alive"), context.keepAliveMs).unref());
  if (chat) sendSseData(res, chunk({ role: "assistant", content: "" }, null, null));
  else if (echo.length > 0) sendSseData(res, chunk({ content: echo }, null, null));
  let offset = echo.length;
  let end: RequestEndEvent | null = null;
  try {
    for await (const event of events) {
      onEvent(event);
      if (event.type === "token-delta") {
        let logprobs: unknown = null;
        if (request.logprobs) {
          if (chat) {
            const entry = chatLogprob(context.engine, event);
            if (entry !== null) logprobs = { content: [entry], refusal: null };
          } else {
            const lp = emptyCompletionLogprobs();
            if (appendCompletionLogprob(context.engine, lp, event, offset)) logprobs = lp;
          }
        }
        if (event.text.length > 0 || logprobs !== null) sendSseData(res, chunk({ content: event.text }, logprobs, null));
        offset += event.text.length;
      } else if (event.type === "request-end") end = event;
    }
  } catch (error) {
    context.hooks.streamFailed(error);
    sendSseData(res, toOpenAiError(error).body);
    sendSseDone(res);
    return { status: 200, end };
  }
  if (end === null) {
    sendSseDone(res);
    return { status: 200, end };
  }
  if (end.finishReason === "abort") {
    const cause = causeOf();
    if (cause !== "client") {
      sendSseData(res, toOpenAiError(abortError(cause, context)).body);
      sendSseDone(res);
    }
    return { status: cause === "client" ? 499 : 200, end };
  }
  sendSseData(res, chunk({}, null, end.finishReason, { timings: timingsOf(end), halo: report(end) }));
  if (request.includeUsage) {
    // The usage chunk carries the request's speculative counters too (the last chunk a client reads).
    const speculative = speculativeOf(end);
    sendSseData(res, { ...base, choices: [], usage: usageOf(end), ...(speculative !== undefined ? { halo: { speculative } } : {}) });
  }
  sendSseDone(res);
  return { status: 200, end };
}

async function jsonAnswer(
  context: GenerationContext,
  res: ServerResponse,
  request: ParsedRequest,
  headers: Readonly<Record<string, string>>,
  events: AsyncIterable<GenerateEvent>,
  echo: string,
  onEvent: (event: GenerateEvent) => void,
  causeOf: () => AbortCause | null,
  report: (end: RequestEndEvent) => HaloReport,
): Promise<Answer> {
  const chat = request.kind === "chat";
  const chatLogprobs: ChatLogprob[] = [];
  const textLogprobs = emptyCompletionLogprobs();
  let offset = echo.length;
  let end: RequestEndEvent | null = null;
  for await (const event of events) {
    onEvent(event);
    if (event.type === "token-delta") {
      if (request.logprobs) {
        if (chat) {
          const entry = chatLogprob(context.engine, event);
          if (entry !== null) chatLogprobs.push(entry);
        } else appendCompletionLogprob(context.engine, textLogprobs, event, offset);
      }
      offset += event.text.length;
    } else if (event.type === "request-end") end = event;
  }
  if (end === null) throw new HaloError(ServerErrorCode.SERVER_INTERNAL, "the engine's stream ended without a request-end event");
  if (end.finishReason === "abort") {
    const cause = causeOf();
    if (cause === "client") return { status: 499, end };
    throw abortError(cause, context);
  }
  const common = {
    created: Math.floor(Date.now() / 1000),
    model: context.modelId,
    system_fingerprint: `halo-${context.engine.backend}`,
  };
  const body = chat
    ? {
        id: completionId("chatcmpl"),
        object: "chat.completion",
        ...common,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: end.text, refusal: null },
            logprobs: request.logprobs ? { content: chatLogprobs, refusal: null } : null,
            finish_reason: end.finishReason,
          },
        ],
        usage: usageOf(end),
        timings: timingsOf(end),
        halo: report(end),
      }
    : {
        id: completionId("cmpl"),
        object: "text_completion",
        ...common,
        choices: [{ text: echo + end.text, index: 0, logprobs: request.logprobs ? textLogprobs : null, finish_reason: end.finishReason }],
        usage: usageOf(end),
        timings: timingsOf(end),
        halo: report(end),
      };
  const text = JSON.stringify(body);
  res.writeHead(200, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
  res.end(text);
  return { status: 200, end };
}
