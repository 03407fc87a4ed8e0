// A smaller model of the same vocabulary drafts greedily; every sequence's draft steps share one batched forward.
import { HaloError } from "@halo/errors";
import { forwardBatch, type LoadedModel } from "@halo/kernels";
import type { Draft, DraftRequest, Drafter, DrafterSequence } from "./drafter.js";
import { SpeculativeErrorCode } from "./errors.js";

/** Options of {@link createDraftModelDrafter}. */
export interface DraftModelDrafterOptions {
  /** The draft model, loaded on any backend (its `maxSequences` bounds the sequences that draft at once). */
  readonly model: LoadedModel;
  /** The target's vocabulary size: the draft model's must be the same. */
  readonly vocabSize: number;
  /** For the label: where the draft model came from and the backend it runs on. */
  readonly source?: string;
  /** Dispose the draft model with the drafter (default true). */
  readonly ownsModel?: boolean;
}

/** Most tokens one draft-model draft holds (each is one draft step). */
export const DRAFT_MODEL_MAX_DRAFT = 8;

/**
 * Most tokens one sequence feeds to one draft step: a sequence the draft model has not followed for
 * a while (a long prompt, rounds without drafting) catches up in chunks of this many, so a draft
 * step of many sequences stays within any backend's batch limit (8 × 256 rows).
 */
export const DRAFT_MODEL_CATCH_UP_ROWS = 256;

/** One sequence's pending draft: what it still feeds, what it drafted, and who waits. */
interface Job {
  readonly sequence: DraftModelSequence;
  readonly want: number;
  feed: number[];
  readonly drafted: number[];
  resolve(draft: Draft): void;
  reject(error: unknown): void;
}

/**
 * Draft-model drafting (Leviathan et al. 2023; Chen et al. 2023): a smaller model with the same
 * vocabulary drafts `k` tokens greedily, one draft step per token, and the target verifies them in
 * one step. Each sequence holds a KV slot in the draft model that follows its context: a round
 * feeds only what the draft model has not seen (after a rejection the slot is cut back to the
 * common prefix first). Draft requests made together (the engine asks every speculating sequence
 * before each target step) run as one batched draft step per drafted token, so eight sequences
 * cost eight rows per draft step, not eight steps.
 *
 * @throws HaloError `SPECULATIVE_DRAFTER_MISMATCH` when the vocabularies differ.
 * @example
 * ```ts
 * const drafter = createDraftModelDrafter({ model: draftLoaded, vocabSize: engine.config.vocabSize });
 * ```
 */
export function createDraftModelDrafter(options: DraftModelDrafterOptions): Drafter {
  const { model, vocabSize } = options;
  if (model.config.vocabSize !== vocabSize) {
    throw new HaloError(SpeculativeErrorCode.SPECULATIVE_DRAFTER_MISMATCH, "the draft model's vocabulary differs from the model's", {
      field: "draftModel",
      expected: `a vocabulary of ${vocabSize} tokens (the same tokenizer)`,
      actual: `${model.config.vocabSize} tokens`,
      hint: "Use a draft model trained with the same tokenizer (for halo-tiny: halo-tiny-draft.halo)",
    });
  }
  return new DraftModelDrafter(model, options.source ?? "draft model", options.ownsModel ?? true);
}

class DraftModelDrafter implements Drafter {
  readonly kind = "draft-model" as const;
  readonly needsHidden = false;
  readonly maxDraftTokens = DRAFT_MODEL_MAX_DRAFT;
  readonly label: string;
  private queue: Job[] = [];
  private scheduled = false;
  /** Draft steps run one batch at a time. */
  private running: Promise<void> = Promise.resolve();
  private disposed = false;

  constructor(
    readonly model: LoadedModel,
    source: string,
    private readonly ownsModel: boolean,
  ) {
    this.label = `draft-model ${source}`;
  }

  openSequence(): DrafterSequence {
    return new DraftModelSequence(this);
  }

  /** Queues one sequence's request; requests queued in the same turn of the event loop step together. */
  request(sequence: DraftModelSequence, request: DraftRequest): Promise<Draft> {
    return new Promise<Draft>((resolve, reject) => {
      const context = request.context;
      const slot = sequence.slotFor();
      if (slot === null || this.disposed) {
        resolve({ tokens: [] }); // no free draft slot: this round runs without a draft
        return;
      }
      // Keep what the draft KV holds of this context (never its last token, which the round feeds).
      let keep = 0;
      const limit = Math.min(sequence.fed.length, context.length - 1);
      while (keep < limit && sequence.fed[keep] === context[keep]) keep++;
      if (keep < sequence.fed.length) {
        this.model.truncateSequence(slot, keep);
        sequence.fed.length = keep;
      }
      const room = this.model.options.contextLength - context.length;
      const want = Math.min(request.maxTokens, DRAFT_MODEL_MAX_DRAFT, room);
      if (want < 1) {
        resolve({ tokens: [] });
        return;
      }
      this.queue.push({ sequence, want, feed: context.slice(keep), drafted: [], resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          const jobs = this.queue.splice(0);
          this.running = this.running.then(() => this.run(jobs));
        });
      }
    });
  }

  /** Steps every job together until each has its draft. */
  private async run(jobs: Job[]): Promise<void> {
    let active = jobs;
    while (active.length > 0) {
      if (this.disposed) {
        for (const job of active) job.resolve({ tokens: [...job.drafted] });
        return;
      }
      const tokens: number[] = [];
      const positions: number[] = [];
      const slots: number[] = [];
      const logitRows: number[] = [];
      /** Per job this step: the tokens it feeds, and whether its last row's output is its next draft token. */
      const fed: { count: number; drafts: boolean }[] = [];
      for (const job of active) {
        const slot = job.sequence.slot!;
        const start = job.sequence.fed.length;
        const count = Math.min(job.feed.length, DRAFT_MODEL_CATCH_UP_ROWS);
        for (let i = 0; i < count; i++) {
          tokens.push(job.feed[i]!);
          positions.push(start + i);
          slots.push(slot);
        }
        const drafts = count === job.feed.length;
        if (drafts) logitRows.push(tokens.length - 1);
        fed.push({ count, drafts });
      }
      let argmax: Int32Array;
      try {
        const result = await forwardBatch(this.model, {
          tokens: Int32Array.from(tokens),
          positions: Int32Array.from(positions),
          slots: Int32Array.from(slots),
          logitRows: Int32Array.from(logitRows),
          output: "argmax",
        });
        argmax = result.argmax!;
      } catch (error) {
        for (const job of active) {
          job.sequence.forget();
          job.reject(error);
        }
        return;
      }
      const next: Job[] = [];
      let output = 0;
      active.forEach((job, i) => {
        const { count, drafts } = fed[i]!;
        job.sequence.fed.push(...job.feed.slice(0, count));
        if (!drafts) {
          job.feed = job.feed.slice(count); // still catching up
          next.push(job);
          return;
        }
        const token = argmax[output++]!;
        job.drafted.push(token);
        if (job.drafted.length < job.want) {
          job.feed = [token];
          next.push(job);
        } else job.resolve({ tokens: [...job.drafted] });
      });
      active = next;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsModel) void this.running.finally(() => this.model.dispose());
  }
}

class DraftModelSequence implements DrafterSequence {
  /** Tokens in the draft model's KV slot, in order. */
  readonly fed: number[] = [];
  slot: number | null = null;
  private closed = false;

  constructor(private readonly drafter: DraftModelDrafter) {}

  /** The sequence's draft slot, allocated on first use; null when none is free. */
  slotFor(): number | null {
    if (this.slot !== null || this.closed) return this.slot;
    try {
      this.slot = this.drafter.model.allocateSequence();
    } catch {
      return null;
    }
    return this.slot;
  }

  /** A failed draft step leaves the slot's contents unknown: start it over next round. */
  forget(): void {
    if (this.slot === null) return;
    try {
      this.drafter.model.truncateSequence(this.slot, 0);
    } catch {
      // the draft model was disposed
    }
    this.fed.length = 0;
  }

  draft(request: DraftRequest): Promise<Draft> {
    return this.drafter.request(this, request);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slot !== null) {
      try {
        this.drafter.model.freeSequence(this.slot);
      } catch {
        // the draft model was disposed
      }
      this.slot = null;
    }
  }
}
