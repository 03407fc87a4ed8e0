// Prometheus metrics of a server (prom-client, one registry per server): requests, tokens, rates, queue, KV.
import type { EngineStats, PrefixCacheStats, SpeculativeEngineStats } from "@halo/engine";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** Live values the gauges read at scrape time. */
export interface LiveGauges {
  readonly queueDepth: number;
  readonly activeSequences: number;
  /** KV positions in use / KV positions available, in [0, 1]. */
  readonly kvUsage: number;
  /** The engine's KV cache (`Engine.stats().kv`); null while the model loads. */
  readonly kv: EngineStats["kv"] | null;
  readonly promptTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
}

/**
 * The server's Prometheus metrics, in their own registry (several servers in one process do not
 * collide). Names follow llama-server's `llamacpp:*` semantics under a `halo_` prefix:
 *
 * | metric | kind |
 * |---|---|
 * | `halo_requests_total{route,status}` | counter |
 * | `halo_request_duration_seconds{route}` | histogram |
 * | `halo_time_to_first_token_seconds` | histogram |
 * | `halo_prompt_tokens_total`, `halo_generated_tokens_total` | counters |
 * | `halo_prompt_tokens_per_second`, `halo_decode_tokens_per_second` | gauges (last 2 s, all sequences) |
 * | `halo_queue_depth`, `halo_active_sequences`, `halo_kv_usage_ratio` | gauges |
 * | `halo_kv_slots_in_use`, `halo_kv_slots` | gauges (KV slots held / the engine's `maxSequences`) |
 * | `halo_kv_positions_in_use`, `halo_kv_positions_capacity` | gauges (KV positions filled / slots × context) |
 * | `halo_kv_bytes_in_use`, `halo_kv_bytes_capacity` | gauges, only when the backend estimates its KV bytes ({@link ServerMetrics.addKvByteGauges}) |
 * | `halo_speculative_drafted_tokens_total`, `halo_speculative_accepted_tokens_total`, `halo_speculative_verify_steps_total`, `halo_speculative_decode_steps_total` | counters, only when the model drafts ({@link ServerMetrics.addSpeculativeMetrics}) |
 * | `halo_speculative_acceptance_ratio`, `halo_speculative_tokens_per_step`, `halo_speculative_info{drafter,label}` | gauges, the same |
 * | `halo_prefix_cache_hits_total`, `halo_prefix_cache_misses_total`, `halo_prefix_cache_reused_tokens_total`, `halo_prefix_cache_evictions_total` | counters, when the engine keeps a prefix cache ({@link ServerMetrics.addPrefixCacheMetrics}) |
 * | `halo_prefix_cache_sequences`, `halo_prefix_cache_positions` | gauges, the same |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`).
 *
 * @example
 * ```ts
 * const metrics = new ServerMetrics(() => liveGauges());
 * metrics.requestDone("/v1/chat/completions", 200, 0.42);
 * const text = await metrics.registry.metrics();
 * ```
 */
export class ServerMetrics {
  /** The prom-client registry (`await registry.metrics()` is the exposition text). */
  readonly registry = new Registry();
  private readonly requests: Counter<"route" | "status">;
  private readonly duration: Histogram<"route">;
  private readonly ttft: Histogram;
  private readonly promptTokens: Counter;
  private readonly generatedTokens: Counter;
  private readonly gauge: (name: string, help: string, read: (g: LiveGauges) => number) => void;
  private kvBytes = false;
  private speculative = false;
  private prefixCache = false;

  constructor(live: () => LiveGauges) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "halo_requests_total",
      help: "HTTP requests answered, by route and status",
      labelNames: ["route", "status"],
      registers,
    });
    this.duration = new Histogram({
      name: "halo_request_duration_seconds",
      help: "Time from request to the end of the answer",
      labelNames: ["route"],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.ttft = new Histogram({
      name: "halo_time_to_first_token_seconds",
      help: "Time from request to the first generated token (queue wait plus prefill)",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.promptTokens = new Counter({ name: "halo_prompt_tokens_total", help: "Prompt tokens processed", registers });
    this.generatedTokens = new Counter({ name: "halo_generated_tokens_total", help: "Tokens generated", registers });
    this.gauge = (name, help, read) => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(live()));
        },
      });
    };
    const gauge = this.gauge;
    gauge("halo_prompt_tokens_per_second", "Prompt tokens processed per second over the last 2 s", (g) => g.promptTokensPerSecond);
    gauge("halo_decode_tokens_per_second", "Tokens generated per second over the last 2 s, all sequences together", (g) => g.decodeTokensPerSecond);
    gauge("halo_queue_depth", "Requests waiting for a sequence slot", (g) => g.queueDepth);
    gauge("halo_active_sequences", "Sequences generating now", (g) => g.activeSequences);
    gauge("halo_kv_usage_ratio", "KV cache positions in use over positions available", (g) => g.kvUsage);
    gauge("halo_kv_slots_in_use", "KV slots held: running generations and live sessions", (g) => g.kv?.slotsInUse ?? 0);
    gauge("halo_kv_slots", "KV slots the backend holds at most (the engine's maxSequences)", (g) => g.kv?.maxSequences ?? 0);
    gauge("halo_kv_positions_in_use", "KV positions filled across the slots in use", (g) => g.kv?.positionsInUse ?? 0);
    gauge("halo_kv_positions_capacity", "KV positions available: slots times context length", (g) => g.kv?.positionsCapacity ?? 0);
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Adds `halo_kv_bytes_in_use` and `halo_kv_bytes_capacity`, for an engine whose backend
   * estimates its KV bytes (`kv.bytesPerPosition`); without an estimate they are left out rather
   * than reported as 0. Idempotent.
   */
  addKvByteGauges(): void {
    if (this.kvBytes) return;
    this.kvBytes = true;
    this.gauge("halo_kv_bytes_in_use", "Bytes of the KV positions filled (positions in use times bytes per position)", (g) => g.kv?.bytesInUse ?? 0);
    this.gauge("halo_kv_bytes_capacity", "Bytes of KV cache the backend holds for every slot", (g) => g.kv?.bytesCapacity ?? 0);
  }

  /**
   * Adds speculative decoding's metrics, for an engine loaded with a drafter: counters of drafted
   * and accepted tokens, verify steps (steps that fed drafts) and decode steps (steps that produced
   * tokens), and gauges of the acceptance rate and tokens per step, all since the model loaded, read
   * from `read` (`engine.stats().speculative`) at scrape time; `halo_speculative_info` names the
   * drafter. Without a drafter they are left out rather than reported as 0. Idempotent.
   */
  addSpeculativeMetrics(read: () => SpeculativeEngineStats | undefined): void {
    if (this.speculative) return;
    this.speculative = true;
    const registers = [this.registry];
    const counter = (name: string, help: string, value: (s: SpeculativeEngineStats) => number): void => this.statCounter(name, help, read, value);
    counter("halo_speculative_drafted_tokens_total", "Drafted tokens fed for verification", (s) => s.draftedTokens);
    counter("halo_speculative_accepted_tokens_total", "Drafted tokens the model accepted", (s) => s.acceptedTokens);
    counter("halo_speculative_verify_steps_total", "Decode steps that verified drafts", (s) => s.verifySteps);
    counter("halo_speculative_decode_steps_total", "Steps that produced tokens (verifying drafts or not)", (s) => s.decodeSteps);
    const gauge = (name: string, help: string, value: (s: SpeculativeEngineStats) => number): void => this.statGauge(name, help, read, value);
    gauge("halo_speculative_acceptance_ratio", "Accepted over drafted tokens since the model loaded", (s) => s.acceptanceRate);
    gauge(
      "halo_speculative_tokens_per_step",
      "Tokens generated per step that produced tokens since the model loaded (1 without accepted drafts)",
      (s) => s.tokensPerStep,
    );
    new Gauge({
      name: "halo_speculative_info",
      help: "The drafter of speculative decoding (always 1; the labels say which)",
      labelNames: ["drafter", "label"],
      registers,
      collect() {
        const stats = read();
        this.reset();
        if (stats !== undefined) this.set({ drafter: stats.drafter, label: stats.label }, 1);
      },
    });
  }

  /**
   * Adds the prefix cache's metrics, for an engine that keeps one: counters of hits, misses, prompt tokens reused (not
   * computed) and kept sequences evicted, and gauges of the sequences and positions kept now, read from `read`
   * (`engine.stats().prefixCache`) at scrape time. Left out for an engine without the cache. Idempotent.
   */
  addPrefixCacheMetrics(read: () => PrefixCacheStats | undefined): void {
    if (this.prefixCache) return;
    this.prefixCache = true;
    const counter = (name: string, help: string, value: (s: PrefixCacheStats) => number): void => this.statCounter(name, help, read, value);
    counter("halo_prefix_cache_hits_total", "Generations that started from a cached prompt prefix", (s) => s.hits);
    counter("halo_prefix_cache_misses_total", "Generations that found no cached prefix to start from", (s) => s.misses);
    counter("halo_prefix_cache_reused_tokens_total", "Prompt tokens taken from the prefix cache instead of computed", (s) => s.reusedTokens);
    counter("halo_prefix_cache_evictions_total", "Kept sequences freed to make room for a request or a session", (s) => s.evictions);
    const gauge = (name: string, help: string, value: (s: PrefixCacheStats) => number): void => this.statGauge(name, help, read, value);
    gauge("halo_prefix_cache_sequences", "Finished sequences whose KV is kept for their prefix", (s) => s.cachedSequences);
    gauge("halo_prefix_cache_positions", "KV positions the kept sequences hold", (s) => s.cachedPositions);
  }

  /**
   * A counter of an engine total read at scrape time (`read()`; absent: nothing). The engine counts since load, so the
   * counter shows its value (it only grows).
   */
  private statCounter<T>(name: string, help: string, read: () => T | undefined, value: (stats: T) => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        const stats = read();
        this.reset();
        if (stats !== undefined && value(stats) > 0) this.inc(value(stats));
      },
    });
  }

  /** A gauge of an engine figure read at scrape time (0 while `read()` has none). */
  private statGauge<T>(name: string, help: string, read: () => T | undefined, value: (stats: T) => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const stats = read();
        this.set(stats === undefined ? 0 : value(stats));
      },
    });
  }

  /** Counts an answered request. */
  requestDone(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.duration.observe({ route }, seconds);
  }

  /** Records a time to first token. */
  firstToken(seconds: number): void {
    this.ttft.observe(seconds);
  }

  /** Counts processed prompt tokens. */
  addPromptTokens(count: number): void {
    this.promptTokens.inc(count);
  }

  /** Counts generated tokens. */
  addGeneratedTokens(count: number): void {
    this.generatedTokens.inc(count);
  }
}
