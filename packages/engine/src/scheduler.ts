// Continuous batching: every live sequence contributes rows to one backend step; new ones join between steps.
import type { LoadedModel } from "@halo/kernels";

/**
 * One sequence the scheduler drives. The scheduler feeds `pending` tokens (prompt chunks, then
 * each sampled token), asks for logits where the task wants them, and calls back.
 * @internal
 */
export interface SequenceTask {
  /** Tokens still to run, oldest first. The scheduler consumes from the front. */
  pending: number[];
  /** `"last"`: logits of the last pending row only when the queue empties; `"all"`: every row. */
  readonly logits: "last" | "all";
  /** Set by the owner to stop the task at the next step boundary. */
  cancelled: boolean;
  /**
   * A KV slot the task's owner holds (a session), whose sequence already has `slot.length`
   * positions: the task continues it and the slot is not freed at the end. Absent: the scheduler
   * allocates a fresh slot and frees it when the task ends.
   */
  readonly slot?: { readonly id: number; readonly length: number };
  /** Called when the task first runs in a step. */
  onStart?(): void;
  /**
   * Logits for this task's requested rows of one step (`rows` rows of `vocab` floats, in order,
   * starting at sequence position `firstPosition`). Return tokens to append to `pending`, or
   * `null` to finish the task.
   */
  onLogits(logits: Float32Array, rows: number, firstPosition: number): number[] | null;
  /** Called once when the task ends (finished, cancelled or failed); the slot is already free. */
  onEnd(error: unknown): void;
}

interface Live {
  readonly task: SequenceTask;
  slot: number;
  position: number;
  started: boolean;
  /** True when the scheduler allocated the slot (and so frees it). */
  owned: boolean;
}

/** Options of {@link Scheduler}. @internal */
export interface SchedulerOptions {
  /** Most rows in one step (all sequences together). */
  readonly maxBatchTokens: number;
  /** Most prompt rows one sequence adds to a step, so decoding sequences are not starved. */
  readonly prefillChunk: number;
}

/** Aggregate counters (for stats and metrics). */
export interface SchedulerStats {
  /** Sequences holding a KV slot. */
  readonly activeSequences: number;
  /** Sequences waiting for a slot. */
  readonly queuedSequences: number;
  /** Steps run since creation. */
  readonly steps: number;
  /** Rows (tokens) processed since creation. */
  readonly rows: number;
}

/** Runs every task's rows through `model.step`, many sequences per step. @internal */
export class Scheduler {
  private readonly waiting: SequenceTask[] = [];
  private readonly live: Live[] = [];
  private running = false;
  private steps = 0;
  private rows = 0;
  private fatal: unknown = null;
  /** The last admit() found no free slot for the head of the queue. */
  private blocked = false;

  constructor(
    private readonly model: LoadedModel,
    private readonly options: SchedulerOptions,
  ) {}

  /** Queues a task; it starts when a KV slot is free. */
  submit(task: SequenceTask): void {
    this.waiting.push(task);
    this.kick();
  }

  stats(): SchedulerStats {
    return { activeSequences: this.live.length, queuedSequences: this.waiting.length, steps: this.steps, rows: this.rows };
  }

  /** Slots the scheduler allocated for running tasks (a session's slot is its owner's to count). */
  ownedSlots(): number[] {
    return this.live.filter((live) => live.owned).map((live) => live.slot);
  }

  /** Cancels everything (dispose): each task ends with `error`. */
  cancelAll(error: unknown): void {
    this.fatal = error;
    for (const task of this.waiting.splice(0)) task.onEnd(error);
    for (const live of this.live.splice(0)) {
      this.release(live);
      live.task.onEnd(error);
    }
  }

  /** Call when a KV slot was freed outside the scheduler (a session ended): queued tasks may start. */
  wake(): void {
    if (this.waiting.length > 0) this.kick();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Run the loop off the caller's stack; errors are delivered to the tasks.
    queueMicrotask(() => {
      void this.loop().finally(() => {
        this.running = false;
        // Tasks that arrived while the loop was finishing; a queue blocked on slots waits for wake().
        if (this.fatal === null && (this.live.length > 0 || (this.waiting.length > 0 && !this.blocked))) this.kick();
      });
    });
  }

  private admit(): void {
    this.blocked = false;
    while (this.waiting.length > 0) {
      const task = this.waiting[0]!;
      if (task.cancelled) {
        this.waiting.shift();
        task.onEnd(null);
        continue;
      }
      if (task.slot !== undefined) {
        this.waiting.shift();
        this.live.push({ task, slot: task.slot.id, position: task.slot.length, started: false, owned: false });
        continue;
      }
      let slot: number;
      try {
        slot = this.model.allocateSequence();
      } catch {
        this.blocked = true; // no free slot: wait for one to be released
        return;
      }
      this.waiting.shift();
      this.live.push({ task, slot, position: 0, started: false, owned: true });
    }
  }

  private release(live: Live): void {
    if (!live.owned) return;
    try {
      this.model.freeSequence(live.slot);
    } catch {
      // already freed or model disposed: nothing to release
    }
  }

  private finish(live: Live, error: unknown): void {
    const index = this.live.indexOf(live);
    if (index >= 0) this.live.splice(index, 1);
    this.release(live);
    live.task.onEnd(error);
  }

  private async loop(): Promise<void> {
    for (;;) {
      // Yield to the event loop between steps, so timers, sockets and abort signals are served
      // even when a backend's step runs synchronously (the reference backend does).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.fatal !== null) return;
      for (const live of [...this.live]) if (live.task.cancelled) this.finish(live, null);
      this.admit();
      if (this.live.length === 0) return; // idle, or every slot is held by a session: wake() resumes

      // Decoding sequences (one pending token) first, so a long prompt never stalls them.
      const order = [...this.live].sort((a, b) => a.task.pending.length - b.task.pending.length);
      const tokens: number[] = [];
      const positions: number[] = [];
      const slots: number[] = [];
      const logitRows: number[] = [];
      const parts: Array<{ live: Live; count: number; firstRow: number; logitCount: number; firstPosition: number }> = [];
      let budget = this.options.maxBatchTokens;
      for (const live of order) {
        if (budget === 0) break;
        const pending = live.task.pending;
        if (pending.length === 0) continue;
        const count = Math.min(pending.length, this.options.prefillChunk, budget);
        budget -= count;
        const firstRow = tokens.length;
        let logitCount = 0;
        let firstLogitPosition = live.position;
        for (let i = 0; i < count; i++) {
          tokens.push(pending[i]!);
          positions.push(live.position + i);
          slots.push(live.slot);
        }
        if (live.task.logits === "all") {
          for (let i = 0; i < count; i++) logitRows.push(firstRow + i);
          logitCount = count;
        } else if (count === pending.length) {
          logitRows.push(firstRow + count - 1);
          logitCount = 1;
          firstLogitPosition = live.position + count - 1;
        }
        parts.push({ live, count, firstRow, logitCount, firstPosition: firstLogitPosition });
      }
      if (parts.length === 0) {
        // Live tasks with nothing pending cannot progress: end them.
        for (const live of [...this.live]) if (live.task.pending.length === 0) this.finish(live, null);
        continue;
      }
      for (const part of parts) {
        if (!part.live.started) {
          part.live.started = true;
          part.live.task.onStart?.();
        }
      }
      let logits: Float32Array;
      try {
        logits = await this.model.step({
          tokens: Int32Array.from(tokens),
          positions: Int32Array.from(positions),
          slots: Int32Array.from(slots),
          logitRows: Int32Array.from(logitRows),
        });
      } catch (error) {
        // A step error belongs to every sequence in it; others continue.
        for (const part of parts) this.finish(part.live, error);
        continue;
      }
      this.steps++;
      this.rows += tokens.length;
      const vocab = this.model.config.vocabSize;
      let logitOffset = 0;
      for (const part of parts) {
        const { live, count, logitCount } = part;
        live.task.pending.splice(0, count);
        live.position += count;
        if (logitCount === 0) continue;
        const rows = logits.subarray(logitOffset * vocab, (logitOffset + logitCount) * vocab);
        logitOffset += logitCount;
        let next: number[] | null;
        try {
          next = live.task.cancelled ? null : live.task.onLogits(rows, logitCount, part.firstPosition);
        } catch (error) {
          this.finish(live, error);
          continue;
        }
        if (next === null) this.finish(live, null);
        else {
          live.task.pending.push(...next);
          if (live.task.pending.length === 0) this.finish(live, null);
        }
      }
    }
  }
}
