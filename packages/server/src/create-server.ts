// createServer: the OpenAI-compatible HTTP server around one Engine, composed of its state, route groups, request handler and lifecycle.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import { ServerLifecycle, takeEngine, type ListenAddress } from "./lifecycle.js";
import { LiveStatsFeed } from "./live-stats.js";
import { createJsonLogger } from "./logger.js";
import { createRequestHandler } from "./request-handler.js";
import { embeddingRoutes } from "./routes/embeddings.js";
import { healthRoutes } from "./routes/health.js";
import { modelRoutes } from "./routes/models.js";
import { ollamaRoutes } from "./routes/ollama.js";
import { openAiRoutes } from "./routes/openai.js";
import { pageRoutes } from "./routes/pages.js";
import { tokenRoutes } from "./routes/tokens.js";
import { checkServerOptions, type CreateServerOptions } from "./server-options.js";
import { ServerState, type ServerStats } from "./server-state.js";

export type { CreateServerOptions } from "./server-options.js";
export type { ServerKvUsage, ServerSpeculativeStats, ServerStats } from "./server-state.js";
export type { ListenAddress } from "./lifecycle.js";

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

/**
 * Creates an OpenAI-compatible server around an {@link Engine}. Routes: `POST /v1/chat/completions`,
 * `POST /v1/completions` (SSE with `stream: true`, JSON otherwise), `GET /v1/models`, `GET /health`,
 * `POST /tokenize`, `POST /detokenize`, `GET /metrics` (Prometheus), `GET /_live/stats` (SSE),
 * and `GET /` (a page with live stats and a streaming chat). Requests share the engine's
 * continuous-batching scheduler; at most `parallel` (default: the engine's `maxSequences`) generate
 * at once and `maxQueue` wait, others get 429 with `Retry-After`. Throws `SERVER_BAD_OPTION` for
 * an invalid option, or a `parallel` above the engine's `maxSequences` (for a promise of an engine,
 * `ready` rejects with it instead).
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * import { createServer } from "@halo/server";
 *
 * const app = createServer({ engine: loadModel("model.halo", { maxSequences: 8 }), apiKeys: ["sk-local"] }); // 8 at once: maxSequences
 * const { url } = await app.listen(8080, "127.0.0.1");
 * console.log(`listening on ${url}`);
 * process.once("SIGTERM", () => void app.close({ graceMs: 5000 }));
 * ```
 */
export function createServer(options: CreateServerOptions): HaloServer {
  const settings = checkServerOptions(options);
  const logger = options.logger ?? createJsonLogger(process.stderr, "info");
  const state = new ServerState(settings, logger);
  const ready = takeEngine(state, options.engine, logger);
  const feed = new LiveStatsFeed(() => state.stats(), settings.statsIntervalMs);
  const server = createHttpServer({ requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 });
  const lifecycle = new ServerLifecycle(server, state, feed, logger);
  const handle = createRequestHandler({
    state,
    logger,
    page: pageRoutes(),
    routes: [
      healthRoutes(state, feed),
      modelRoutes(state),
      openAiRoutes(state, lifecycle.shutdownSignal),
      ollamaRoutes(state, lifecycle.shutdownSignal),
      embeddingRoutes(state, lifecycle.shutdownSignal),
      tokenRoutes(state),
    ],
    track: (task) => lifecycle.track(task),
  });
  server.on("request", handle);
  return {
    server,
    handle,
    listen: (port, host) => lifecycle.listen(port, host),
    close: (closeOptions) => lifecycle.close(closeOptions),
    ready,
    stats: () => state.stats(),
    metrics: state.metrics.registry,
  };
}
