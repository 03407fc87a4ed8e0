// The request handler: Host and CORS checks, preflight, pages, routing, method and key checks, error answers and the access log.
import type { IncomingMessage, ServerResponse } from "node:http";
import { HaloError, isHaloError } from "@halo/errors";
import { createApiKeyCheck } from "./api-keys.js";
import { createCorsPolicy, preflightHeaders } from "./cors.js";
import { ServerErrorCode } from "./errors.js";
import { createHostCheck } from "./host-check.js";
import { writeError } from "./http-answer.js";
import type { Logger } from "./logger.js";
import { clipText } from "./request-fields.js";
import { requestIdOf } from "./request-id.js";
import { parseRequestTarget } from "./request-target.js";
import type { Route, RouteCall, RouteGroup, RouteResult } from "./routes/route.js";
import type { ServerState } from "./server-state.js";
import { setWriteTimeout, watchUnsentAnswer } from "./sse.js";

/** What {@link createRequestHandler} routes to. @internal */
export interface RequestHandlerParts {
  readonly state: ServerState;
  readonly logger: Logger;
  /** Answers a page file and returns its status, or null for a path that is no page. */
  readonly page: (call: RouteCall) => number | null;
  readonly routes: readonly RouteGroup[];
  /** Called with each request's task (the lifecycle waits for them at shutdown). */
  readonly track: (task: Promise<void>) => void;
}

const ROUTE_LIST =
  "/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /api/chat, /api/generate, /api/embed, /api/tags, /api/show, /api/ps, /api/version, /health, /tokenize, /detokenize, /metrics, /_live/stats, /";

/**
 * The node request handler of a server. Every byte of the request (line, headers, body) is read
 * inside one guarded task: a throw anywhere becomes an error answer in OpenAI's shape (Ollama's under /api/; a 499 when
 * the client is gone), never an uncaught exception; each request ends with one access-log record
 * and one metrics count.
 * @internal
 */
export function createRequestHandler(parts: RequestHandlerParts): (req: IncomingMessage, res: ServerResponse) => void {
  const { state, logger, page, track } = parts;
  const { settings, metrics } = state;
  const hostAllowed = createHostCheck(settings.allowedHosts);
  const authorized = createApiKeyCheck(settings.apiKeys);
  const authEnabled = settings.apiKeys.length > 0;
  const cors = createCorsPolicy(settings.corsOrigins);
  const exact = new Map<string, Route>();
  const prefixed: (readonly [string, Route])[] = [];
  for (const group of parts.routes) {
    for (const [path, route] of group.exact) exact.set(path, route);
    prefixed.push(...(group.prefixed ?? []));
  }
  const routeOf = (path: string): Route | undefined => exact.get(path) ?? prefixed.find(([prefix]) => path.startsWith(prefix))?.[1];

  return function handle(req: IncomingMessage, res: ServerResponse): void {
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
    const task = (async (): Promise<void> => {
      let status = 500;
      try {
        requestId = requestIdOf(req.headers["x-request-id"]);
        headers["x-request-id"] = requestId;
        setWriteTimeout(res, settings.writeTimeoutMs);
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
        const call: RouteCall = { req, res, path, headers, arrivedAt };
        const pageStatus = page(call);
        if (pageStatus !== null) {
          routeLabel = "page";
          status = pageStatus;
          return;
        }
        const route = routeOf(path);
        if (route === undefined) {
          throw new HaloError(ServerErrorCode.SERVER_NOT_FOUND, `no route ${clipText(req.method ?? "GET", 16)} ${clipText(path, 100)}`, {
            hint: `Routes: ${ROUTE_LIST}`,
          });
        }
        routeLabel = route.label ?? path;
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
        if (state.shuttingDown && route.name !== "health")
          throw new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down and takes no new requests");
        const outcome: RouteResult = route.needsEngine ? await route.handle(call, state.requireEngine()) : await route.handle(call);
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
            // Ollama's routes (and unknown paths under /api/) answer in Ollama's error shape.
            status = res.headersSent ? res.statusCode : writeError(res, error, headers, state, path.startsWith("/api/") ? "ollama" : "openai");
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
    track(task);
  };
}
