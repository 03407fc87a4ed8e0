// createServer: the OpenAI-compatible HTTP server around one Engine (routes, limits, auth, CORS, logs, shutdown).
import { setMaxListeners } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, extname } from "node:path";
import type { Engine } from "@halo/engine";
import { HaloError, isHaloError } from "@halo/errors";
import type { Registry } from "prom-client";
import { AdmissionQueue } from "./admission-queue.js";
import { createApiKeyCheck } from "./api-keys.js";
import { createCorsPolicy, preflightHeaders } from "./cors.js";
import { createHostCheck } from "./host-check.js";
import type { ServerContextShift } from "./chat-context.js";
import { ServerErrorCode } from "./errors.js";
import { serveGeneration, type GenerationContext, type GenerationOutcome } from "./generation.js";
import { LiveRate } from "./live-rate.js";
import { LiveStatsFeed } from "./live-stats.js";
import { createJsonLogger, type Logger } from "./logger.js";
import { ServerMetrics } from "./metrics.js";
import { isModelFailure, toOpenAiError } from "./openai-error.js";
import { loadStaticAssets } from "./pages.js";
import { ignoredFieldsHeader, parseChatRequest, parseCompletionRequest } from "./parse-request.js";
import { detokenizeInSlices, longestTokenBytes, MAX_PIECES, piecesInSlices, tokenizeInSlices } from "./prompt-tokens.js";
import { readJsonBody } from "./read-body.js";
import { badField, booleanField, checkKnownFields, clipText, stringField } from "./request-fields.js";
import { requestIdOf } from "./request-id.js";
import { decodePathSegment, parseRequestTarget } from "./request-target.js";
import { setWriteTimeout, watchUnsentAnswer } from "./sse.js";

/** Options of {@link createServer}. */
export interface CreateServerOptions {
  /**
   * The engine, or a promise of it: until it resolves `/health` answers 503 "Loading model" and
   * generation routes answer 503 `model_loading`.
   */
  readonly engine: Engine | Promise<Engine>;
  /** The id clients send as `model` and `/v1/models` lists. Default: the model file's name without extension. */
  readonly modelId?: string;
  /** A note shown on the page and in `/v1/models` (`"demo: random weights"`). */
  readonly modelLabel?: string;
  /** Generations that run at once; must equal the engine's `maxSequences`. Default 4. */
  readonly parallel?: number;
  /** Requests that may wait for a free sequence; more get 429 with `Retry-After`. Default 64. */
  readonly maxQueue?: number;
  /** Longest a generation request may take, queue wait included, in ms. Default 600 000. */
  readonly requestTimeoutMs?: number;
  /** Largest request body, in bytes. Default 4 MiB. */
  readonly maxBodyBytes?: number;
  /** Accepted `Authorization: Bearer` keys. Empty (default): no authentication. `/`, the page and `/health` never need a key. */
  readonly apiKeys?: readonly string[];
  /** Browser origins allowed besides the server's own (`"*"`, exact origins, `*` patterns). Default none. */
  readonly corsOrigins?: readonly string[];
  /**
   * `Host` names accepted besides loopback names and the address a request arrived at, checked
   * before anything else when no API key is configured (a DNS-rebinding guard): exact names
   * (`"halo.example.com"`, the public name behind a reverse proxy), `".example.com"` for a domain
   * and its subdomains, or `"*"` for any. Default none.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Milliseconds a streaming answer may wait for a client that does not read it (writes buffered
   * and not drained); then the connection is closed and the sequence freed. Default 30 000.
   */
  readonly writeTimeoutMs?: number;
  /** Structured logger. Default: JSON lines on stderr at `info`. */
  readonly logger?: Logger;
  /** `max_tokens` when a request gives none (also capped by the context). Default 1024. */
  readonly defaultMaxTokens?: number;
  /** Milliseconds between `/_live/stats` records. Default 1500. */
  readonly statsIntervalMs?: number;
  /** Milliseconds between SSE keep-alive comments on generation streams. Default 15 000. */
  readonly keepAliveMs?: number;
  /**
   * What `/v1/chat/completions` does when a conversation does not fit the context window with room
   * for the answer: `"drop-oldest"` (default) drops the oldest turns, keeps the system prompt and
   * says so (header `x-halo-context-dropped`, body field `halo.dropped_messages`); `"error"`
   * answers 400 `context_length_exceeded` when no token would fit.
   */
  readonly contextShift?: ServerContextShift;
  /** Dispose the engine when the server closes. Default false (the caller owns it). */
  readonly disposeEngineOnClose?: boolean;
}

/** A snapshot of the server (what `/_live/stats` streams and the page shows). */
export interface ServerStats {
  readonly status: "loading" | "ready" | "failed" | "shutting-down";
  readonly model: string | null;
  readonly label: string | null;
  readonly backend: string | null;
  /** Backends passed over at load, with why and the fix (empty when the first choice runs; see `Engine.skippedBackends`). */
  readonly skippedBackends: readonly { readonly name: string; readonly reason: string }[];
  readonly contextLength: number | null;
  /** The chat template `/v1/chat/completions` renders with, and where it came from (see `Engine.chatTemplate`); null while loading. */
  readonly chatTemplate: { readonly name: string; readonly origin: string; readonly reason: string } | null;
  readonly parallel: number;
  readonly maxQueue: number;
  /** Generations running now. */
  readonly active: number;
  /** Requests waiting for a slot. */
  readonly queued: number;
  /** Tokens generated per second over the last 2 s, all sequences together. */
  readonly decodeTokensPerSecond: number;
  /** Prompt tokens processed per second over the last 2 s. */
  readonly promptTokensPerSecond: number;
  /** KV positions in use / available. */
  readonly kvUsage: number;
  /** Generation requests completed since start. */
  readonly completedRequests: number;
  readonly generatedTokens: number;
  readonly promptTokens: number;
  readonly uptimeSeconds: number;
  /** Whether API requests need a key. */
  readonly auth: boolean;
  /** KV positions each running generation holds now (prompt + answer so far), out of `contextLength`. */
  readonly contextTokens: readonly number[];
  /** Messages dropped from chats to fit the context since start. */
  readonly droppedMessages: number;
}

/** The address a server listens on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
}

/** What {@link createServer} returns. */
export interface HaloServer {
  /** The node HTTP server (not listening until {@link HaloServer.listen}). */
  readonly server: Server;
  /** The request handler, for mounting in another server or testing without a socket. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Listens on `host:port` (default 127.0.0.1:8080; port 0 picks a free one). */
  listen(port?: number, host?: string): Promise<ListenAddress>;
  /**
   * Graceful shutdown: refuses new requests (503), fails queued ones (503), lets running
   * generations finish for up to `graceMs` (default 10 000), then cancels the rest (their streams
   * end with an error record and `[DONE]`), closes every connection and, when configured,
   * disposes the engine. Idempotent; a later call with a shorter `graceMs` (a second Ctrl-C)
   * cancels sooner, the same way, and returns the same promise.
   */
  close(options?: { graceMs?: number }): Promise<void>;
  /** Resolves when the engine is ready; rejects when loading failed. */
  readonly ready: Promise<void>;
  /** A snapshot of counters and live rates. */
  stats(): ServerStats;
  /** The Prometheus registry behind `/metrics`. */
  readonly metrics: Registry;
}

type RouteName =
  | "page"
  | "health"
  | "models"
  | "model"
  | "chat"
  | "completions"
  | "tokenize"
  | "detokenize"
  | "metrics"
  | "live";

interface Route {
  readonly name: RouteName;
  readonly method: "GET" | "POST";
  readonly public: boolean;
  readonly needsEngine: boolean;
}

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ["/health", { name: "health", method: "GET", public: true, needsEngine: false }],
  ["/v1/health", { name: "health", method: "GET", public: true, needsEngine: false }],
  ["/v1/models", { name: "models", method: "GET", public: false, needsEngine: true }],
  ["/v1/chat/completions", { name: "chat", method: "POST", public: false, needsEngine: true }],
  ["/chat/completions", { name: "chat", method: "POST", public: false, needsEngine: true }],
  ["/v1/completions", { name: "completions", method: "POST", public: false, needsEngine: true }],
  ["/completions", { name: "completions", method: "POST", public: false, needsEngine: true }],
  ["/tokenize", { name: "tokenize", method: "POST", public: false, needsEngine: true }],
  ["/detokenize", { name: "detokenize", method: "POST", public: false, needsEngine: true }],
  ["/metrics", { name: "metrics", method: "GET", public: false, needsEngine: false }],
  ["/_live/stats", { name: "live", method: "GET", public: false, needsEngine: false }],
]);

// Body fields of the llama-server-style token routes; anything else is refused (SERVER_UNKNOWN_FIELD).
const TOKENIZE_FIELDS: ReadonlySet<string> = new Set(["content", "add_special", "parse_special", "with_pieces"]);
const DETOKENIZE_FIELDS: ReadonlySet<string> = new Set(["tokens"]);

/**
 * What the server tells about the engine's chat template (its Jinja source stays out of stats).
 * The engine's reason for a template its caller chose names `loadModel`'s option; HTTP clients
 * and the log get words that fit a server instead.
 */
function templateInfo(engine: Engine): { name: string; origin: string; reason: string } {
  const { name, origin, reason } = engine.chatTemplate;
  if (origin !== "option") return { name, origin, reason };
  return { name, origin, reason: name === "custom" ? "Jinja given by the server operator" : "chosen by the server operator" };
}

function checkOption(name: string, value: number | undefined, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, `createServer: ${name} must be an integer ≥ ${min}`, { field: name, actual: value });
  }
  return value;
}

/**
 * Creates an OpenAI-compatible server around an {@link Engine}. Routes: `POST /v1/chat/completions`,
 * `POST /v1/completions` (SSE with `stream: true`, JSON otherwise), `GET /v1/models`, `GET /health`,
 * `POST /tokenize`, `POST /detokenize`, `GET /metrics` (Prometheus), `GET /_live/stats` (SSE),
 * and `GET /` (a page with live stats and a streaming chat). Requests share the engine's
 * continuous-batching scheduler; at most `parallel` generate at once and `maxQueue` wait, others
 * get 429 with `Retry-After`.
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * import { createServer } from "@halo/server";
 *
 * const app = createServer({ engine: loadModel("model.halo", { maxSequences: 8 }), parallel: 8, apiKeys: ["sk-local"] });
 * const { url } = await app.listen(8080, "127.0.0.1");
 * console.log(`listening on ${url}`);
 * process.once("SIGTERM", () => void app.close({ graceMs: 5000 }));
 * ```
 */
export function createServer(options: CreateServerOptions): HaloServer {
  const parallel = checkOption("parallel", options.parallel, 1, 4);
  const maxQueue = checkOption("maxQueue", options.maxQueue, 0, 64);
  const requestTimeoutMs = checkOption("requestTimeoutMs", options.requestTimeoutMs, 1, 600_000);
  const maxBodyBytes = checkOption("maxBodyBytes", options.maxBodyBytes, 1, 4 << 20);
  const defaultMaxTokens = checkOption("defaultMaxTokens", options.defaultMaxTokens, 1, 1024);
  const statsIntervalMs = checkOption("statsIntervalMs", options.statsIntervalMs, 10, 1500);
  const keepAliveMs = checkOption("keepAliveMs", options.keepAliveMs, 10, 15_000);
  const writeTimeoutMs = checkOption("writeTimeoutMs", options.writeTimeoutMs, 1, 30_000);
  for (const [i, entry] of (options.allowedHosts ?? []).entries()) {
    if (typeof entry !== "string" || entry.length === 0) {
      throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "createServer: allowedHosts entries must be non-empty host names", { field: `allowedHosts[${i}]`, actual: entry });
    }
  }
  const hostAllowed = createHostCheck(options.allowedHosts ?? []);
  const logger = options.logger ?? createJsonLogger(process.stderr, "info");
  const authorized = createApiKeyCheck(options.apiKeys ?? []);
  const authEnabled = (options.apiKeys ?? []).length > 0;
  const cors = createCorsPolicy(options.corsOrigins ?? []);
  const assets = loadStaticAssets();
  const startedAt = Date.now();

  let engine: Engine | null = null;
  let loadError: unknown = null;
  // Set once the model can no longer run (isModelFailure): /health reports it until the server is restarted.
  let modelFailure: unknown = null;
  const noteFailure = (error: unknown): void => {
    if (modelFailure !== null || !isModelFailure(error)) return;
    modelFailure = error;
    logger.log("error", "model-failed", { error: error instanceof Error ? error.message : String(error) });
  };
  let shuttingDown = false;
  let closing: Promise<void> | null = null;
  const shutdown = new AbortController();
  // Every running generation listens for a forced shutdown.
  setMaxListeners(0, shutdown.signal);
  const admission = new AdmissionQueue(parallel, maxQueue);
  const decodeRate = new LiveRate(2000);
  const promptRate = new LiveRate(2000);
  const totals = { completed: 0, generated: 0, prompt: 0, kvPositions: 0, durationMsSum: 0, droppedMessages: 0 };
  const contextHeld = new Map<object, number>();
  const contextShift = options.contextShift ?? "drop-oldest";
  if (contextShift !== "drop-oldest" && contextShift !== "error") {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, 'createServer: contextShift must be "drop-oldest" or "error"', { field: "contextShift", actual: contextShift });
  }
  const inflight = new Set<Promise<void>>();

  const modelId = (): string | null => {
    if (options.modelId !== undefined) return options.modelId;
    if (engine === null) return null;
    const name = basename(engine.source);
    return name.length > 0 && name !== "." ? basename(name, extname(name)) : "halo";
  };

  const stats = (): ServerStats => ({
    status: shuttingDown ? "shutting-down" : modelFailure !== null ? "failed" : engine !== null ? "ready" : loadError !== null ? "failed" : "loading",
    model: modelId(),
    label: options.modelLabel ?? null,
    backend: engine?.backend ?? null,
    skippedBackends: engine?.skippedBackends ?? [],
    contextLength: engine?.contextLength ?? null,
    chatTemplate: engine === null ? null : templateInfo(engine),
    parallel,
    maxQueue,
    active: admission.activeCount,
    queued: admission.waitingCount,
    decodeTokensPerSecond: decodeRate.perSecond(),
    promptTokensPerSecond: promptRate.perSecond(),
    kvUsage: engine === null ? 0 : Math.min(1, totals.kvPositions / (parallel * engine.contextLength)),
    completedRequests: totals.completed,
    generatedTokens: totals.generated,
    promptTokens: totals.prompt,
    uptimeSeconds: (Date.now() - startedAt) / 1000,
    auth: authEnabled,
    contextTokens: [...contextHeld.values()],
    droppedMessages: totals.droppedMessages,
  });

  const metrics = new ServerMetrics(() => {
    const s = stats();
    return {
      queueDepth: s.queued,
      activeSequences: s.active,
      kvUsage: s.kvUsage,
      promptTokensPerSecond: s.promptTokensPerSecond,
      decodeTokensPerSecond: s.decodeTokensPerSecond,
    };
  });
  const feed = new LiveStatsFeed(stats, statsIntervalMs);

  const ready = Promise.resolve(options.engine).then(
    (loaded) => {
      engine = loaded;
      logger.log("info", "model-ready", {
        model: modelId(),
        backend: loaded.backend,
        contextLength: loaded.contextLength,
        chatTemplate: loaded.chatTemplate.name,
        chatTemplateOrigin: loaded.chatTemplate.origin,
        chatTemplateReason: templateInfo(loaded).reason,
        loadMs: Math.round(loaded.loadMs),
      });
      for (const skipped of loaded.skippedBackends) {
        logger.log("warn", "backend-skipped", { backend: skipped.name, reason: skipped.reason, running: loaded.backend });
      }
    },
    (error: unknown) => {
      loadError = error;
      logger.log("error", "model-load-failed", { error: error instanceof Error ? error.message : String(error) });
      throw error;
    },
  );
  ready.catch(() => {});
  // Prompt admission's byte bound needs the longest token: measure it (in slices) before the first request waits for it.
  void ready.then(
    () => (engine !== null ? longestTokenBytes(engine) : undefined),
    () => undefined,
  );

  const retryAfterSeconds = (): number => {
    const mean = totals.completed > 0 ? totals.durationMsSum / totals.completed / 1000 : 5;
    return Math.max(1, Math.min(300, Math.ceil((mean * (admission.waitingCount + 1)) / parallel)));
  };

  const writeJson = (res: ServerResponse, status: number, value: unknown, headers: Readonly<Record<string, string>> = {}): void => {
    const text = JSON.stringify(value);
    res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
  };

  const writeError = (res: ServerResponse, error: unknown, headers: Readonly<Record<string, string>>): number => {
    noteFailure(error);
    const { status, body } = toOpenAiError(error);
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return status;
    }
    const extra: Record<string, string> = { ...headers };
    if (body.error.halo_code === "SERVER_QUEUE_FULL") extra["retry-after"] = String(retryAfterSeconds());
    if (status === 503) extra["retry-after"] = "5";
    if (status === 401) extra["www-authenticate"] = 'Bearer realm="halo"';
    if (status === 413) extra["connection"] = "close";
    writeJson(res, status, body, extra);
    return status;
  };

  const generationContext = (loaded: Engine): GenerationContext => ({
    engine: loaded,
    modelId: modelId() ?? "halo",
    admission,
    requestTimeoutMs,
    defaultMaxTokens,
    keepAliveMs,
    contextShift,
    shutdownSignal: shutdown.signal,
    hooks: {
      promptProcessed: (n) => {
        totals.prompt += n;
        promptRate.add(n);
        metrics.addPromptTokens(n);
      },
      tokensGenerated: (n) => {
        totals.generated += n;
        decodeRate.add(n);
        metrics.addGeneratedTokens(n);
      },
      firstToken: (seconds) => metrics.firstToken(seconds),
      kvPositions: (delta) => {
        totals.kvPositions += delta;
      },
      finished: (ms) => {
        totals.completed++;
        totals.durationMsSum += ms;
      },
      contextHeld: (sequence, tokens) => {
        if (tokens > 0) contextHeld.set(sequence, tokens);
        else contextHeld.delete(sequence);
      },
      messagesDropped: (count) => {
        totals.droppedMessages += count;
      },
      streamFailed: noteFailure,
    },
  });

  const checkModel = (requested: string | undefined): void => {
    const id = modelId();
    if (requested === undefined || requested === id) return;
    throw new HaloError(ServerErrorCode.SERVER_UNKNOWN_MODEL, `the model '${clipText(requested, 64)}' does not exist on this server`, {
      field: "model",
      expected: `"${id}" (see GET /v1/models)`,
      actual: requested.length > 64 ? `a ${requested.length}-character name` : requested,
    });
  };

  async function dispatch(
    route: Route,
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
    headers: Record<string, string>,
    arrivedAt: number,
  ): Promise<Partial<GenerationOutcome> & { status: number }> {
    const loaded = engine;
    switch (route.name) {
      case "health": {
        if (shuttingDown) throw new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "Shutting down");
        if (loaded === null) {
          if (loadError !== null) throw new HaloError(ServerErrorCode.SERVER_LOAD_FAILED, "the model failed to load", { cause: loadError, actual: String((loadError as Error).message ?? loadError) });
          throw new HaloError(ServerErrorCode.SERVER_LOADING, "Loading model");
        }
        if (modelFailure !== null) {
          const message = modelFailure instanceof Error ? modelFailure.message : String(modelFailure);
          throw new HaloError(ServerErrorCode.SERVER_MODEL_FAILED, `the model can no longer run, so this server answers every generation with an error: ${message}`, {
            cause: modelFailure,
          });
        }
        writeJson(res, 200, { status: "ok", model: modelId(), active: admission.activeCount, queued: admission.waitingCount }, headers);
        return { status: 200 };
      }
      case "metrics": {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { ...headers, "content-type": metrics.registry.contentType });
        res.end(text);
        return { status: 200 };
      }
      case "live":
        if (req.method === "HEAD") {
          res.writeHead(200, { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform" });
          res.end();
        } else feed.subscribe(res, headers);
        return { status: 200 };
      default:
        break;
    }
    if (loaded === null) throw new HaloError(ServerErrorCode.SERVER_LOADING, "the model is still loading", { hint: "Poll GET /health until it answers 200" });
    if (route.name === "models") {
      writeJson(res, 200, { object: "list", data: [modelCard(loaded)] }, headers);
      return { status: 200 };
    }
    if (route.name === "model") {
      const requested = decodePathSegment(path.slice("/v1/models/".length), "model");
      checkModel(requested);
      writeJson(res, 200, modelCard(loaded), headers);
      return { status: 200 };
    }
    const body = await readJsonBody(req, maxBodyBytes);
    if (route.name === "tokenize") {
      checkKnownFields(body, TOKENIZE_FIELDS);
      const content = stringField(body, "content");
      if (content === undefined) throw badField("content", "a string", body["content"]);
      const encoding = { addSpecialTokens: booleanField(body, "add_special") ?? false, allowSpecial: booleanField(body, "parse_special") ?? true };
      const withPieces = booleanField(body, "with_pieces") === true;
      // In slices, so a few megabytes of text do not hold the event loop; with pieces, no further than the cap.
      const ids = await tokenizeInSlices(loaded, content, encoding, withPieces ? MAX_PIECES + 1 : Infinity);
      if (withPieces && ids.length > MAX_PIECES) {
        throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, `with_pieces answers for at most ${MAX_PIECES} tokens`, {
          field: "with_pieces",
          expected: `content of at most ${MAX_PIECES} tokens with with_pieces`,
          actual: `content of more than ${MAX_PIECES} tokens`,
          hint: "Leave with_pieces out for long content (the ids alone have no cap), or send the content in parts",
        });
      }
      const tokens = withPieces ? await piecesInSlices(loaded, ids) : ids;
      writeJson(res, 200, { tokens }, headers);
      return { status: 200 };
    }
    if (route.name === "detokenize") {
      checkKnownFields(body, DETOKENIZE_FIELDS);
      const tokens = body["tokens"];
      if (!Array.isArray(tokens) || tokens.some((id) => typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= loaded.config.vocabSize)) {
        throw badField("tokens", `an array of token ids in [0, ${loaded.config.vocabSize})`, tokens);
      }
      writeJson(res, 200, { content: await detokenizeInSlices(loaded, tokens as number[]) }, headers);
      return { status: 200 };
    }
    const parsed = route.name === "chat" ? parseChatRequest(body, loaded.config.vocabSize) : parseCompletionRequest(body, loaded.config.vocabSize);
    checkModel(parsed.model);
    if (parsed.ignoredFields.length > 0) headers["x-halo-ignored-fields"] = ignoredFieldsHeader(parsed.ignoredFields);
    const outcome = await serveGeneration(generationContext(loaded), req, res, parsed, headers, arrivedAt);
    return { ...outcome, ...(parsed.user !== undefined ? { user: parsed.user } : {}), stream: parsed.stream } as Partial<GenerationOutcome> & { status: number };
  }

  const modelCard = (loaded: Engine): Record<string, unknown> => ({
    id: modelId(),
    object: "model",
    created: Math.floor(startedAt / 1000),
    owned_by: "halo",
    meta: {
      backend: loaded.backend,
      ...(loaded.skippedBackends.length > 0 ? { skipped_backends: loaded.skippedBackends } : {}),
      context_length: loaded.contextLength,
      vocab_size: loaded.config.vocabSize,
      chat_template: templateInfo(loaded),
      parallel,
      ...(options.modelLabel !== undefined ? { label: options.modelLabel } : {}),
    },
  });

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const arrivedAt = performance.now();
    const headers: Record<string, string> = {};
    let requestId = "";
    let path = "";
    let routeLabel = "other";
    let extra: Record<string, unknown> = {};
    const finish = (status: number): void => {
      try {
        const seconds = (performance.now() - arrivedAt) / 1000;
        metrics.requestDone(routeLabel, status, seconds);
        logger.log(status >= 500 ? "error" : status >= 400 && status !== 499 ? "warn" : "info", "request", {
          requestId,
          method: req.method,
          path: clipText(path, 200),
          status,
          durationMs: Math.round(seconds * 10000) / 10,
          ...extra,
        });
      } catch {
        // A failing logger or metric must not take the process down with it.
      }
    };
    // Every byte of the request (line, headers, body) is read inside this one guarded task: a throw
    // anywhere becomes an error answer (or a 499 when the client is gone), never an uncaught exception.
    const task = (async (): Promise<void> => {
      let status = 500;
      try {
        requestId = requestIdOf(req.headers["x-request-id"]);
        headers["x-request-id"] = requestId;
        setWriteTimeout(res, writeTimeoutMs);
        if (!authEnabled && !hostAllowed(req.headers.host, req.socket?.localAddress)) {
          throw new HaloError(ServerErrorCode.SERVER_FORBIDDEN_HOST, "this server does not answer to that Host name", {
            expected: "a loopback name, the address the server listens on, or a name in its allowed-host list",
            actual: clipText(req.headers.host ?? "", 64),
            hint: "Behind a reverse proxy or a DNS name, start the server with --allowed-host <name> (createServer allowedHosts), or configure an API key",
          });
        }
        const target = parseRequestTarget(req.url);
        path = target.path;
        const decision = cors(req.headers.origin, req.headers.host);
        Object.assign(headers, decision.headers);
        if (!decision.allowed) {
          throw new HaloError(ServerErrorCode.SERVER_FORBIDDEN_ORIGIN, "this origin may not call the server", {
            actual: clipText(req.headers.origin ?? "", 64),
            hint: "Start the server with the origin in its CORS allow-list (--cors-origin)",
          });
        }
        if (req.method === "OPTIONS") {
          res.writeHead(204, { ...headers, ...preflightHeaders(req.headers["access-control-request-headers"]) });
          res.end();
          status = 204;
          return;
        }
        const asset = req.method === "GET" || req.method === "HEAD" ? assets.get(path) : undefined;
        if (asset !== undefined) {
          routeLabel = "page";
          res.writeHead(200, { ...headers, "content-type": asset.contentType, "content-length": String(asset.body.length), "cache-control": "no-cache" });
          res.end(req.method === "HEAD" ? undefined : asset.body);
          status = 200;
          return;
        }
        const route = ROUTES.get(path) ?? (path.startsWith("/v1/models/") ? ({ name: "model", method: "GET", public: false, needsEngine: true } as const) : undefined);
        if (route === undefined) {
          throw new HaloError(ServerErrorCode.SERVER_NOT_FOUND, `no route ${clipText(req.method ?? "GET", 16)} ${clipText(path, 100)}`, {
            hint: "Routes: /v1/chat/completions, /v1/completions, /v1/models, /health, /tokenize, /detokenize, /metrics, /_live/stats, /",
          });
        }
        routeLabel = route.name === "model" ? "/v1/models/{id}" : path;
        // HEAD is GET without a body (node drops the body of a HEAD answer); POST routes take POST only.
        if (req.method !== route.method && !(req.method === "HEAD" && route.method === "GET")) {
          headers["allow"] = route.method === "GET" ? "GET, HEAD" : route.method;
          throw new HaloError(ServerErrorCode.SERVER_METHOD_NOT_ALLOWED, `${path} takes ${headers["allow"]}, not ${clipText(req.method ?? "?", 16)}`);
        }
        if (!route.public && !authorized(req.headers.authorization)) {
          throw new HaloError(ServerErrorCode.SERVER_UNAUTHORIZED, "a valid API key is required", {
            expected: "an Authorization: Bearer <key> header with one of the server's keys",
            actual: req.headers.authorization === undefined ? "no Authorization header" : "a key that is not accepted",
          });
        }
        if (shuttingDown && route.name !== "health") throw new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down and takes no new requests");
        if (route.needsEngine && engine === null && loadError !== null) {
          throw new HaloError(ServerErrorCode.SERVER_LOAD_FAILED, "the model failed to load", { actual: loadError instanceof Error ? loadError.message : String(loadError) });
        }
        const outcome = await dispatch(route, path, req, res, headers, arrivedAt);
        const { status: answered, ...rest } = outcome;
        status = answered;
        extra = rest;
      } catch (error) {
        try {
          if (isHaloError(error) && error.code === ServerErrorCode.SERVER_CLIENT_GONE) {
            status = 499;
            if (!res.writableEnded) res.destroy();
          } else {
            if (res.headersSent && !res.writableEnded) res.end();
            status = res.headersSent ? res.statusCode : writeError(res, error, headers);
          }
          if (status >= 500) extra = { ...extra, error: error instanceof Error ? error.message : String(error) };
          else if (error instanceof Error) extra = { ...extra, error: error.message.slice(0, 200) };
          if (status === 413) res.once("finish", () => req.destroy());
        } catch {
          // The answer itself failed (socket gone mid-write): nothing more can be sent.
          res.destroy();
        }
      } finally {
        finish(status);
        watchUnsentAnswer(res);
      }
    })();
    inflight.add(task);
    void task.finally(() => inflight.delete(task));
  }

  const server = createHttpServer({ requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, handle);

  // Resolves the grace wait early; a later close() with a shorter grace schedules it sooner.
  let cutGrace: (() => void) | null = null;
  let graceEndsAt = Infinity;

  async function close(closeOptions: { graceMs?: number } = {}): Promise<void> {
    const graceMs = Math.max(0, closeOptions.graceMs ?? 10_000);
    if (closing !== null) {
      // A second signal (or caller) in a hurry: cancel running generations sooner, still through
      // the normal path (error record + [DONE] on streams), never by cutting connections.
      if (performance.now() + graceMs < graceEndsAt) {
        graceEndsAt = performance.now() + graceMs;
        setTimeout(() => cutGrace?.(), graceMs).unref();
      }
      return closing;
    }
    shuttingDown = true;
    graceEndsAt = performance.now() + graceMs;
    closing = (async () => {
      logger.log("info", "shutdown-start", { active: admission.activeCount, queued: admission.waitingCount, graceMs });
      const stopped = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      server.closeIdleConnections();
      admission.rejectWaiting(new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down; the queued request was not started"));
      feed.closeAll();
      const settled = (): Promise<void> => Promise.allSettled([...inflight]).then(() => undefined);
      const graceTimer = new Promise<"timeout">((resolve) => {
        cutGrace = () => resolve("timeout");
        setTimeout(() => resolve("timeout"), graceMs).unref();
      });
      const first = await Promise.race([settled().then(() => "done" as const), graceTimer]);
      if (first === "timeout") {
        logger.log("warn", "shutdown-cancel", { active: admission.activeCount });
        shutdown.abort(new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down"));
        await Promise.race([settled(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      }
      server.closeAllConnections();
      await stopped;
      if (options.disposeEngineOnClose === true && engine !== null) engine.dispose();
      logger.log("info", "shutdown-done", {});
    })();
    return closing;
  }

  async function listen(port = 8080, host = "127.0.0.1"): Promise<ListenAddress> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "the port must be an integer in [0, 65535]", { field: "port", actual: port });
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        server.off("listening", onListening);
        reject(
          new HaloError(ServerErrorCode.SERVER_BAD_OPTION, `cannot listen on ${host}:${port}`, {
            cause: error,
            actual: (error as NodeJS.ErrnoException).code ?? error.message,
            hint: "Pick a free port with --port, or stop the process that holds it",
          }),
        );
      };
      const onListening = (): void => {
        server.off("error", onError);
        resolve();
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen(port, host);
    });
    const address = server.address() as AddressInfo;
    const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return { host: address.address, port: address.port, url: `http://${shown}:${address.port}` };
  }

  return { server, handle, listen, close, ready, stats, metrics: metrics.registry };
}
