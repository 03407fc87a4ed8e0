// What a route is: its method, whether it needs a key or the engine, and the handler the request handler calls.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Engine } from "@halo/engine";
import type { GenerationOutcome } from "../generation.js";

/** One request as a route sees it. @internal */
export interface RouteCall {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The decoded path (no query). */
  readonly path: string;
  /** Headers every answer carries (request id, CORS); a route may add its own. */
  readonly headers: Record<string, string>;
  /** `performance.now()` when the request arrived. */
  readonly arrivedAt: number;
}

/** How a route answered, for the access log (a generation adds its counts). @internal */
export type RouteResult = Partial<GenerationOutcome> & { readonly status: number; readonly user?: string; readonly stream?: boolean };

interface RouteBase {
  /** Name in the access log and the shutdown rule (`health` still answers while shutting down). */
  readonly name: string;
  readonly method: "GET" | "POST";
  /** Answered without an API key. */
  readonly public: boolean;
  /** The `route` label of the request metrics; default the path. */
  readonly label?: string;
}

/** A route that answers without the engine (health, metrics, live stats). @internal */
export interface PlainRoute extends RouteBase {
  readonly needsEngine: false;
  handle(call: RouteCall): Promise<RouteResult>;
}

/** A route that needs the loaded engine: 503 while it loads or when it failed. @internal */
export interface EngineRoute extends RouteBase {
  readonly needsEngine: true;
  handle(call: RouteCall, engine: Engine): Promise<RouteResult>;
}

/** @internal */
export type Route = PlainRoute | EngineRoute;

/** Routes by exact path, and by path prefix (`/v1/models/` + an id). @internal */
export interface RouteGroup {
  readonly exact: ReadonlyArray<readonly [path: string, route: Route]>;
  readonly prefixed?: ReadonlyArray<readonly [prefix: string, route: Route]>;
}
