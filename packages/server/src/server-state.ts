// What a server knows while it runs: the engine (loading, ready, failed), shutdown, admission, counters, and its stats snapshot.
import { basename, extname } from "node:path";
import type { Engine, EngineStats } from "@halo/engine";
import { HaloError } from "@halo/errors";
import type { AdmissionQueue } from "./admission-queue.js";
import { ServerErrorCode } from "./errors.js";
import type { GenerationContext, GenerationHooks } from "./generation.js";
import { LiveRate } from "./live-rate.js";
import type { Logger } from "./logger.js";
import { ServerMetrics } from "./metrics.js";
import { isModelFailure } from "./openai-error.js";
import type { ServerSettings } from "./server-options.js";

/** The engine's KV cache use (`Engine.stats().kv`). */
export type ServerKvUsage = EngineStats["kv"];

/**
 * Speculative decoding of the server's model since it loaded (from `Engine.stats().speculative`):
 * which drafter runs, how many drafted tokens were accepted, and tokens per step.
 */
export interface ServerSpeculativeStats {
  /** `ngram`, `draft-model` or `medusa`. */
  readonly drafter: string;
  /** What drafts, in words (`ngram 2-4`, `draft-model <file> (cpu)`, `medusa 4 heads (<file>)`). */
  readonly label: string;
  /** Accepted / drafted tokens (0 when nothing was drafted yet). */
  readonly acceptanceRate: number;
  /** Tokens generated per step that produced tokens (1 without accepted drafts). */
  readonly tokensPerStep: number;
  readonly draftedTokens: number;
  readonly acceptedTokens: number;
  readonly verifySteps: number;
  readonly decodeSteps: number;
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
  /** Generations that run at once: the `parallel` option, else the engine's `maxSequences`; null while loading without the option. */
  readonly parallel: number | null;
  readonly maxQueue: number;
  /** Generations running now. */
  readonly active: number;
  /** Requests waiting for a slot. */
  readonly queued: number;
  /** Tokens generated per second over the last 2 s, all sequences together. */
  readonly decodeTokensPerSecond: number;
  /** Prompt tokens processed per second over the last 2 s. */
  readonly promptTokensPerSecond: number;
  /** KV positions in use / available, in [0, 1] (`kv.positionsInUse / kv.positionsCapacity`; 0 while loading). */
  readonly kvUsage: number;
  /**
   * The engine's KV cache (`Engine.stats().kv`): slots and positions in use and available, and bytes
   * when the backend estimates them; null while loading.
   */
  readonly kv: ServerKvUsage | null;
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
  /** Speculative decoding since the model loaded; null while loading and when the model runs without a drafter. */
  readonly speculative: ServerSpeculativeStats | null;
}

/**
 * What the server tells about the engine's chat template (its Jinja source stays out of stats).
 * The engine's reason for a template its caller chose names `loadModel`'s option; HTTP clients
 * and the log get words that fit a server instead.
 * @internal
 */
export function templateInfo(engine: Engine): { name: string; origin: string; reason: string } {
  const { name, origin, reason } = engine.chatTemplate;
  if (origin !== "option") return { name, origin, reason };
  return { name, origin, reason: name === "custom" ? "Jinja given by the server operator" : "chosen by the server operator" };
}

/**
 * The state every part of one server shares: set by the lifecycle (engine ready or failed,
 * shutdown), read by the routes, counted by generations.
 * @internal
 */
export class ServerState {
  /** The engine once it resolved (and was accepted). */
  engine: Engine | null = null;
  /** Why the engine is not there: it failed to load, or does not fit the options. */
  loadError: unknown = null;
  /** Set once the model can no longer run (isModelFailure): /health reports it until the server is restarted. */
  modelFailure: unknown = null;
  shuttingDown = false;
  /** Generations at once, known once the engine is (or from the option). */
  parallel: number | null;
  /** The queue in front of the engine, made when the engine is ready (its size comes from it). */
  admission: AdmissionQueue | null = null;
  readonly startedAt = Date.now();
  readonly metrics: ServerMetrics;
  readonly hooks: GenerationHooks;

  private readonly decodeRate = new LiveRate(2000);
  private readonly promptRate = new LiveRate(2000);
  private readonly totals = { completed: 0, generated: 0, prompt: 0, durationMsSum: 0, droppedMessages: 0 };
  private readonly contextHeld = new Map<object, number>();

  constructor(
    readonly settings: ServerSettings,
    private readonly logger: Logger,
  ) {
    this.parallel = settings.parallel ?? null;
    this.metrics = new ServerMetrics(() => {
      const s = this.stats();
      return {
        queueDepth: s.queued,
        activeSequences: s.active,
        kvUsage: s.kvUsage,
        kv: s.kv,
        promptTokensPerSecond: s.promptTokensPerSecond,
        decodeTokensPerSecond: s.decodeTokensPerSecond,
      };
    });
    this.hooks = {
      promptProcessed: (n) => {
        this.totals.prompt += n;
        this.promptRate.add(n);
        this.metrics.addPromptTokens(n);
      },
      tokensGenerated: (n) => {
        this.totals.generated += n;
        this.decodeRate.add(n);
        this.metrics.addGeneratedTokens(n);
      },
      firstToken: (seconds) => this.metrics.firstToken(seconds),
      finished: (ms) => {
        this.totals.completed++;
        this.totals.durationMsSum += ms;
      },
      contextHeld: (sequence, tokens) => {
        if (tokens > 0) this.contextHeld.set(sequence, tokens);
        else this.contextHeld.delete(sequence);
      },
      messagesDropped: (count) => {
        this.totals.droppedMessages += count;
      },
      streamFailed: (error) => this.noteFailure(error),
    };
  }

  /** The id clients send as `model`: the option, else the model file's name without extension; null while loading. */
  modelId(): string | null {
    if (this.settings.modelId !== undefined) return this.settings.modelId;
    if (this.engine === null) return null;
    const name = basename(this.engine.source);
    return name.length > 0 && name !== "." ? basename(name, extname(name)) : "halo";
  }

  /** Remembers a failure of the model itself (not of one request): /health reports it from now on. */
  noteFailure(error: unknown): void {
    if (this.modelFailure !== null || !isModelFailure(error)) return;
    this.modelFailure = error;
    this.logger.log("error", "model-failed", { error: error instanceof Error ? error.message : String(error) });
  }

  /** The engine, or `SERVER_LOAD_FAILED` / `SERVER_LOADING` (503) for a route that needs it. */
  requireEngine(): Engine {
    if (this.engine !== null) return this.engine;
    if (this.loadError !== null) {
      throw new HaloError(ServerErrorCode.SERVER_LOAD_FAILED, "the model failed to load", {
        actual: this.loadError instanceof Error ? this.loadError.message : String(this.loadError),
      });
    }
    throw new HaloError(ServerErrorCode.SERVER_LOADING, "the model is still loading", { hint: "Poll GET /health until it answers 200" });
  }

  /** `Retry-After` of a 429: the mean request time × the queue ahead / parallel, 1–300 s (5 s per request before any finished). */
  retryAfterSeconds(): number {
    const mean = this.totals.completed > 0 ? this.totals.durationMsSum / this.totals.completed / 1000 : 5;
    const waiting = this.admission?.waitingCount ?? 0;
    return Math.max(1, Math.min(300, Math.ceil((mean * (waiting + 1)) / (this.parallel ?? 1))));
  }

  /** What a generation on `engine` (the ready one: its admission queue exists) needs from this server. */
  generationContext(engine: Engine, shutdownSignal: AbortSignal): GenerationContext {
    const admission = this.admission;
    if (admission === null) throw new HaloError(ServerErrorCode.SERVER_INTERNAL, "a generation started before the server's admission queue was made");
    const { requestTimeoutMs, defaultMaxTokens, keepAliveMs, contextShift } = this.settings;
    return {
      engine,
      modelId: this.modelId() ?? "halo",
      admission,
      requestTimeoutMs,
      defaultMaxTokens,
      keepAliveMs,
      contextShift,
      shutdownSignal,
      hooks: this.hooks,
    };
  }

  /** A snapshot of counters and live rates. */
  stats(): ServerStats {
    const engine = this.engine;
    const engineStats = engine === null ? null : engine.stats();
    const kv = engineStats === null ? null : engineStats.kv;
    const spec = engineStats?.speculative;
    return {
      status: this.shuttingDown
        ? "shutting-down"
        : this.modelFailure !== null
          ? "failed"
          : engine !== null
            ? "ready"
            : this.loadError !== null
              ? "failed"
              : "loading",
      model: this.modelId(),
      label: this.settings.modelLabel ?? null,
      backend: engine?.backend ?? null,
      skippedBackends: engine?.skippedBackends ?? [],
      contextLength: engine?.contextLength ?? null,
      chatTemplate: engine === null ? null : templateInfo(engine),
      parallel: this.parallel,
      maxQueue: this.settings.maxQueue,
      active: this.admission?.activeCount ?? 0,
      queued: this.admission?.waitingCount ?? 0,
      decodeTokensPerSecond: this.decodeRate.perSecond(),
      promptTokensPerSecond: this.promptRate.perSecond(),
      kvUsage: kv === null || kv.positionsCapacity === 0 ? 0 : Math.min(1, kv.positionsInUse / kv.positionsCapacity),
      kv,
      completedRequests: this.totals.completed,
      generatedTokens: this.totals.generated,
      promptTokens: this.totals.prompt,
      uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      auth: this.settings.apiKeys.length > 0,
      contextTokens: [...this.contextHeld.values()],
      droppedMessages: this.totals.droppedMessages,
      speculative:
        spec === undefined
          ? null
          : {
              drafter: spec.drafter,
              label: spec.label,
              acceptanceRate: spec.acceptanceRate,
              tokensPerStep: spec.tokensPerStep,
              draftedTokens: spec.draftedTokens,
              acceptedTokens: spec.acceptedTokens,
              verifySteps: spec.verifySteps,
              decodeSteps: spec.decodeSteps,
            },
    };
  }
}
