// Speculative decoding in the engine: the drafter, the cost model it is judged by, and the scheduler task that drafts and verifies.
import { forwardBatch, type LoadedModel, type StepOutput } from "@halo/kernels";
import {
  AcceptanceTracker,
  chooseDraftLength,
  StepCostModel,
  type Draft,
  type Drafter,
  type DrafterKind,
  type DrafterSequence,
  type SpeculativePolicy,
  type SpeculativeRequestOptions,
} from "@halo/speculative";
import type { SequenceTask } from "./scheduler.js";
import type { SamplingStep } from "./sampling-step.js";
import { planLastRow, type StepOutputs, type SequenceUpdate } from "./step-plan.js";
import type { SpeculativeCounts } from "./events.js";
import type { TokenEmitter } from "./token-emitter.js";

/** The engine's speculative counters ({@link EngineStats.speculative}), with the step-cost table the policy uses. */
export interface SpeculativeEngineStats extends SpeculativeCounts {
  /** What drafts: `"ngram 2-4"`, `"draft-model <file> (cpu)"`, `"medusa 4 heads (<file>)"`. */
  readonly label: string;
  /** The measured step time by rows (every row returning an output: decode and verification steps). */
  readonly stepCost: readonly { readonly rows: number; readonly ms: number }[];
  /** Milliseconds the load-time calibration of the step cost took (0 with policy "always"). */
  readonly calibrationMs: number;
  /** Drafts that failed (each request it happened to went on without drafting). */
  readonly draftFailures: number;
  /** The message of the last failed draft. */
  readonly lastDraftError?: string;
}

/** Mutable counters behind {@link SpeculativeCounts}. */
class Counts {
  decodeSteps = 0;
  verifySteps = 0;
  drafted = 0;
  accepted = 0;
  generated = 0;

  add(drafted: number, accepted: number, generated: number): void {
    this.decodeSteps++;
    if (drafted > 0) this.verifySteps++;
    this.drafted += drafted;
    this.accepted += accepted;
    this.generated += generated;
  }

  view(drafter: DrafterKind): SpeculativeCounts {
    return {
      drafter,
      decodeSteps: this.decodeSteps,
      verifySteps: this.verifySteps,
      draftedTokens: this.drafted,
      acceptedTokens: this.accepted,
      acceptanceRate: this.drafted > 0 ? this.accepted / this.drafted : 0,
      tokensPerStep: this.decodeSteps > 0 ? this.generated / this.decodeSteps : 0,
    };
  }
}

const NO_TOKENS: readonly number[] = [];

/** Milliseconds the load-time calibration of the step cost may take. */
const CALIBRATION_BUDGET_MS = 3000;

/** Rounds between probes while the policy keeps a sequence from drafting (acceptance may have changed). */
const PROBE_INTERVAL = 16;

/**
 * The loaded model's speculative decoding: its drafter, the policy's options, the step-cost model
 * (calibrated at load, then kept current from every step) and the engine-wide counters.
 * @internal
 */
export class Speculation {
  readonly cost = new StepCostModel();
  private readonly totals = new Counts();
  /** Smoothed milliseconds of one draft call and per drafted token; null before the first draft. */
  private draftCallMs: number | null = null;
  private draftTokenMs: number | null = null;
  private calibrationMs = 0;
  private draftFailures = 0;
  private lastDraftError: string | null = null;
  /** Rows of the last step whose every row returned an output (a decode or verification step). */
  private lastDecodeRows = 0;

  constructor(
    readonly drafter: Drafter,
    readonly maxDraft: number,
    readonly policy: SpeculativePolicy,
    /** What else the drafter needs released (a draft model's engine), after it. */
    private readonly release?: () => void,
  ) {}

  /**
   * Measures a step of 1 … maxDraft + 1 rows, every row returning `output`, on a scratch slot (best
   * of 3 each while the calibration is under a second, then one; it stops after three seconds and
   * the cost model extrapolates), so the first request's policy has costs to weigh. These are
   * priors: the first real step of each row count replaces them (real steps also carry the host's
   * work around the backend step).
   */
  async calibrate(model: LoadedModel, output: StepOutput): Promise<void> {
    if (this.policy === "always") return;
    const started = performance.now();
    let slot: number;
    try {
      slot = model.allocateSequence();
    } catch {
      return; // every slot taken: learn from the first steps instead
    }
    try {
      const most = Math.min(this.maxDraft + 1, model.options.contextLength);
      for (let rows = 1; rows <= most; rows++) {
        const spent = performance.now() - started;
        if (spent > CALIBRATION_BUDGET_MS) break;
        let best = Infinity;
        for (let rep = 0; rep < (spent < CALIBRATION_BUDGET_MS / 3 ? 3 : 1); rep++) {
          model.truncateSequence(slot, 0);
          const t0 = performance.now();
          await forwardBatch(model, {
            tokens: Int32Array.from({ length: rows }, (_, i) => i % model.config.vocabSize),
            positions: Int32Array.from({ length: rows }, (_, i) => i),
            slots: new Int32Array(rows).fill(slot),
            logitRows: Int32Array.from({ length: rows }, (_, i) => i),
            ...(output === "argmax" ? { output } : {}),
          });
          best = Math.min(best, performance.now() - t0);
        }
        this.cost.observe(rows, best, true);
      }
    } finally {
      model.freeSequence(slot);
      this.calibrationMs = performance.now() - started;
    }
  }

  /** A draft failed (the request goes on without drafting): counted, and the last error kept for stats. */
  draftFailed(error: unknown): void {
    this.draftFailures++;
    this.lastDraftError = error instanceof Error ? error.message : String(error);
  }

  /** A step ran (scheduler callback): steps whose every row returned an output teach the cost model. */
  observeStep(rows: number, outputRows: number, ms: number): void {
    if (outputRows !== rows) return;
    this.cost.observe(rows, ms);
    this.lastDecodeRows = rows;
  }

  /**
   * Rows the other sequences are likely to add to the next step: what they added to the last
   * decode step (`ownRows`: what this sequence fed to it), at least one per other live sequence.
   */
  otherRows(ownRows: number, otherSequences: number): number {
    return Math.max(otherSequences, this.lastDecodeRows - ownRows);
  }

  /** A draft of `tokens` tokens took `ms` (smoothed into the per-call and per-token cost). */
  observeDraft(tokens: number, ms: number): void {
    const smooth = (known: number | null, value: number): number => (known === null ? value : known + 0.2 * (value - known));
    this.draftCallMs = smooth(this.draftCallMs, ms);
    if (tokens > 0) this.draftTokenMs = smooth(this.draftTokenMs, ms / tokens);
  }

  /**
   * Expected milliseconds of drafting k tokens: per drafted token (a draft model steps once per
   * token, Medusa runs one head per token), at least the per-call cost seen. 0 before any draft
   * (the first rounds measure it).
   */
  draftMs(k: number): number {
    if (this.draftTokenMs === null) return 0;
    return this.draftTokenMs * k;
  }

  /**
   * Rounds a sequence that does not draft waits before probing with one drafted token: 16, or more
   * when a one-token draft costs more than 5 % of that many steps (a Medusa head in TypeScript can
   * cost more than a small model's whole step).
   */
  probeInterval(): number {
    const step = this.cost.estimate(1);
    const draft = this.draftMs(1);
    if (step === null || step <= 0 || draft <= 0) return PROBE_INTERVAL;
    return Math.max(PROBE_INTERVAL, Math.ceil(draft / (0.05 * step)));
  }

  record(drafted: number, accepted: number, generated: number): void {
    this.totals.add(drafted, accepted, generated);
  }

  stats(): SpeculativeEngineStats {
    return {
      ...this.totals.view(this.drafter.kind),
      label: this.drafter.label,
      stepCost: this.cost.table(),
      calibrationMs: this.calibrationMs,
      draftFailures: this.draftFailures,
      ...(this.lastDraftError !== null ? { lastDraftError: this.lastDraftError } : {}),
    };
  }

  dispose(): void {
    this.drafter.dispose();
    this.release?.();
  }
}

/** What {@link speculativeTask} drives. @internal */
export interface SpeculativeTaskParts {
  readonly speculation: Speculation;
  readonly request: Exclude<SpeculativeRequestOptions, false>;
  readonly prompt: number[];
  /** Tokens already in the sequence's KV before `prompt` (a session's cached turns): drafters see them too. */
  readonly prefix: readonly number[];
  readonly sampling: SamplingStep;
  readonly emitter: TokenEmitter;
  readonly contextLength: number;
  readonly maxTokens: number;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** Other live sequences (each adds at least one row to a step: the policy's marginal cost). */
  readonly otherSequences: () => number;
  /** Counts one generated token (the engine's totals). */
  readonly countToken: () => void;
}

/**
 * The scheduler task of a speculative generation. Before each decode step it asks the drafter for
 * up to k tokens (k from the policy), queues them after the pending token, and asks for the output
 * of every fed row; the rows are verified in order (greedy: the longest prefix the target's own
 * choices match; sampling: the lossless rule, `verifyRow` in `@halo/speculative`), every emitted token passes
 * through the same emitter as plain decoding (so stop ids, stop strings, `maxTokens` and the
 * context end land on the same token), and the KV cache is cut back to the verified tokens.
 * @internal
 */
export function speculativeTask(
  parts: SpeculativeTaskParts,
  base: Pick<SequenceTask, "cancelled" | "onStart" | "onEnd" | "slot">,
): SequenceTask & {
  readonly counts: () => SpeculativeCounts;
} {
  const { speculation, sampling, emitter } = parts;
  const drafter = speculation.drafter;
  const request = typeof parts.request === "object" ? parts.request : {};
  const maxDraft = Math.min(request.maxDraft ?? speculation.maxDraft, drafter.maxDraftTokens);
  const policy = request.policy ?? speculation.policy;
  const needsHidden = drafter.needsHidden;
  const counts = new Counts();
  const tracker = new AcceptanceTracker();
  const context = [...parts.prefix, ...parts.prompt];
  let sequence: DrafterSequence | null = null;
  let prefilled = false;
  let drafts: readonly number[] = [];
  let hidden: Float32Array | null = null;
  let idleRounds = 0;
  let generated = 0;
  /** Rows this sequence fed to its last decode step. */
  let lastFeed = 1;
  /**
   * A free drafter's guess at the next token in a round the policy did not draft (prompt lookup costs
   * nothing to ask): compared with the token the round emits, it keeps the acceptance estimate
   * current, so a sequence whose text turns predictable drafts again without waiting for a probe.
   */
  let shadow: number | null = null;
  /** Set when the drafter failed: the request decodes plainly from then on. */
  let draftingOff = false;

  const close = (): void => {
    sequence?.close();
    sequence = null;
  };

  const chooseK = (length: number): number => {
    // Room: the step feeds 1 + k rows from `length`, all inside the context; a round emits at most k + 1 tokens.
    const room = Math.min(maxDraft, parts.contextLength - length - 2, parts.maxTokens - generated - 1);
    if (room < 1) return 0;
    if (policy === "always") return room;
    const choice = chooseDraftLength({
      acceptance: tracker.rate,
      maxDraft: room,
      otherRows: speculation.otherRows(lastFeed, parts.otherSequences()),
      stepMs: (rows) => speculation.cost.estimate(rows),
      draftMs: (k) => speculation.draftMs(k),
    });
    if (choice.k > 0) {
      idleRounds = 0;
      return choice.k;
    }
    // Not worth it now. Prompt lookup keeps its estimate current from free guesses (see `shadow`); the
    // others probe with one token now and then, so a sequence that turns predictable drafts again.
    if (drafter.kind === "ngram") return 0;
    return ++idleRounds >= speculation.probeInterval() ? ((idleRounds = 0), 1) : 0;
  };

  const task: SequenceTask & { readonly counts: () => SpeculativeCounts } = {
    ...base,
    prompt: parts.prompt,
    counts: () => counts.view(drafter.kind),
    prepare(pending, length) {
      drafts = [];
      if (!prefilled || draftingOff || pending.length !== 1 || task.cancelled || (needsHidden && hidden === null)) return NO_TOKENS;
      const k = chooseK(length);
      sequence ??= drafter.openSequence();
      if (k === 0) {
        if (drafter.kind === "ngram") {
          const guess = sequence.draft({ context, maxTokens: 1, hidden: null });
          shadow = guess instanceof Promise ? null : (guess.tokens[0] ?? null);
        }
        return NO_TOKENS;
      }
      const started = performance.now();
      const taken = (draft: Draft): readonly number[] => {
        // A drafter's tokens up to the first that is not a token id of the model (a later one would be misplaced).
        const valid = (t: number): boolean => Number.isInteger(t) && t >= 0 && t < parts.vocabSize;
        const cut = draft.tokens.findIndex((t) => !valid(t));
        drafts = draft.tokens.slice(0, Math.min(k, cut < 0 ? k : cut));
        speculation.observeDraft(drafts.length, performance.now() - started);
        return drafts;
      };
      // A drafter that fails (a draft model's step refused) costs this request its drafting, never its answer.
      const failed = (error: unknown): readonly number[] => {
        draftingOff = true;
        speculation.draftFailed(error);
        drafts = NO_TOKENS;
        return NO_TOKENS;
      };
      // Prompt lookup and Medusa answer at once; a draft model's steps are awaited (with every other sequence's).
      let draft: Draft | Promise<Draft>;
      try {
        draft = sequence.draft({ context, maxTokens: k, hidden: needsHidden ? hidden : null });
      } catch (error) {
        return failed(error);
      }
      return draft instanceof Promise ? draft.then(taken, failed) : taken(draft);
    },
    plan(pending, maxRows) {
      if (!prefilled) {
        const plan = planLastRow(pending.length, maxRows, sampling.output);
        return needsHidden && plan.outputRows.length > 0 ? { ...plan, hiddenRows: plan.outputRows } : plan;
      }
      const feed = Math.min(pending.length, maxRows);
      lastFeed = feed;
      const rows = Array.from({ length: feed }, (_, i) => i);
      return { feed, outputRows: rows, output: sampling.output, ...(needsHidden ? { hiddenRows: rows } : {}) };
    },
    onStep(outputs: StepOutputs): SequenceUpdate | null {
      emitter.outputsArrived();
      if (!emitter.wantsTokens) return null;
      const rows = outputs.positions.length;
      const guess = shadow;
      shadow = null;
      const first = prefilled ? 0 : rows - 1;
      const fedDrafts = prefilled ? rows - 1 : 0;
      prefilled = true;
      let accepted = 0;
      let emitted = 0;
      for (let i = first; i < rows; i++) {
        const drafted = i - first < fedDrafts ? drafts[i - first]! : null;
        const { sample, accepted: kept } = sampling.verify(outputs, i, drafted);
        if (guess !== null && i === first) tracker.record(1, sample.token === guess ? 1 : 0);
        parts.countToken();
        generated++;
        emitted++;
        context.push(sample.token);
        const goesOn = emitter.accept(sample, outputs.positions[i]!);
        if (!goesOn || !kept) {
          if (kept) accepted++;
          if (needsHidden && outputs.hidden !== null) hidden = outputs.hidden.slice(i * parts.hiddenSize, (i + 1) * parts.hiddenSize);
          const keepLength = outputs.positions[i]! + 1;
          finishRound(fedDrafts, accepted, emitted);
          // Ended here: keep the verified positions (a session's cache must hold exactly what it was told), queue nothing.
          if (!goesOn) return { append: [], keepLength, dropPending: true };
          return { append: [sample.token], keepLength, dropPending: true };
        }
        accepted++;
      }
      throw new Error("internal: a verification step ended without a row that was not a draft");
    },
    onEnd(error) {
      close();
      base.onEnd(error);
    },
  };

  const finishRound = (fed: number, accepted: number, emitted: number): void => {
    if (fed > 0) {
      tracker.record(fed, accepted);
      sequence?.verified?.(fed, accepted);
    }
    counts.add(fed, accepted, emitted);
    speculation.record(fed, accepted, emitted);
  };
  return task;
}
