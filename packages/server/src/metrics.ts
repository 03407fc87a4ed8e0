// Prometheus metrics of a server (prom-client, one registry per server): requests, tokens, rates, queue, KV.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** Live values the gauges read at scrape time. */
export interface LiveGauges {
  readonly queueDepth: number;
  readonly activeSequences: number;
  /** KV positions in use / KV positions available, in [0, 1]. */
  readonly kvUsage: number;
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

  constructor(live: () => LiveGauges) {
    const registers = [this.registry];
    this.requests = new Counter({ name: "halo_requests_total", help: "HTTP requests answered, by route and status", labelNames: ["route", "status"], registers });
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
    const gauge = (name: string, help: string, read: (g: LiveGauges) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(live()));
        },
      });
    };
    gauge("halo_prompt_tokens_per_second", "Prompt tokens processed per second over the last 2 s", (g) => g.promptTokensPerSecond);
    gauge("halo_decode_tokens_per_second", "Tokens generated per second over the last 2 s, all sequences together", (g) => g.decodeTokensPerSecond);
    gauge("halo_queue_depth", "Requests waiting for a sequence slot", (g) => g.queueDepth);
    gauge("halo_active_sequences", "Sequences generating now", (g) => g.activeSequences);
    gauge("halo_kv_usage_ratio", "KV cache positions in use over positions available", (g) => g.kvUsage);
    collectDefaultMetrics({ register: this.registry });
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
