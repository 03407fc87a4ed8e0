// Continuous batching: every live sequence contributes rows to one backend step, as its step plan says; new ones join between steps.
import { HaloError } from "@halo/errors";
import { argmaxRows, forwardBatch, type BackendCapabilities, type LoadedModel, type StepResult } from "@halo/kernels";
import { EngineErrorCode } from "./errors.js";
import type { StepOutputs, StepPlan, SequenceUpdate } from "./step-plan.js";

/**
 * One sequence the scheduler drives. It keeps the sequence's pending queue (tokens not yet in the
 * KV cache, starting with `prompt`) and its length; each step it offers the task up to
 * `maxRows` pending tokens, the task's {@link plan} says how many to feed and which rows to
 * return, and {@link onStep} answers with tokens to queue and, to rewind, a length to keep.
 * @internal
 */
export interface SequenceTask {
  /** The first tokens to run (a prompt), oldest first. */
  readonly prompt: readonly number[];
  /** Set by the owner to stop the task at the next step boundary. */
  cancelled: boolean;
  /**
   * A KV slot the task's owner holds (a session), whose sequence already has `slot.length`
   * positions: the task continues it and the slot is not freed at the end. Absent: the scheduler
   * allocates a fresh slot and frees it when the task ends.
   */
  readonly slot?: { readonly id: number; readonly length: number };
  /**
   * The task's prompt may start from a cached prefix (the prefix cache): a generation, whose rows before the last are
   * never read. Tasks that read every row's output (perplexity, evaluation, embeddings) leave it unset.
   */
  readonly reusePrefix?: boolean;
  /** Called before the task first runs when its first `tokens` prompt tokens came from the prefix cache (not computed). */
  onPrefixReused?(tokens: number): void;
  /** Called when the task first runs in a step. */
  onStart?(): void;
  /**
   * Called before each step is planned (every live task's together, awaited together): tokens to
   * queue after the pending ones for this step — a speculative task's drafts. The drafts of every
   * task are made before the step, so draft-model steps of many sequences can batch.
   */
  prepare?(pending: readonly number[], length: number): readonly number[] | Promise<readonly number[]>;
  /**
   * This step's plan, given the pending tokens (`pending.length ≥ 1`), how many of them the step
   * can take, and the sequence's length (the position of `pending[0]`).
   */
  plan(pending: readonly number[], maxRows: number, length: number): StepPlan;
  /**
   * The outputs of the rows the plan asked for (called only when it asked for some). Return the
   * tokens to queue and optionally a rewind, or `null` to finish the task. The task also ends
   * when nothing is left pending.
   */
  onStep(outputs: StepOutputs): SequenceUpdate | null;
  /** Called once when the task ends (finished, cancelled or failed); the slot is already free. */
  onEnd(error: unknown): void;
}

interface Live {
  readonly task: SequenceTask;
  readonly pending: number[];
  slot: number;
  /** Positions the sequence holds (the position of `pending[0]`). */
  position: number;
  started: boolean;
  /** True when the scheduler allocated the slot (and so frees it, or parks it in the prefix cache). */
  owned: boolean;
  /** The token at each position the slot holds (`position` of them), kept for the prefix cache when `owned`. */
  readonly fed: number[];
}

/** The best prefix a new prompt can start from: the slot holding it, the kept entry (null: a running sequence), its length. */
interface PrefixHit {
  readonly source: number;
  readonly entry: Parked | null;
  readonly length: number;
}

/** A finished sequence's KV slot kept for its prefix: `tokens[p]` is the token at position p. */
interface Parked {
  readonly slot: number;
  readonly tokens: readonly number[];
  lastUsed: number;
}

/** One live sequence's rows in the step being built. */
interface Part {
  readonly live: Live;
  readonly plan: StepPlan;
  /** Batch row of the plan's first fed token. */
  readonly firstRow: number;
  /** Index of its first output row among the batch's `logitRows`. */
  readonly firstOutput: number;
  /** Index of its first hidden row among the batch's `hiddenRows`. */
  readonly firstHidden: number;
}

/** Options of {@link Scheduler}. @internal */
export interface SchedulerOptions {
  /** Most rows in one step (all sequences together). */
  readonly maxBatchTokens: number;
  /** Most rows one sequence adds to a step (half of `maxBatchTokens` in the engine), so a long prompt never starves decoding sequences. */
  readonly prefillChunk: number;
  /**
   * What the backend returns besides logits (its `capabilities()`): a step asks the backend for
   * argmax only when `outputs` lists it, and a plan asking hidden rows runs only when `hiddenRows` is true.
   */
  readonly capabilities: Pick<BackendCapabilities, "outputs" | "hiddenRows">;
  /**
   * Called after every step with its rows, the rows whose output it returned, and its wall time from
   * planning to the last sequence's answer (the backend step and the host's work around it — what a
   * step costs a generation; drafting before the step is not included). A cost model learns from it.
   */
  readonly onStepTimed?: (rows: number, outputRows: number, ms: number) => void;
  /**
   * The prefix cache: a finished generation's slot is kept (not freed) with the tokens it holds, and a new generation
   * whose prompt starts with at least `minTokens` of them continues from a copy of that KV (`copySequence`; without it,
   * from the slot itself) instead of computing the prefix again. Kept slots are freed, least recently used first, when
   * a sequence or a session needs a slot. Absent: slots are freed when their task ends.
   */
  readonly prefixCache?: { readonly minTokens: number };
}

/** Counters of the prefix cache ({@link SchedulerOptions.prefixCache}). */
export interface PrefixCacheStats {
  /** Finished sequences whose KV is kept for their prefix. */
  readonly cachedSequences: number;
  /** Positions those sequences hold. */
  readonly cachedPositions: number;
  /** Generations that started from a cached prefix, and those that found none (both since creation). */
  readonly hits: number;
  readonly misses: number;
  /** Prompt tokens taken from the cache instead of computed, since creation. */
  readonly reusedTokens: number;
  /** Kept sequences freed to make room. */
  readonly evictions: number;
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

/** Runs every task's planned rows through `forwardBatch`, many sequences per step. @internal */
export class Scheduler {
  private readonly waiting: SequenceTask[] = [];
  private readonly live: Live[] = [];
  private running = false;
  private steps = 0;
  private rows = 0;
  private fatal: unknown = null;
  /** The last admit() found no free slot for the head of the queue. */
  private blocked = false;
  /** The prefix cache's kept slots, and its counters. */
  private readonly parked: Parked[] = [];
  private useClock = 0;
  private hits = 0;
  private misses = 0;
  private reusedTokens = 0;
  private evictions = 0;
  /** Kept slots a copy is being made from (never freed until it is done). */
  private readonly pinned = new Set<Parked>();

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

  /**
   * Slots the scheduler allocated for running tasks (a session's slot is its owner's to count; slots kept by the prefix
   * cache are in {@link prefixCacheStats}: they hold memory but are freed whenever a slot is wanted).
   */
  ownedSlots(): number[] {
    return this.live.filter((live) => live.owned).map((live) => live.slot);
  }

  /** The prefix cache's counters (all zero when it is off). */
  prefixCacheStats(): PrefixCacheStats {
    return {
      cachedSequences: this.parked.length,
      cachedPositions: this.parked.reduce((sum, entry) => sum + entry.tokens.length, 0),
      hits: this.hits,
      misses: this.misses,
      reusedTokens: this.reusedTokens,
      evictions: this.evictions,
    };
  }

  /**
   * A free KV slot for someone outside the scheduler (a session): allocated, freeing the least recently used cached
   * prefix when none is free. Throws what `allocateSequence` throws when nothing is left to free.
   */
  allocateSlot(): number {
    return this.allocateFreeing(null) ?? this.model.allocateSequence();
  }

  /** Frees the least recently used kept slot (never `keep`, nor one a copy is being made from); false when there is none. */
  private evictOne(keep?: Parked): boolean {
    let victim = -1;
    for (let i = 0; i < this.parked.length; i++) {
      const entry = this.parked[i]!;
      if (entry === keep || this.pinned.has(entry)) continue;
      if (victim < 0 || entry.lastUsed < this.parked[victim]!.lastUsed) victim = i;
    }
    if (victim < 0) return false;
    const [entry] = this.parked.splice(victim, 1);
    this.evictions++;
    try {
      this.model.freeSequence(entry!.slot);
    } catch {
      // already freed or model disposed
    }
    return true;
  }

  /** A free slot, freeing kept slots (never `keep`) least recently used first; null when none can be had. */
  private allocateFreeing(keep: Parked | null): number | null {
    for (;;) {
      try {
        return this.model.allocateSequence();
      } catch {
        if (!this.evictOne(keep ?? undefined)) return null;
      }
    }
  }

  /** `task` continues the kept slot `kept` itself (leaving the cache), cut back to the first `length` positions. */
  private takeOver(task: SequenceTask, kept: Parked, length: number): void {
    this.parked.splice(this.parked.indexOf(kept), 1);
    const live: Live = {
      task,
      pending: task.prompt.slice(length),
      slot: kept.slot,
      position: length,
      started: false,
      owned: true,
      fed: task.prompt.slice(0, length),
    };
    this.live.push(live);
    try {
      this.model.truncateSequence(kept.slot, length);
    } catch (error) {
      this.finish(live, error);
      return;
    }
    this.hit(task, length);
  }

  /** The kept sequence sharing the longest prefix with `prompt` (at least `minTokens`, leaving one prompt token to run). */
  private bestPrefix(prompt: readonly number[]): PrefixHit | null {
    const cache = this.options.prefixCache;
    if (cache === undefined) return null;
    let best: PrefixHit | null = null;
    const consider = (tokens: readonly number[], source: number, entry: Parked | null): void => {
      const limit = Math.min(tokens.length, prompt.length - 1);
      let n = 0;
      while (n < limit && tokens[n] === prompt[n]) n++;
      if (n >= cache.minTokens && (best === null || n > best.length)) best = { source, entry, length: n };
    };
    for (const entry of this.parked) consider(entry.tokens, entry.slot, entry);
    // A running generation's computed positions can be copied too (never taken over): a request that arrives while
    // another with the same system prompt decodes starts from it.
    if (this.model.copySequence !== undefined) {
      // Only sequences that have run a step: a new one's KV may still be arriving by its own copy.
      for (const live of this.live)
        if (live.started && live.owned && live.task.reusePrefix === true && live.fed.length > 0) consider(live.fed, live.slot, null);
    }
    return best;
  }

  /** Cancels everything (dispose): each task ends with `error`. */
  cancelAll(error: unknown): void {
    this.fatal = error;
    this.pinned.clear();
    while (this.evictOne()) this.evictions--;
    for (const task of this.waiting.splice(0)) task.onEnd(error);
    for (const live of this.live.splice(0)) {
      this.release(live);
      live.task.onEnd(error);
    }
  }

  /**
   * Cancels one task: a task still waiting for a slot is removed and ended now (`onEnd(null)`), so
   * an aborted request queued behind a head blocked on slots does not wait for a slot to end; a
   * running one ends at the next step boundary.
   */
  cancel(task: SequenceTask): void {
    task.cancelled = true;
    const index = this.waiting.indexOf(task);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      task.onEnd(null);
      return;
    }
    if (this.live.some((live) => live.task === task)) this.kick();
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

  /**
   * Starts queued tasks while slots are free (freeing kept prefixes when none is). A task whose prompt starts with a kept
   * prefix gets a copy of that KV: the copies run before the next step (the promise returned; null when there are none).
   */
  private admit(): Promise<void> | null {
    this.blocked = false;
    let copies: Promise<void>[] | null = null;
    while (this.waiting.length > 0) {
      const task = this.waiting[0]!;
      if (task.cancelled) {
        this.waiting.shift();
        task.onEnd(null);
        continue;
      }
      if (task.slot !== undefined) {
        this.waiting.shift();
        this.live.push({ task, pending: [...task.prompt], slot: task.slot.id, position: task.slot.length, started: false, owned: false, fed: [] });
        continue;
      }
      const hit = task.reusePrefix === true ? this.bestPrefix(task.prompt) : null;
      const kept = hit?.entry ?? null;
      const canTakeOver = hit !== null && kept !== null && !this.pinned.has(kept);
      // Without copySequence there is nothing to copy into: the task continues the kept slot itself.
      const slot = canTakeOver && this.model.copySequence === undefined ? null : this.allocateFreeing(kept);
      if (slot === null) {
        // No free slot and nothing else to free: the kept slot itself, when the best prefix is one, else wait.
        if (canTakeOver) {
          this.waiting.shift();
          this.takeOver(task, kept!, hit!.length);
          continue;
        }
        this.blocked = true; // no free slot: wait for one to be released
        return copies === null ? null : Promise.all(copies).then(() => undefined);
      }
      this.waiting.shift();
      if (hit === null) {
        if (task.reusePrefix === true && this.options.prefixCache !== undefined) this.misses++;
        this.live.push({ task, pending: [...task.prompt], slot, position: 0, started: false, owned: true, fed: [] });
        continue;
      }
      if (kept !== null) kept.lastUsed = ++this.useClock;
      const live: Live = {
        task,
        pending: task.prompt.slice(hit.length),
        slot,
        position: hit.length,
        started: false,
        owned: true,
        fed: task.prompt.slice(0, hit.length),
      };
      this.live.push(live);
      const { source, length } = hit;
      if (kept !== null) this.pinned.add(kept);
      const copied = (): void => {
        this.model.truncateSequence(slot, length);
        this.hit(task, length);
      };
      const computeAfterAll = (): void => {
        // The copy failed (the model refused it): the task computes its whole prompt in the slot it has.
        try {
          this.model.truncateSequence(slot, 0);
        } catch {
          // disposed: the step reports it
        }
        live.pending.unshift(...task.prompt.slice(0, length));
        live.position = 0;
        live.fed.length = 0;
        this.misses++;
      };
      (copies ??= []).push(
        this.model.copySequence!(source, slot)
          .then(() => (this.model.sequenceLength(slot) >= length ? copied() : computeAfterAll()), computeAfterAll)
          .finally(() => {
            if (kept !== null) this.pinned.delete(kept);
          }),
      );
    }
    return copies === null ? null : Promise.all(copies).then(() => undefined);
  }

  private hit(task: SequenceTask, tokens: number): void {
    this.hits++;
    this.reusedTokens += tokens;
    task.onPrefixReused?.(tokens);
  }

  private release(live: Live, error: unknown = null): void {
    if (!live.owned) return;
    // A generation's slot (finished or cancelled: its KV is valid for every position it holds) is kept for its prefix.
    if (
      this.options.prefixCache !== undefined &&
      live.task.reusePrefix === true &&
      (error === null || error === undefined) &&
      this.fatal === null &&
      live.position > 0
    ) {
      live.fed.length = live.position; // the tokens the slot holds, no more
      this.parked.push({ slot: live.slot, tokens: live.fed, lastUsed: ++this.useClock });
      return;
    }
    try {
      this.model.freeSequence(live.slot);
    } catch {
      // already freed or model disposed: nothing to release
    }
  }

  private finish(live: Live, error: unknown): void {
    const index = this.live.indexOf(live);
    if (index >= 0) this.live.splice(index, 1);
    this.release(live, error);
    live.task.onEnd(error);
  }

  private async loop(): Promise<void> {
    for (;;) {
      // Yield to the event loop between steps, so timers, sockets and abort signals are served
      // even when a backend's step runs synchronously (the reference backend does).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.fatal !== null) return;
      for (const live of [...this.live]) if (live.task.cancelled) this.finish(live, null);
      const copying = this.admit();
      if (copying !== null) await copying;
      if (this.fatal !== null) return;
      if (this.live.length === 0) return; // idle, or every slot is held by a session: wake() resumes
      const preparing = this.prepareStep();
      if (preparing !== null) await preparing;
      if (this.fatal !== null) return;
      const planned = performance.now();
      const parts = this.planStep();
      if (parts.length === 0) {
        // Live tasks with nothing pending cannot progress: end them.
        for (const live of [...this.live]) if (live.pending.length === 0) this.finish(live, null);
        continue;
      }
      for (const part of parts) {
        if (!part.live.started) {
          part.live.started = true;
          part.live.task.onStart?.();
        }
      }
      const result = await this.runStep(parts);
      // Disposed during the step: cancelAll already ended every task.
      if (this.fatal !== null) return;
      if (result === null) continue;
      for (const part of parts) this.deliver(part, result.result, result.output);
      this.options.onStepTimed?.(result.rows, result.outputRows, performance.now() - planned);
    }
  }

  /**
   * Lets every task that prepares (drafts) queue its tokens for this step; a task whose preparation fails ends alone.
   * Synchronous answers (no draft, a lookup) are taken at once; only drafts that step a model are awaited, together
   * (the promise returned; null when there is nothing to wait for, so plain decoding pays no await).
   */
  private prepareStep(): Promise<void> | null {
    if (!this.live.some((live) => live.task.prepare !== undefined)) return null;
    let waiting: Promise<void>[] | null = null;
    for (const live of [...this.live]) {
      if (live.task.prepare === undefined || live.pending.length === 0 || live.task.cancelled) continue;
      try {
        const extra = live.task.prepare(live.pending, live.position);
        if (!(extra instanceof Promise)) live.pending.push(...extra);
        else
          (waiting ??= []).push(
            extra.then(
              (tokens) => {
                if (this.fatal === null && this.live.includes(live)) live.pending.push(...tokens);
              },
              (error: unknown) => {
                if (this.fatal === null && this.live.includes(live)) this.finish(live, error);
              },
            ),
          );
      } catch (error) {
        this.finish(live, error);
      }
    }
    return waiting === null ? null : Promise.all(waiting).then(() => undefined);
  }

  /** Asks every live sequence for its plan, shortest queue first, within the batch budget. */
  private planStep(): Part[] {
    // Decoding sequences (one pending token) first, so a long prompt never stalls them.
    const order = [...this.live].sort((a, b) => a.pending.length - b.pending.length);
    const parts: Part[] = [];
    let budget = this.options.maxBatchTokens;
    let rows = 0;
    let outputs = 0;
    let hidden = 0;
    for (const live of order) {
      if (budget === 0) break;
      if (live.pending.length === 0) continue;
      const maxRows = Math.min(live.pending.length, this.options.prefillChunk, budget);
      let plan: StepPlan;
      try {
        plan = live.task.plan(live.pending, maxRows, live.position);
        checkPlan(plan, maxRows, this.options.capabilities);
      } catch (error) {
        this.finish(live, error);
        continue;
      }
      parts.push({ live, plan, firstRow: rows, firstOutput: outputs, firstHidden: hidden });
      budget -= plan.feed;
      rows += plan.feed;
      outputs += plan.outputRows.length;
      hidden += plan.hiddenRows?.length ?? 0;
    }
    return parts;
  }

  /**
   * Runs the planned rows as one backend step. The step returns argmax only when every plan with
   * outputs asked for argmax and the backend computes it itself (`capabilities.outputs` lists it); otherwise logits,
   * from which argmax is derived per sequence. Null when the step failed (its sequences are ended).
   */
  private async runStep(parts: readonly Part[]): Promise<{ result: StepResult; output: "logits" | "argmax"; rows: number; outputRows: number } | null> {
    const tokens: number[] = [];
    const positions: number[] = [];
    const slots: number[] = [];
    const logitRows: number[] = [];
    const hiddenRows: number[] = [];
    let allArgmax = true;
    for (const { live, plan, firstRow } of parts) {
      for (let i = 0; i < plan.feed; i++) {
        tokens.push(live.pending[i]!);
        positions.push(live.position + i);
        slots.push(live.slot);
      }
      for (const row of plan.outputRows) logitRows.push(firstRow + row);
      for (const row of plan.hiddenRows ?? []) hiddenRows.push(firstRow + row);
      if (plan.outputRows.length > 0 && plan.output !== "argmax") allArgmax = false;
    }
    const output = allArgmax && logitRows.length > 0 && this.options.capabilities.outputs.includes("argmax") ? "argmax" : "logits";
    let result: StepResult;
    try {
      result = await forwardBatch(this.model, {
        tokens: Int32Array.from(tokens),
        positions: Int32Array.from(positions),
        slots: Int32Array.from(slots),
        logitRows: Int32Array.from(logitRows),
        ...(output === "argmax" ? { output } : {}),
        ...(hiddenRows.length > 0 ? { hiddenRows: Int32Array.from(hiddenRows) } : {}),
      });
    } catch (error) {
      // A step error belongs to every sequence in it; others continue. (After dispose, cancelAll ended them all.)
      if (this.fatal === null) for (const part of parts) this.finish(part.live, error);
      return null;
    }
    this.steps++;
    this.rows += tokens.length;
    return { result, output, rows: tokens.length, outputRows: logitRows.length };
  }

  /** Advances one sequence past its fed rows and hands it its outputs; applies its answer. */
  private deliver(part: Part, result: StepResult, output: "logits" | "argmax"): void {
    const { live, plan } = part;
    if (live.owned && live.task.reusePrefix === true && this.options.prefixCache !== undefined)
      for (let i = 0; i < plan.feed; i++) live.fed.push(live.pending[i]!);
    live.pending.splice(0, plan.feed);
    const firstPosition = live.position;
    live.position += plan.feed;
    const count = plan.outputRows.length;
    const hiddenCount = plan.hiddenRows?.length ?? 0;
    if (count === 0 && hiddenCount === 0) {
      // A plan that fed everything and asked for nothing has nothing more to do.
      if (live.pending.length === 0) this.finish(live, null);
      return;
    }
    const vocab = this.model.config.vocabSize;
    const hiddenSize = this.model.config.hiddenSize;
    const logits = output === "logits" ? result.logits.subarray(part.firstOutput * vocab, (part.firstOutput + count) * vocab) : null;
    let argmax: Int32Array | null = null;
    if (plan.output === "argmax" && count > 0) {
      argmax = output === "argmax" ? result.argmax!.subarray(part.firstOutput, part.firstOutput + count) : argmaxRows(logits!, count, vocab);
    }
    const outputs: StepOutputs = {
      positions: plan.outputRows.map((row) => firstPosition + row),
      logits,
      argmax,
      hidden:
        hiddenCount > 0 && result.hidden !== undefined
          ? result.hidden.subarray(part.firstHidden * hiddenSize, (part.firstHidden + hiddenCount) * hiddenSize)
          : null,
      length: live.position,
    };
    let update: SequenceUpdate | null;
    try {
      update = live.task.cancelled ? null : live.task.onStep(outputs);
      if (update !== null && update.keepLength !== undefined && update.keepLength !== live.position) {
        const keep = update.keepLength;
        if (!Number.isInteger(keep) || keep < 0 || keep > live.position) {
          throw new Error(`internal: a task kept ${keep} positions of a sequence of ${live.position}`);
        }
        this.model.truncateSequence(live.slot, keep);
        live.position = keep;
        if (live.fed.length > keep) live.fed.length = keep;
      }
    } catch (error) {
      this.finish(live, error);
      return;
    }
    if (update === null) this.finish(live, null);
    else {
      if (update.dropPending === true) live.pending.length = 0;
      live.pending.push(...update.append);
      if (live.pending.length === 0) this.finish(live, null);
    }
  }
}

/**
 * Throws unless `plan` is one the scheduler can run (a task's programming error, or hidden rows on a
 * backend without them); the scheduler ends that sequence alone, the others of the step run.
 */
function checkPlan(plan: StepPlan, maxRows: number, caps: Pick<BackendCapabilities, "outputs" | "hiddenRows">): void {
  const rowsOk = (rows: readonly number[]): boolean =>
    rows.every((row, i) => Number.isInteger(row) && row >= 0 && row < plan.feed && (i === 0 || row > rows[i - 1]!));
  if (!Number.isInteger(plan.feed) || plan.feed < 1 || plan.feed > maxRows || !rowsOk(plan.outputRows) || !rowsOk(plan.hiddenRows ?? [])) {
    throw new Error(`internal: a step plan fed ${plan.feed} of at most ${maxRows} rows with outputs [${plan.outputRows.join(", ")}]`);
  }
  if ((plan.hiddenRows?.length ?? 0) > 0 && !caps.hiddenRows) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "this backend does not return hidden states", {
      field: "hiddenRows",
      expected: "a backend whose capabilities().hiddenRows is true",
      actual: "capabilities().hiddenRows is false",
      hint: "Load the model on a backend that lists hiddenRows in its capabilities (reference and cpu do), or run without Medusa heads",
    });
  }
}
