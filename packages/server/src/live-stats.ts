// The /_live/stats feed: one SSE record now, then one every interval, to every subscriber; one timer for all.
import type { ServerResponse } from "node:http";
import { sendSseData, startSse } from "./sse.js";

/**
 * Fans a stats snapshot out to SSE subscribers. The timer runs only while someone listens and is
 * `unref`'d, so an idle server holds no timer and a process can exit.
 *
 * @example
 * ```ts
 * const feed = new LiveStatsFeed(() => server.stats(), 1500);
 * feed.subscribe(res, { "x-request-id": id });
 * feed.closeAll(); // at shutdown
 * ```
 */
export class LiveStatsFeed {
  private readonly subscribers = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly snapshot: () => unknown,
    /** Milliseconds between records. */
    readonly intervalMs: number,
  ) {}

  /** Subscribers now. */
  get size(): number {
    return this.subscribers.size;
  }

  /** Starts an SSE answer on `res` and keeps it fed until the client leaves. */
  subscribe(res: ServerResponse, headers: Readonly<Record<string, string>>): void {
    startSse(res, headers);
    this.subscribers.add(res);
    res.on("close", () => {
      this.subscribers.delete(res);
      if (this.subscribers.size === 0) this.stop();
    });
    sendSseData(res, this.snapshot());
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Ends every subscriber's stream (shutdown). */
  closeAll(): void {
    for (const res of this.subscribers) res.end();
    this.subscribers.clear();
    this.stop();
  }

  private tick(): void {
    if (this.subscribers.size === 0) return;
    const value = this.snapshot();
    for (const res of this.subscribers) sendSseData(res, value);
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
