// Ollama's API beside OpenAI's: /api/chat and /api/generate (NDJSON or JSON), /api/tags, /api/ps, /api/show, /api/version.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import type { Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "../errors.js";
import { serveGeneration } from "../generation.js";
import { writeJson } from "../http-answer.js";
import { ollamaAnswer, ollamaLoadAnswer, type OllamaRoute } from "../ollama-answer.js";
import { parseOllamaChat, parseOllamaGenerate } from "../ollama-request.js";
import { ignoredFieldsHeader } from "../parse-request.js";
import { readJsonBody } from "../read-body.js";
import { clipText, stringField } from "../request-fields.js";
import type { ServerState } from "../server-state.js";
import type { EngineRoute, PlainRoute, RouteCall, RouteGroup, RouteResult } from "./route.js";

/** The tag Ollama clients add to a model name; `name` and `name:latest` are the same model here. */
const TAG = "latest";
/** Ollama's `expires_at` for a model that never unloads (what it reports for `keep_alive: -1`). */
const NEVER = "2318-11-29T00:00:00Z";

/** This server package's version (what `/api/version` reports): its package.json, next to dist/ or two up from src/routes/. */
const VERSION: string = (() => {
  for (const path of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@halo/server" && pkg.version !== undefined) return pkg.version;
    } catch {
      // not there from this file: the other place
    }
  }
  return "0.0.0";
})();

/**
 * Refuses (`SERVER_UNKNOWN_MODEL`, 404) a model other than the one served; Ollama clients name it `id` or `id:latest`.
 * @internal
 */
export function checkOllamaModel(state: ServerState, requested: string | undefined): void {
  const id = state.modelId();
  if (requested === undefined || requested === id || requested === `${id}:${TAG}`) return;
  throw new HaloError(ServerErrorCode.SERVER_UNKNOWN_MODEL, `model '${clipText(requested, 64)}' not found`, {
    field: "model",
    expected: `"${id}" or "${id}:${TAG}" (see GET /api/tags)`,
    actual: requested.length > 64 ? `a ${requested.length}-character name` : requested,
    hint: "This server serves the one model it was started with; start another `halo serve` for another model",
  });
}

/** Weights in a model of this shape (embedding, layers, untied head), as Ollama's `parameter_size` counts them. */
function parameterCount(engine: Engine): number {
  const c = engine.config;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const layer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize + q + c.intermediateSize;
  return c.vocabSize * c.hiddenSize * (c.tiedEmbeddings ? 1 : 2) + c.numLayers * layer + c.hiddenSize;
}

/** `2.4B`, `135M`: Ollama's way of writing a parameter count. */
function parameterSize(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`;
  if (count >= 1e6) return `${Math.round(count / 1e6)}M`;
  return `${Math.round(count / 1e3)}K`;
}

interface FileFacts {
  readonly size: number;
  readonly modified: Date;
  readonly digest: string;
}

/**
 * Size and time of the model's file (a snapshot directory: its files together). The digest is a SHA-256 of the file's
 * path, size and time — an identity that changes when the file does, not a hash of its bytes (hashing 1.2 GB per
 * listing would cost seconds).
 */
function fileFacts(source: string): FileFacts {
  try {
    const path = resolve(source);
    const stat = statSync(path);
    let size = stat.size;
    if (stat.isDirectory()) {
      size = 0;
      for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isFile()) size += statSync(join(path, entry.name)).size;
    }
    const digest = createHash("sha256").update(`${path}\0${size}\0${stat.mtimeMs}`).digest("hex");
    return { size, modified: stat.mtime, digest };
  } catch {
    return { size: 0, modified: new Date(0), digest: createHash("sha256").update(source).digest("hex") };
  }
}

function details(engine: Engine): Record<string, unknown> {
  const format = extname(engine.source).slice(1).toLowerCase() || "safetensors";
  return {
    parent_model: "",
    format,
    family: engine.config.architecture,
    families: [engine.config.architecture],
    parameter_size: parameterSize(parameterCount(engine)),
    quantization_level: "TERNARY",
  };
}

/** The served model as `/api/tags` and `/api/ps` list it. */
function listed(state: ServerState, engine: Engine): Record<string, unknown> {
  const name = `${state.modelId() ?? "halo"}:${TAG}`;
  const facts = fileFacts(engine.source);
  return { name, model: name, modified_at: facts.modified.toISOString(), size: facts.size, digest: facts.digest, details: details(engine) };
}

function get(name: string, path: string, handle: (call: RouteCall, engine: Engine) => Record<string, unknown>): readonly [string, EngineRoute] {
  return [
    path,
    {
      name,
      method: "GET",
      public: false,
      needsEngine: true,
      async handle(call, engine) {
        writeJson(call.res, 200, handle(call, engine), call.headers);
        return { status: 200 };
      },
    },
  ];
}

/**
 * Ollama's API (the routes Open WebUI's Ollama mode, the `ollama` npm client and tools built on it call): generation on
 * `/api/chat` and `/api/generate` through the same admission queue, limits and counters as the OpenAI routes; the served
 * model on `/api/tags`, `/api/ps` and `/api/show`; `/api/version`. Errors are Ollama's `{ "error": "…" }` with the
 * same HTTP statuses as the OpenAI routes (the request handler writes them for every `/api/` path).
 * @internal
 */
export function ollamaRoutes(state: ServerState, shutdownSignal: AbortSignal): RouteGroup {
  const version: PlainRoute = {
    name: "ollama-version",
    method: "GET",
    public: true,
    needsEngine: false,
    async handle({ res, headers }) {
      writeJson(res, 200, { version: VERSION }, headers);
      return { status: 200 };
    },
  };
  const generation = (route: OllamaRoute): EngineRoute => ({
    name: `ollama-${route}`,
    method: "POST",
    public: false,
    needsEngine: true,
    async handle({ req, res, headers, arrivedAt }: RouteCall, engine: Engine): Promise<RouteResult> {
      const body = await readJsonBody(req, state.settings.maxBodyBytes);
      const parsed =
        route === "chat"
          ? parseOllamaChat(body, engine.contextLength)
          : parseOllamaGenerate(body, engine.contextLength, engine.config.vocabSize, (text) => engine.tokenize(text, { addSpecialTokens: false }));
      checkOllamaModel(state, parsed.model);
      if (parsed.ignoredFields.length > 0) headers["x-halo-ignored-fields"] = ignoredFieldsHeader(parsed.ignoredFields);
      if (parsed.load) {
        writeJson(res, 200, ollamaLoadAnswer(route, `${state.modelId() ?? "halo"}:${TAG}`), headers);
        return { status: 200 };
      }
      const context = { ...state.generationContext(engine, shutdownSignal), modelId: `${state.modelId() ?? "halo"}:${TAG}` };
      const outcome = await serveGeneration(context, req, res, parsed, headers, arrivedAt, ollamaAnswer(route, arrivedAt));
      return { ...outcome, stream: parsed.stream };
    },
  });
  const show: EngineRoute = {
    name: "ollama-show",
    method: "POST",
    public: false,
    needsEngine: true,
    async handle({ req, res, headers }, engine) {
      const body = await readJsonBody(req, state.settings.maxBodyBytes);
      // Older clients send `name`.
      checkOllamaModel(state, stringField(body, "model") ?? stringField(body, "name"));
      const c = engine.config;
      const arch = c.architecture;
      const facts = fileFacts(engine.source);
      writeJson(
        res,
        200,
        {
          license: "",
          modelfile: `# served by halo ${VERSION}\nFROM ${engine.source}\n`,
          parameters: "",
          template: engine.chatTemplate.source,
          system: "",
          details: details(engine),
          model_info: {
            "general.architecture": arch,
            "general.parameter_count": parameterCount(engine),
            [`${arch}.context_length`]: engine.contextLength,
            [`${arch}.embedding_length`]: c.hiddenSize,
            [`${arch}.feed_forward_length`]: c.intermediateSize,
            [`${arch}.block_count`]: c.numLayers,
            [`${arch}.attention.head_count`]: c.numHeads,
            [`${arch}.attention.head_count_kv`]: c.numKvHeads,
            [`${arch}.attention.key_length`]: c.headDim,
            [`${arch}.rope.freq_base`]: c.ropeTheta,
            [`${arch}.vocab_size`]: c.vocabSize,
          },
          capabilities: engine.canEmbed ? ["completion", "embedding"] : ["completion"],
          modified_at: facts.modified.toISOString(),
        },
        headers,
      );
      return { status: 200 };
    },
  };
  return {
    exact: [
      ["/api/version", version],
      get("ollama-tags", "/api/tags", (_call, engine) => ({ models: [listed(state, engine)] })),
      get("ollama-ps", "/api/ps", (_call, engine) => ({ models: [{ ...listed(state, engine), expires_at: NEVER, size_vram: 0 }] })),
      ["/api/show", show],
      ["/api/chat", generation("chat")],
      ["/api/generate", generation("generate")],
    ],
  };
}
