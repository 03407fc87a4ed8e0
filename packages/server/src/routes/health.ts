// The operations routes: GET /health (and /v1/health), GET /metrics (Prometheus) and GET /_live/stats (SSE).
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "../errors.js";
import { writeJson } from "../http-answer.js";
import type { LiveStatsFeed } from "../live-stats.js";
import type { ServerState } from "../server-state.js";
import type { PlainRoute, RouteGroup } from "./route.js";

/**
 * `/health`: 200 with the model and queue when ready; 503 while loading, after a load failure
 * or when shutting down; 500 once the model can no longer run. `/metrics`: the Prometheus
 * exposition. `/_live/stats`: a stats record now and every interval (SSE).
 * @internal
 */
export function healthRoutes(state: ServerState, feed: LiveStatsFeed): RouteGroup {
  const health: PlainRoute = {
    name: "health",
    method: "GET",
    public: true,
    needsEngine: false,
    async handle({ res, headers }) {
      if (state.shuttingDown) throw new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "Shutting down");
      const { engine, loadError, modelFailure } = state;
      if (engine === null) {
        if (loadError !== null)
          throw new HaloError(ServerErrorCode.SERVER_LOAD_FAILED, "the model failed to load", {
            cause: loadError,
            actual: String((loadError as Error).message ?? loadError),
          });
        throw new HaloError(ServerErrorCode.SERVER_LOADING, "Loading model");
      }
      if (modelFailure !== null) {
        const message = modelFailure instanceof Error ? modelFailure.message : String(modelFailure);
        throw new HaloError(
          ServerErrorCode.SERVER_MODEL_FAILED,
          `the model can no longer run, so this server answers every generation with an error: ${message}`,
          {
            cause: modelFailure,
          },
        );
      }
      writeJson(
        res,
        200,
        { status: "ok", model: state.modelId(), active: state.admission?.activeCount ?? 0, queued: state.admission?.waitingCount ?? 0 },
        headers,
      );
      return { status: 200 };
    },
  };
  const metrics: PlainRoute = {
    name: "metrics",
    method: "GET",
    public: false,
    needsEngine: false,
    async handle({ res, headers }) {
      const text = await state.metrics.registry.metrics();
      res.writeHead(200, { ...headers, "content-type": state.metrics.registry.contentType });
      res.end(text);
      return { status: 200 };
    },
  };
  const live: PlainRoute = {
    name: "live",
    method: "GET",
    public: false,
    needsEngine: false,
    async handle({ req, res, headers }) {
      if (req.method === "HEAD") {
        res.writeHead(200, { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform" });
        res.end();
      } else feed.subscribe(res, headers);
      return { status: 200 };
    },
  };
  return {
    exact: [
      ["/health", health],
      ["/v1/health", health],
      ["/metrics", metrics],
      ["/_live/stats", live],
    ],
  };
}
