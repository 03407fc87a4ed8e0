// createServer's options: the public type, and their checking into the settings every module of the server reads.
import type { Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import type { ServerContextShift } from "./chat-context.js";
import { ServerErrorCode } from "./errors.js";
import type { Logger } from "./logger.js";

/** Options of {@link createServer}. */
export interface CreateServerOptions {
  /**
   * The engine, or a promise of it: until it resolves `/health` answers 503 "Loading model" and
   * generation routes answer 503 `model_loading`.
   */
  readonly engine: Engine | Promise<Engine>;
  /** The id clients send as `model` and `/v1/models` lists. Default: the model file's name without extension. */
  readonly modelId?: string;
  /** A note shown on the page and in `/v1/models` (`halo serve --demo` shows halo-tiny's label: what the model is, and that it is not the real one). */
  readonly modelLabel?: string;
  /**
   * Generations that run at once. Default: the engine's `maxSequences` (its KV slots), which is
   * what it should be. At most `maxSequences`: a larger value is refused (`SERVER_BAD_OPTION`;
   * thrown by `createServer` for an engine, the `ready` rejection for a promise of one), since the
   * requests beyond it would wait inside the engine, unseen by the server's queue limit, timeouts and
   * `Retry-After`. A smaller value leaves the other slots to the caller (sessions of its own).
   */
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

/** {@link CreateServerOptions} checked, with their defaults. @internal */
export interface ServerSettings {
  /** The `parallel` option as given; the engine's `maxSequences` decides when it is absent. */
  readonly parallel: number | undefined;
  readonly maxQueue: number;
  readonly requestTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly defaultMaxTokens: number;
  readonly statsIntervalMs: number;
  readonly keepAliveMs: number;
  readonly writeTimeoutMs: number;
  readonly contextShift: ServerContextShift;
  readonly modelId: string | undefined;
  readonly modelLabel: string | undefined;
  readonly apiKeys: readonly string[];
  readonly corsOrigins: readonly string[];
  readonly allowedHosts: readonly string[];
  readonly disposeEngineOnClose: boolean;
}

function checkOption(name: string, value: number | undefined, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, `createServer: ${name} must be an integer ≥ ${min}`, { field: name, actual: value });
  }
  return value;
}

/**
 * Checks `options` (`SERVER_BAD_OPTION` naming the field) and fills in the defaults.
 * @internal
 */
export function checkServerOptions(options: CreateServerOptions): ServerSettings {
  const parallel = options.parallel === undefined ? undefined : checkOption("parallel", options.parallel, 1, 1);
  const maxQueue = checkOption("maxQueue", options.maxQueue, 0, 64);
  const requestTimeoutMs = checkOption("requestTimeoutMs", options.requestTimeoutMs, 1, 600_000);
  const maxBodyBytes = checkOption("maxBodyBytes", options.maxBodyBytes, 1, 4 << 20);
  const defaultMaxTokens = checkOption("defaultMaxTokens", options.defaultMaxTokens, 1, 1024);
  const statsIntervalMs = checkOption("statsIntervalMs", options.statsIntervalMs, 10, 1500);
  const keepAliveMs = checkOption("keepAliveMs", options.keepAliveMs, 10, 15_000);
  const writeTimeoutMs = checkOption("writeTimeoutMs", options.writeTimeoutMs, 1, 30_000);
  const allowedHosts = options.allowedHosts ?? [];
  for (const [i, entry] of allowedHosts.entries()) {
    if (typeof entry !== "string" || entry.length === 0) {
      throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "createServer: allowedHosts entries must be non-empty host names", {
        field: `allowedHosts[${i}]`,
        actual: entry,
      });
    }
  }
  const contextShift = options.contextShift ?? "drop-oldest";
  if (contextShift !== "drop-oldest" && contextShift !== "error") {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, 'createServer: contextShift must be "drop-oldest" or "error"', {
      field: "contextShift",
      actual: contextShift,
    });
  }
  return {
    parallel,
    maxQueue,
    requestTimeoutMs,
    maxBodyBytes,
    defaultMaxTokens,
    statsIntervalMs,
    keepAliveMs,
    writeTimeoutMs,
    contextShift,
    modelId: options.modelId,
    modelLabel: options.modelLabel,
    apiKeys: options.apiKeys ?? [],
    corsOrigins: options.corsOrigins ?? [],
    allowedHosts,
    disposeEngineOnClose: options.disposeEngineOnClose === true,
  };
}
