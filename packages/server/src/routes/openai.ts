// The OpenAI generation routes: POST /v1/chat/completions and /v1/completions (also without /v1), streamed or whole.
import type { Engine } from "@halo/engine";
import { serveGeneration } from "../generation.js";
import { ignoredFieldsHeader, parseChatRequest, parseCompletionRequest } from "../parse-request.js";
import { readJsonBody } from "../read-body.js";
import type { ServerState } from "../server-state.js";
import { checkModel } from "./models.js";
import type { EngineRoute, RouteCall, RouteGroup, RouteResult } from "./route.js";

/**
 * The chat and text completion routes: each reads and validates its body, checks `model`, then
 * runs the generation through the server's admission queue (`serveGeneration`).
 * @internal
 */
export function openAiRoutes(state: ServerState, shutdownSignal: AbortSignal): RouteGroup {
  const generation = (kind: "chat" | "completions"): EngineRoute => ({
    name: kind,
    method: "POST",
    public: false,
    needsEngine: true,
    async handle({ req, res, headers, arrivedAt }: RouteCall, engine: Engine): Promise<RouteResult> {
      const body = await readJsonBody(req, state.settings.maxBodyBytes);
      const vocabSize = engine.config.vocabSize;
      const parsed = kind === "chat" ? parseChatRequest(body, vocabSize) : parseCompletionRequest(body, vocabSize);
      checkModel(state, parsed.model);
      if (parsed.ignoredFields.length > 0) headers["x-halo-ignored-fields"] = ignoredFieldsHeader(parsed.ignoredFields);
      const outcome = await serveGeneration(state.generationContext(engine, shutdownSignal), req, res, parsed, headers, arrivedAt);
      return { ...outcome, ...(parsed.user !== undefined ? { user: parsed.user } : {}), stream: parsed.stream };
    },
  });
  const chat = generation("chat");
  const completions = generation("completions");
  return {
    exact: [
      ["/v1/chat/completions", chat],
      ["/chat/completions", chat],
      ["/v1/completions", completions],
      ["/completions", completions],
    ],
  };
}
