import { describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { forwardBatch, referenceBackend, type LoadedModel } from "@halo/kernels";
import { Scheduler, type SequenceTask } from "./scheduler.js";
import type { StepOutputs, StepPlan, SequenceUpdate } from "./step-plan.js";

const MODEL_SEED = 11;
const PROMPT = [500, 72, 101, 108, 108, 111];
/** What the reference backend returns (argmax natively, hidden rows): the scheduler decides by it. */
const CAPS = referenceBackend().capabilities();

async function loadReference(): Promise<LoadedModel> {
  return referenceBackend().loadModel(synthModel({ shape: "tiny", seed: MODEL_SEED }), { contextLength: 128, maxSequences: 2 });
}

/** Runs one task to its end on a fresh scheduler; resolves with the scheduler's step count. */
function runTask(model: LoadedModel, task: SequenceTask, maxBatchTokens = 64): Promise<number> {
  const scheduler = new Scheduler(model, { maxBatchTokens, prefillChunk: maxBatchTokens / 2, capabilities: CAPS });
  return new Promise<number>((resolve, reject) => {
    const onEnd = task.onEnd.bind(task);
    task.onEnd = (error) => {
      onEnd(error);
      if (error !== null && error !== undefined) reject(error);
      else resolve(scheduler.stats().steps);
    };
    scheduler.submit(task);
  });
}

/** Plain greedy decoding: one token per step, the last row's argmax. */
class PlainGreedy implements SequenceTask {
  cancelled = false;
  readonly out: number[] = [];
  constructor(
    readonly prompt: readonly number[],
    private readonly n: number,
  ) {}
  plan(pending: readonly number[], maxRows: number): StepPlan {
    const feed = Math.min(pending.length, maxRows);
    return { feed, outputRows: feed === pending.length ? [feed - 1] : [], output: "argmax" };
  }
  onStep(outputs: StepOutputs): SequenceUpdate | null {
    this.out.push(outputs.argmax![0]!);
    return this.out.length >= this.n ? null : { append: [this.out.at(-1)!] };
  }
  onEnd(_error: unknown): void {}
}

/** Proposes up to `k` tokens to follow `context` (the prompt and every accepted token). */
type Drafter = (context: readonly number[], k: number) => number[];

/**
 * Greedy speculative decoding: each step feeds the tokens known to be right but not yet in the KV
 * (the prompt, then the last accepted token) followed by the drafts, asks for the argmax of the
 * last known row and of every draft row, keeps the longest prefix of drafts the model agrees with
 * plus the model's own next token, and rewinds the KV over the rejected drafts.
 */
class SpeculativeGreedy implements SequenceTask {
  cancelled = false;
  readonly out: number[] = [];
  accepted = 0;
  drafted = 0;
  rewinds = 0;
  /** The prompt and the first drafts, which ride with it. */
  readonly prompt: readonly number[];
  /** Tokens at the front of the pending queue that are not drafts. */
  private known: number;
  private drafts: number[];
  constructor(
    private readonly base: readonly number[],
    private readonly n: number,
    private readonly k: number,
    private readonly drafter: Drafter,
  ) {
    this.known = base.length;
    this.drafts = drafter(base, k).slice(0, k);
    this.drafted += this.drafts.length;
    this.prompt = [...base, ...this.drafts];
  }
  plan(pending: readonly number[], maxRows: number): StepPlan {
    if (pending.length > maxRows) throw new Error("the test's drafts must fit one step");
    return { feed: pending.length, outputRows: Array.from({ length: this.drafts.length + 1 }, (_, i) => this.known - 1 + i), output: "argmax" };
  }
  onStep({ argmax, length }: StepOutputs): SequenceUpdate | null {
    // argmax[i] is the model's token after the last known token and drafts[0..i).
    let m = 0;
    while (m < this.drafts.length && argmax![m] === this.drafts[m]) m++;
    this.accepted += m;
    const fresh = [...this.drafts.slice(0, m), argmax![m]!];
    this.out.push(...fresh);
    if (this.out.length >= this.n) {
      this.out.length = this.n;
      return null;
    }
    const keepLength = length - (this.drafts.length - m);
    if (keepLength < length) this.rewinds++;
    this.known = 1;
    this.drafts = this.drafter([...this.base, ...this.out], this.k).slice(0, this.k);
    this.drafted += this.drafts.length;
    return { append: [fresh.at(-1)!, ...this.drafts], keepLength };
  }
  onEnd(_error: unknown): void {}
}

/** Prompt lookup: find the latest earlier occurrence of the last `ngram` tokens and propose what followed it. */
function promptLookup(ngram: number): Drafter {
  return (context, k) => {
    if (context.length <= ngram) return [];
    const tail = context.slice(-ngram);
    for (let start = context.length - ngram - 1; start >= 0; start--) {
      if (tail.every((t, i) => context[start + i] === t)) return context.slice(start + ngram, start + ngram + k);
    }
    return [];
  };
}

describe("Scheduler step plans", () => {
  it("speculative greedy decoding with rewinds equals plain greedy token for token, in fewer steps when drafts are accepted", async () => {
    const n = 30;
    const model = await loadReference();
    const plain = new PlainGreedy(PROMPT, n);
    const plainSteps = await runTask(model, plain);
    expect(plain.out).toHaveLength(n);
    const truth = [...PROMPT, ...plain.out];

    // An oracle that knows the greedy answer but lies about every third draft: rejections and rewinds happen.
    let calls = 0;
    const lyingOracle: Drafter = (context, k) => {
      const next = truth.slice(context.length, context.length + k);
      calls++;
      if (calls % 3 === 0 && next.length > 1) next[1] = (next[1]! + 1) % model.config.vocabSize;
      return next;
    };
    for (const [name, drafter] of [
      ["lying oracle", lyingOracle],
      ["prompt lookup", promptLookup(1)],
      ["always wrong", (context: readonly number[], k: number) => truth.slice(context.length, context.length + k).map((t) => (t + 1) % model.config.vocabSize)],
    ] as const) {
      const speculative = new SpeculativeGreedy(PROMPT, n, 4, drafter);
      const steps = await runTask(model, speculative);
      expect(speculative.out, name).toEqual(plain.out);
      if (name === "lying oracle") {
        expect(speculative.accepted, name).toBeGreaterThan(n / 2);
        expect(speculative.rewinds, name).toBeGreaterThan(0);
        expect(steps, name).toBeLessThan(plainSteps / 2);
      }
      if (name === "always wrong") {
        expect(speculative.accepted, name).toBe(0);
        expect(steps, name).toBe(plainSteps);
      }
    }
    model.dispose();
  });

  it("keeps its position bookkeeping through a rewind: the sequence continues exactly where it was cut", async () => {
    const model = await loadReference();
    const plain = new PlainGreedy(PROMPT, 6);
    await runTask(model, plain);
    // Feed the prompt and 3 wrong tokens, rewind over them, then continue greedily: the answer must not change.
    const wrong = [3, 4, 5];
    const out: number[] = [];
    const lengths: number[] = [];
    let first = true;
    const task: SequenceTask = {
      prompt: [...PROMPT, ...wrong],
      cancelled: false,
      plan: (pending, maxRows) => ({ feed: Math.min(pending.length, maxRows), outputRows: [first ? PROMPT.length - 1 : 0], output: "logits" }),
      onStep: ({ logits, argmax, positions, length }) => {
        expect(argmax).toBeNull();
        lengths.push(length);
        let best = 0;
        for (let v = 1; v < model.config.vocabSize; v++) if (logits![v]! > logits![best]!) best = v;
        if (first) {
          expect(positions).toEqual([PROMPT.length - 1]);
          first = false;
          out.push(best);
          return { append: [best], keepLength: PROMPT.length };
        }
        expect(positions).toEqual([PROMPT.length + out.length - 1]);
        out.push(best);
        return out.length >= 6 ? null : { append: [best] };
      },
      onEnd: () => {},
    };
    await runTask(model, task);
    expect(out).toEqual(plain.out);
    expect(lengths).toEqual([PROMPT.length + 3, ...Array.from({ length: 5 }, (_, i) => PROMPT.length + 1 + i)]);
    model.dispose();
  });

  it("returns the hidden rows a plan asks for, equal to a direct forward", async () => {
    const model = await loadReference();
    let hidden: Float32Array | null = null;
    await runTask(model, {
      prompt: PROMPT,
      cancelled: false,
      plan: (pending) => ({ feed: pending.length, outputRows: [pending.length - 1], output: "logits", hiddenRows: [1, pending.length - 1] }),
      onStep: (outputs) => {
        hidden = outputs.hidden!.slice();
        return null;
      },
      onEnd: () => {},
    });
    const size = model.config.hiddenSize;
    const slot = model.allocateSequence();
    const direct = await forwardBatch(model, {
      tokens: Int32Array.from(PROMPT),
      positions: Int32Array.from(PROMPT, (_, i) => i),
      slots: new Int32Array(PROMPT.length).fill(slot),
      logitRows: Int32Array.of(PROMPT.length - 1),
      hiddenRows: Int32Array.of(1, PROMPT.length - 1),
    });
    expect(hidden).not.toBeNull();
    expect(hidden!).toHaveLength(2 * size);
    expect(Array.from(hidden!)).toEqual(Array.from(direct.hidden!));
    model.dispose();
  });

  it("ends a task whose plan or rewind is impossible with an error, and keeps serving the others", async () => {
    const model = await loadReference();
    const scheduler = new Scheduler(model, { maxBatchTokens: 64, prefillChunk: 32, capabilities: CAPS });
    const ended = (task: Omit<SequenceTask, "onEnd">): Promise<unknown> =>
      new Promise((resolve) => scheduler.submit({ ...task, onEnd: (error) => resolve(error) } as SequenceTask));
    const badFeed = ended({ prompt: [1, 2], cancelled: false, plan: () => ({ feed: 3, outputRows: [], output: "logits" }), onStep: () => null });
    const badRewind = ended({
      prompt: [1, 2],
      cancelled: false,
      plan: (pending) => ({ feed: pending.length, outputRows: [0], output: "logits" }),
      onStep: ({ length }) => ({ append: [1], keepLength: length + 1 }),
    });
    const plain = new PlainGreedy(PROMPT, 3);
    const good = new Promise<unknown>((resolve) => {
      plain.onEnd = (error) => resolve(error);
      scheduler.submit(plain);
    });
    expect(String(await badFeed)).toMatch(/step plan fed 3 of at most 2/);
    expect(String(await badRewind)).toMatch(/kept 3 positions of a sequence of 2/);
    expect(await good).toBeNull();
    expect(plain.out).toHaveLength(3);
    expect(scheduler.ownedSlots()).toEqual([]);
    model.dispose();
  });

  it("a plan asking hidden rows of a backend without them fails alone; the sequence sharing its step runs on", async () => {
    const model = await loadReference();
    const scheduler = new Scheduler(model, { maxBatchTokens: 64, prefillChunk: 32, capabilities: { outputs: CAPS.outputs, hiddenRows: false } });
    const wantsHidden = new Promise<unknown>((resolve) =>
      scheduler.submit({
        prompt: PROMPT,
        cancelled: false,
        plan: (pending) => ({ feed: pending.length, outputRows: [pending.length - 1], output: "logits", hiddenRows: [0] }),
        onStep: () => null,
        onEnd: (error) => resolve(error),
      }),
    );
    const plain = new PlainGreedy(PROMPT, 3);
    const good = new Promise<unknown>((resolve) => {
      plain.onEnd = (error) => resolve(error);
      scheduler.submit(plain);
    });
    expect(await wantsHidden).toMatchObject({ code: "ENGINE_BAD_OPTION", message: expect.stringMatching(/hidden states/) });
    expect(await good).toBeNull();
    expect(plain.out).toHaveLength(3);
    model.dispose();
  });

  it("asks the backend for argmax only when its capabilities list it (a forward() alone is not enough)", async () => {
    const lists: readonly (readonly ("logits" | "argmax" | "top-k")[])[] = [["logits"], ["logits", "argmax"]];
    for (const outputs of lists) {
      const model = await loadReference();
      const asked: (string | undefined)[] = [];
      const spy: LoadedModel = Object.assign(Object.create(model) as LoadedModel, {
        forward: async (batch: Parameters<NonNullable<LoadedModel["forward"]>>[0]) => {
          asked.push(batch.output);
          return model.forward!(batch);
        },
      });
      const scheduler = new Scheduler(spy, { maxBatchTokens: 64, prefillChunk: 32, capabilities: { outputs, hiddenRows: true } });
      const plain = new PlainGreedy(PROMPT, 2);
      await new Promise<unknown>((resolve) => {
        plain.onEnd = (error) => resolve(error);
        scheduler.submit(plain);
      });
      expect(plain.out).toHaveLength(2);
      expect(asked.every((o) => o === (outputs.includes("argmax") ? "argmax" : undefined))).toBe(true);
      model.dispose();
    }
  });

  it("cancel() of a task queued behind a head blocked on slots ends it at once", async () => {
    const model = await referenceBackend().loadModel(synthModel({ shape: "tiny", seed: MODEL_SEED }), { contextLength: 128, maxSequences: 1 });
    const scheduler = new Scheduler(model, { maxBatchTokens: 64, prefillChunk: 32, capabilities: CAPS });
    const long = new PlainGreedy(PROMPT, 40);
    const longEnd = new Promise<unknown>((resolve) => {
      long.onEnd = (error) => resolve(error);
      scheduler.submit(long);
    });
    while (scheduler.stats().steps === 0) await new Promise((resolve) => setImmediate(resolve));
    const queued = new PlainGreedy(PROMPT, 5);
    let queuedEnded = false;
    queued.onEnd = () => (queuedEnded = true);
    scheduler.submit(queued);
    await new Promise((resolve) => setImmediate(resolve));
    expect(scheduler.stats().queuedSequences).toBe(1);
    scheduler.cancel(queued);
    expect(queuedEnded).toBe(true);
    expect(scheduler.stats().queuedSequences).toBe(0);
    expect(long.out.length).toBeLessThan(40);
    expect(await longEnd).toBeNull();
    expect(queued.out).toEqual([]);
    model.dispose();
  });

  for (const computeFirst of [true, false]) {
    it(`cancelAll during a step ends every task once, with the error, and runs nothing after (the step ${computeFirst ? "succeeds" : "fails on the freed slots"})`, async () => {
      const model = await loadReference();
      let release: () => void = () => {};
      let stepsStarted = 0;
      let stepsSettled = 0;
      const gated: LoadedModel = Object.assign(Object.create(model) as LoadedModel, {
        forward: async (batch: Parameters<NonNullable<LoadedModel["forward"]>>[0]) => {
          stepsStarted++;
          const gate = new Promise<void>((resolve) => (release = resolve));
          try {
            if (computeFirst) {
              const result = await model.forward!(batch);
              await gate;
              return result;
            }
            await gate;
            return await model.forward!(batch);
          } finally {
            stepsSettled++;
          }
        },
      });
      const scheduler = new Scheduler(gated, { maxBatchTokens: 64, prefillChunk: 32, capabilities: CAPS });
      const ends: unknown[][] = [[], []];
      const tasks = [0, 1].map((i) => {
        const task = new PlainGreedy(PROMPT, 5);
        task.onEnd = (error) => void ends[i]!.push(error);
        scheduler.submit(task);
        return task;
      });
      while (stepsStarted === 0) await new Promise((resolve) => setImmediate(resolve));
      const disposed = new Error("disposed");
      scheduler.cancelAll(disposed);
      release();
      while (stepsSettled === 0) await new Promise((resolve) => setImmediate(resolve));
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(ends).toEqual([[disposed], [disposed]]);
      expect(tasks.map((t) => t.out)).toEqual([[], []]);
      expect(stepsStarted).toBe(1);
      model.dispose();
    });
  }
});
