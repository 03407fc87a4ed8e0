// The bounded queue in front of the engine: at most `maxActive` generations run, `maxQueue` wait, the rest get 429.
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

interface Waiter {
  readonly resolve: (release: () => void) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
}

/**
 * Admission control for generations. `enter` either admits at once (a sequence slot is free),
 * queues FIFO (the queue has room), or throws `SERVER_QUEUE_FULL` synchronously so the server can
 * answer 429 before reading further. A queued request whose signal aborts (client gone, timeout)
 * leaves the queue at once. The engine never sees more than `maxActive` sequences, so its own
 * queue stays empty and the server's numbers are the truth.
 *
 * @example
 * ```ts
 * const queue = new AdmissionQueue(4, 16);
 * const release = await queue.enter(controller.signal); // may throw SERVER_QUEUE_FULL
 * try { await generate(); } finally { release(); }
 * ```
 */
export class AdmissionQueue {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    /** Generations that may run at once (the engine's `maxSequences`). */
    readonly maxActive: number,
    /** Requests that may wait for a slot. */
    readonly maxQueue: number,
  ) {}

  /** Running generations. */
  get activeCount(): number {
    return this.active;
  }

  /** Requests waiting for a slot. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Admits, queues, or throws `SERVER_QUEUE_FULL`. The returned function releases the slot (idempotent). */
  enter(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.active < this.maxActive) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) {
      throw new HaloError(ServerErrorCode.SERVER_QUEUE_FULL, "the server is busy: every sequence is generating and the wait queue is full", {
        expected: `at most ${this.maxActive} running and ${this.maxQueue} waiting`,
        actual: `${this.active} running, ${this.waiting.length} waiting`,
        hint: "Retry after the Retry-After seconds",
      });
    }
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.waiting.indexOf(waiter);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Rejects every waiting request with `error` (shutdown). Running ones are not touched. */
  rejectWaiting(error: unknown): void {
    for (const waiter of this.waiting.splice(0)) {
      waiter.signal.removeEventListener("abort", waiter.onAbort);
      waiter.reject(error);
    }
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      const next = this.waiting.shift();
      if (next !== undefined) {
        next.signal.removeEventListener("abort", next.onAbort);
        this.active++;
        next.resolve(this.releaser());
      }
    };
  }
}
