// Embeddings: OpenAI's POST /v1/embeddings and Ollama's POST /api/embed (and its older /api/embeddings), through the
// admission queue like generations, computed by Engine.embed (mean-pooled, output-normed final hidden states).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EmbedResult, Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "../errors.js";
import { watchRequest, type GenerationContext } from "../generation.js";
import { writeJson } from "../http-answer.js";
import { ignoredFieldsHeader } from "../parse-request.js";
import { readJsonBody } from "../read-body.js";
import { badField, booleanField, checkKnownFields, numberField, objectField, stringField, unsupported, type JsonObject } from "../request-fields.js";
import type { ServerState } from "../server-state.js";
import { checkModel } from "./models.js";
import { checkOllamaModel } from "./ollama.js";
import type { EngineRoute, RouteGroup, RouteResult } from "./route.js";

/** The most inputs one request embeds (OpenAI's limit). */
export const MAX_EMBED_INPUTS = 2048;
const OPENAI_FIELDS: ReadonlySet<string> = new Set(["input", "model", "encoding_format", "dimensions", "user"]);
const OLLAMA_FIELDS: ReadonlySet<string> = new Set(["input", "model", "truncate", "options", "dimensions"]);
const OLLAMA_LEGACY_FIELDS: ReadonlySet<string> = new Set(["prompt", "model", "options"]);
const OLLAMA_IGNORED: ReadonlySet<string> = new Set(["keep_alive"]);

type Input = string | readonly number[];

function isIds(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every((id) => typeof id === "number" && Number.isInteger(id) && id >= 0);
}

/** OpenAI's `input`: a string, strings, token ids, or lists of token ids (no empty ones). */
function openAiInputs(body: JsonObject): Input[] {
  const input = body["input"];
  if (typeof input === "string") {
    if (input.length === 0) throw badField("input", "a non-empty string, strings, or token ids", input);
    return [input];
  }
  if (isIds(input)) return [input];
  if (Array.isArray(input) && input.length > 0 && input.length <= MAX_EMBED_INPUTS) {
    return input.map((item: unknown, i) => {
      if ((typeof item === "string" && item.length > 0) || isIds(item)) return item;
      throw badField(`input[${i}]`, "a non-empty string or a non-empty array of token ids", item);
    });
  }
  throw badField("input", `a non-empty string, or 1 to ${MAX_EMBED_INPUTS} strings or token-id arrays`, input);
}

/** Ollama's `input` (`/api/embed`): a string or strings. */
function ollamaInputs(body: JsonObject): Input[] {
  const input = body["input"];
  if (typeof input === "string" && input.length > 0) return [input];
  if (Array.isArray(input) && input.length > 0 && input.length <= MAX_EMBED_INPUTS && input.every((s) => typeof s === "string" && s.length > 0))
    return input as string[];
  throw badField("input", `a non-empty string, or 1 to ${MAX_EMBED_INPUTS} non-empty strings`, input);
}

/** `dimensions` other than the model's hidden size would need a reduction this server does not do. */
function checkDimensions(body: JsonObject, engine: Engine): void {
  const dimensions = numberField(body, "dimensions", { integer: true, min: 1 });
  if (dimensions !== undefined && dimensions !== engine.config.hiddenSize) {
    throw unsupported("dimensions", `embeddings of the model's own size only (${engine.config.hiddenSize})`, dimensions, "Leave dimensions out");
  }
}

function checkEngine(engine: Engine): void {
  if (!engine.canEmbed) {
    throw new HaloError(ServerErrorCode.SERVER_UNSUPPORTED, `embeddings need hidden states, which the ${engine.backend} backend does not return`, {
      field: "input",
      expected: "a server whose backend returns hidden rows (cpu, reference)",
      actual: `the ${engine.backend} backend`,
      hint: "Serve the model on the cpu or reference backend (halo serve --backend cpu)",
    });
  }
}

/**
 * Runs `inputs` through Engine.embed once the admission queue lets the request in, cancelled when the client leaves,
 * the server shuts down or the request's time runs out.
 */
async function embedAdmitted(
  context: GenerationContext,
  req: IncomingMessage,
  res: ServerResponse,
  inputs: Input[],
  truncate: boolean,
  arrivedAt: number,
  normalize = true,
): Promise<{ result: EmbedResult; queuedMs: number }> {
  const watch = watchRequest(context, res, arrivedAt);
  let release: (() => void) | null = null;
  try {
    release = await context.admission.enter(watch.signal);
    const queuedMs = performance.now() - arrivedAt;
    const result = await context.engine.embed(inputs, { truncate, normalize, signal: watch.signal });
    context.hooks.promptProcessed(result.promptTokens);
    return { result, queuedMs };
  } catch (error) {
    if (watch.signal.aborted && watch.signal.reason instanceof HaloError) throw watch.signal.reason;
    throw error;
  } finally {
    release?.();
    watch.dispose();
  }
}

/** An embedding as OpenAI's `base64` encoding writes it: the float32 values' little-endian bytes. */
function base64Of(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64");
}

/**
 * `POST /v1/embeddings` (OpenAI's shape, `encoding_format` float or base64), `POST /api/embed` (Ollama's: unit-length
 * vectors, `truncate` default true) and `POST /api/embeddings` (Ollama's older route: one `prompt`, the mean without
 * unit scaling, as Ollama returned it).
 * @internal
 */
export function embeddingRoutes(state: ServerState, shutdownSignal: AbortSignal): RouteGroup {
  const openAi: EngineRoute = {
    name: "embeddings",
    method: "POST",
    public: false,
    needsEngine: true,
    async handle({ req, res, headers, arrivedAt }, engine): Promise<RouteResult> {
      const body = await readJsonBody(req, state.settings.maxBodyBytes);
      checkKnownFields(body, OPENAI_FIELDS);
      checkModel(state, stringField(body, "model"));
      const inputs = openAiInputs(body);
      const format = stringField(body, "encoding_format") ?? "float";
      if (format !== "float" && format !== "base64") throw badField("encoding_format", '"float" or "base64"', format);
      checkDimensions(body, engine);
      checkEngine(engine);
      const { result, queuedMs } = await embedAdmitted(state.generationContext(engine, shutdownSignal), req, res, inputs, false, arrivedAt);
      writeJson(
        res,
        200,
        {
          object: "list",
          data: result.embeddings.map((vector, index) => ({
            object: "embedding",
            index,
            embedding: format === "base64" ? base64Of(vector) : Array.from(vector),
          })),
          model: state.modelId(),
          usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
        },
        headers,
      );
      return { status: 200, promptTokens: result.promptTokens, completionTokens: 0, queuedMs, finishReason: "embedding" };
    },
  };
  const ollama = (legacy: boolean): EngineRoute => ({
    name: legacy ? "ollama-embeddings" : "ollama-embed",
    method: "POST",
    public: false,
    needsEngine: true,
    async handle({ req, res, headers, arrivedAt }, engine): Promise<RouteResult> {
      const body = await readJsonBody(req, state.settings.maxBodyBytes);
      const ignored = checkKnownFields(body, legacy ? OLLAMA_LEGACY_FIELDS : OLLAMA_FIELDS, OLLAMA_IGNORED);
      checkOllamaModel(state, stringField(body, "model"));
      const options = objectField(body, "options");
      if (options !== undefined && Object.keys(options).length > 0) ignored.push(...Object.keys(options).map((key) => `options.${key}`));
      if (ignored.length > 0) headers["x-halo-ignored-fields"] = ignoredFieldsHeader(ignored);
      let inputs: Input[];
      if (legacy) {
        const prompt = stringField(body, "prompt");
        if (prompt === undefined || prompt.length === 0) throw badField("prompt", "a non-empty string", body["prompt"]);
        inputs = [prompt];
      } else {
        inputs = ollamaInputs(body);
        checkDimensions(body, engine);
      }
      checkEngine(engine);
      const truncate = legacy ? true : (booleanField(body, "truncate") ?? true);
      const { result, queuedMs } = await embedAdmitted(state.generationContext(engine, shutdownSignal), req, res, inputs, truncate, arrivedAt, !legacy);
      const answer = legacy
        ? { embedding: Array.from(result.embeddings[0]!) }
        : {
            model: `${state.modelId() ?? "halo"}:latest`,
            embeddings: result.embeddings.map((vector) => Array.from(vector)),
            total_duration: Math.round((performance.now() - arrivedAt) * 1e6),
            load_duration: 0,
            prompt_eval_count: result.promptTokens,
          };
      writeJson(res, 200, answer, headers);
      return { status: 200, promptTokens: result.promptTokens, completionTokens: 0, queuedMs, finishReason: "embedding" };
    },
  });
  return {
    exact: [
      ["/v1/embeddings", openAi],
      ["/embeddings", openAi],
      ["/api/embed", ollama(false)],
      ["/api/embeddings", ollama(true)],
    ],
  };
}
