// A server's lifecycle: taking the engine when it is ready (admission sized from it), listening, and the graceful close.
import { setMaxListeners } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { AdmissionQueue } from "./admission-queue.js";
import { ServerErrorCode } from "./errors.js";
import type { LiveStatsFeed } from "./live-stats.js";
import type { Logger } from "./logger.js";
import { longestTokenBytes } from "./prompt-tokens.js";
import { templateInfo, type ServerState } from "./server-state.js";

/** The address a server listens on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
}

/**
 * The generations a server runs at once on `engine`: `parallel` when given, else the engine's
 * `maxSequences`. Refuses (`SERVER_BAD_OPTION`) a `parallel` above `maxSequences`: the requests
 * beyond it would wait in the engine's own queue, where the server's queue limit, request timeout
 * and `Retry-After` do not see them. A smaller one leaves the other slots to the caller.
 * @internal
 */
export function parallelFor(engine: Engine, parallel: number | undefined): number {
  if (parallel === undefined) return engine.maxSequences;
  if (parallel > engine.maxSequences) {
    throw new HaloError(ServerErrorCode.SERVER_BAD_OPTION, "createServer: parallel is larger than the engine's maxSequences", {
      field: "parallel",
      expected: `at most ${engine.maxSequences} (the engine's maxSequences: the KV slots it was loaded with)`,
      actual: parallel,
      hint: `Leave parallel out (it defaults to the engine's maxSequences), or load the model with loadModel(path, { maxSequences: ${parallel} })`,
    });
  }
  return parallel;
}

function isPromise(value: Engine | Promise<Engine>): value is Promise<Engine> {
  return typeof (value as { then?: unknown }).then === "function";
}

/**
 * Takes the engine into `state` once it resolves: checks `parallel` against it (thrown at once for
 * an engine, the returned promise's rejection for a promise of one), makes the admission queue,
 * logs `model-ready` (and `backend-skipped` per backend passed over) or `model-load-failed`, and
 * starts measuring the longest token (prompt admission's byte bound). The promise is the server's
 * `ready`.
 * @internal
 */
export function takeEngine(state: ServerState, engine: Engine | Promise<Engine>, logger: Logger): Promise<void> {
  const { settings } = state;
  // An engine given as is must fit the options now: createServer throws rather than serve 503s.
  if (!isPromise(engine)) parallelFor(engine, settings.parallel);
  const ready = Promise.resolve(engine).then((loaded) => {
    let parallel: number;
    try {
      parallel = parallelFor(loaded, settings.parallel);
    } catch (error) {
      // The server owns an engine it was told to dispose; it will never run this one.
      if (settings.disposeEngineOnClose) loaded.dispose();
      throw error;
    }
    state.parallel = parallel;
    state.admission = new AdmissionQueue(parallel, settings.maxQueue);
    state.engine = loaded;
    if (loaded.stats().kv.bytesPerPosition !== undefined) state.metrics.addKvByteGauges();
    if (loaded.speculative !== null) state.metrics.addSpeculativeMetrics(() => loaded.stats().speculative);
    if (loaded.stats().prefixCache !== undefined) state.metrics.addPrefixCacheMetrics(() => loaded.stats().prefixCache);
    logger.log("info", "model-ready", {
      model: state.modelId(),
      backend: loaded.backend,
      contextLength: loaded.contextLength,
      parallel,
      maxSequences: loaded.maxSequences,
      chatTemplate: loaded.chatTemplate.name,
      chatTemplateOrigin: loaded.chatTemplate.origin,
      chatTemplateReason: templateInfo(loaded).reason,
      ...(loaded.speculative !== null ? { speculative: loaded.speculative.label } : {}),
      loadMs: Math.round(loaded.loadMs),
    });
    for (const skipped of loaded.skippedBackends) {
      logger.log("warn", "backend-skipped", { backend: skipped.name, reason: skipped.reason, running: loaded.backend });
    }
  });
  const taken = ready.catch((error: unknown) => {
    state.loadError = error;
    logger.log("error", "model-load-failed", { error: error instanceof Error ? error.message : String(error) });
    throw error;
  });
  taken.catch(() => {});
  // Prompt admission's byte bound needs the longest token: measure it (in slices) before the first request waits for it.
  void taken.then(
    () => (state.engine !== null ? longestTokenBytes(state.engine) : undefined),
    () => undefined,
  );
  return taken;
}

/**
 * Listening and the graceful close of one node HTTP server, with the requests it is serving.
 * @internal
 */
export class ServerLifecycle {
  /** Aborted when a shutdown stops waiting for running generations: each one listens for it. */
  private readonly shutdown = new AbortController();
  private readonly inflight = new Set<Promise<void>>();
  private closing: Promise<void> | null = null;
  // Resolves the grace wait early; a later close() with a shorter grace schedules it sooner.
  private cutGrace: (() => void) | null = null;
  private graceEndsAt = Infinity;

  constructor(
    private readonly server: Server,
    private readonly state: ServerState,
    private readonly feed: LiveStatsFeed,
    private readonly logger: Logger,
  ) {
    setMaxListeners(0, this.shutdown.signal);
  }

  /** The signal generations stop on when the shutdown's grace is over. */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** Keeps `task` (one request) until it settles: close waits for these. */
  track(task: Promise<void>): void {
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
  }

  /** Listens on `host:port`; `SERVER_BAD_OPTION` for a bad port or one that cannot be bound. */
  async listen(port = 8080, host = "127.0.0.1"): Promise<ListenAddress> {
    const { server } = this;
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

  /**
   * Graceful shutdown (see `HaloServer.close`): refuse new requests, fail queued ones, let running
   * ones finish within `graceMs`, then cancel them through the normal path, close every
   * connection and, when configured, dispose the engine. A second call with a shorter grace
   * cancels sooner and returns the same promise.
   */
  close(closeOptions: { graceMs?: number } = {}): Promise<void> {
    const graceMs = Math.max(0, closeOptions.graceMs ?? 10_000);
    if (this.closing !== null) {
      // A second signal (or caller) in a hurry: cancel running generations sooner, still through
      // the normal path (error record + [DONE] on streams), never by cutting connections.
      if (performance.now() + graceMs < this.graceEndsAt) {
        this.graceEndsAt = performance.now() + graceMs;
        setTimeout(() => this.cutGrace?.(), graceMs).unref();
      }
      return this.closing;
    }
    const { server, state, logger } = this;
    state.shuttingDown = true;
    this.graceEndsAt = performance.now() + graceMs;
    this.closing = (async () => {
      logger.log("info", "shutdown-start", { active: state.admission?.activeCount ?? 0, queued: state.admission?.waitingCount ?? 0, graceMs });
      const stopped = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      server.closeIdleConnections();
      state.admission?.rejectWaiting(new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down; the queued request was not started"));
      this.feed.closeAll();
      const settled = (): Promise<void> => Promise.allSettled([...this.inflight]).then(() => undefined);
      const graceTimer = new Promise<"timeout">((resolve) => {
        this.cutGrace = () => resolve("timeout");
        setTimeout(() => resolve("timeout"), graceMs).unref();
      });
      const first = await Promise.race([settled().then(() => "done" as const), graceTimer]);
      if (first === "timeout") {
        logger.log("warn", "shutdown-cancel", { active: state.admission?.activeCount ?? 0 });
        this.shutdown.abort(new HaloError(ServerErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down"));
        await Promise.race([settled(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      }
      server.closeAllConnections();
      await stopped;
      if (state.settings.disposeEngineOnClose && state.engine !== null) state.engine.dispose();
      logger.log("info", "shutdown-done", {});
    })();
    return this.closing;
  }
}
