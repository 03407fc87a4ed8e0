// Ollama's answer shapes: NDJSON lines while streaming, one JSON object otherwise, durations in nanoseconds.
import type { ServerResponse } from "node:http";
import type { RequestEndEvent } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";
import { abortError, type AnswerRun, type AnswerWriter } from "./generation.js";
import { toOpenAiError } from "./openai-error.js";

/** Which Ollama route answers: `/api/chat` puts text in `message.content`, `/api/generate` in `response`. @internal */
export type OllamaRoute = "chat" | "generate";

const NS_PER_MS = 1e6;

/** The fields every Ollama answer object starts with. */
function head(model: string): { model: string; created_at: string } {
  return { model, created_at: new Date().toISOString() };
}

/** One answer object carrying `text` (a streamed piece, or the whole answer). */
function textPart(route: OllamaRoute, model: string, text: string): Record<string, unknown> {
  return route === "chat" ? { ...head(model), message: { role: "assistant", content: text } } : { ...head(model), response: text };
}

/**
 * The closing fields of an Ollama answer: `done`, `done_reason` and the counts and durations (nanoseconds) Ollama reports;
 * `/api/generate` also returns `context`, the prompt's and the answer's token ids (a later `raw` request continues them).
 * @internal
 */
export function ollamaDone(run: AnswerRun, route: OllamaRoute, end: RequestEndEvent, arrivedAt: number): Record<string, unknown> {
  const t = end.timings;
  return {
    done: true,
    done_reason: end.finishReason,
    total_duration: Math.round((performance.now() - arrivedAt) * NS_PER_MS),
    load_duration: 0,
    prompt_eval_count: end.usage.promptTokens,
    prompt_eval_duration: Math.round(t.prefillMs * NS_PER_MS),
    eval_count: end.usage.completionTokens,
    eval_duration: Math.round(t.decodeMs * NS_PER_MS),
    ...(route === "generate" ? { context: [...run.promptIds, ...end.tokenIds] } : {}),
    halo: run.report(end),
  };
}

/**
 * The answer to Ollama's "load the model" request (no messages, or an empty prompt): the model is already loaded, so it
 * is done at once.
 * @internal
 */
export function ollamaLoadAnswer(route: OllamaRoute, model: string): Record<string, unknown> {
  return { ...textPart(route, model, ""), done: true, done_reason: "load" };
}

/** The body of an Ollama error: `{ error }` (what the `ollama` client throws), plus halo's stable code. @internal */
export function ollamaErrorBody(error: unknown): { status: number; body: { error: string; halo_code: string } } {
  const { status, body } = toOpenAiError(error);
  return { status, body: { error: body.error.message, halo_code: body.error.halo_code } };
}

function writeLine(res: ServerResponse, value: unknown): void {
  res.write(`${JSON.stringify(value)}\n`);
}

/**
 * The {@link AnswerWriter} of an Ollama route: with `stream` (Ollama's default) an `application/x-ndjson` answer of one
 * object per piece of text and a last one with `done: true`; without, one JSON object. A failure after the first line is
 * written as a line `{ "error": … }`, which the `ollama` client throws.
 * @internal
 */
export function ollamaAnswer(route: OllamaRoute, arrivedAt: number): AnswerWriter {
  return async (run) => {
    const { res, context } = run;
    const model = context.modelId;
    let end: RequestEndEvent | null = null;
    if (run.request.stream) {
      res.writeHead(200, { ...run.headers, "content-type": "application/x-ndjson", "cache-control": "no-cache" });
      res.flushHeaders();
      try {
        for await (const { event } of run.choices) {
          run.onEvent(event);
          if (event.type === "token-delta" && event.text.length > 0) writeLine(res, { ...textPart(route, model, event.text), done: false });
          else if (event.type === "request-end") end = event;
        }
      } catch (error) {
        context.hooks.streamFailed(error);
        writeLine(res, ollamaErrorBody(error).body);
        res.end();
        return { status: 200, end };
      }
      if (end !== null && end.finishReason === "abort") {
        const cause = run.causeOf();
        if (cause !== "client") writeLine(res, ollamaErrorBody(abortError(cause, context)).body);
        res.end();
        return { status: cause === "client" ? 499 : 200, end };
      }
      if (end !== null) writeLine(res, { ...textPart(route, model, ""), ...ollamaDone(run, route, end, arrivedAt) });
      res.end();
      return { status: 200, end };
    }
    for await (const { event } of run.choices) {
      run.onEvent(event);
      if (event.type === "request-end") end = event;
    }
    if (end === null) throw new HaloError(ServerErrorCode.SERVER_INTERNAL, "the engine's stream ended without a request-end event");
    if (end.finishReason === "abort") {
      const cause = run.causeOf();
      if (cause === "client") return { status: 499, end };
      throw abortError(cause, context);
    }
    const text = JSON.stringify({ ...textPart(route, model, end.text), ...ollamaDone(run, route, end, arrivedAt) });
    res.writeHead(200, { ...run.headers, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
    return { status: 200, end };
  };
}
