// Speculative decoding end to end: greedy output is plain decoding's, token for token, for every drafter (prompt lookup,
// a draft model, Medusa heads), alone and eight at a time, on a random model and on the trained tiny model; sampled
// output has plain decoding's distribution (chi-square) and repeats with its seed; stops, maxTokens, abort and sessions
// end where plain decoding ends; bad options are refused with named codes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { floatTensor, synthModel, writeHalo, writeMedusa } from "@halo/h1b-format";
import { referenceBackend, wrapBackend } from "@halo/kernels";
import { homogeneity } from "../../../scripts/chi-square.js";
import {
  discoverBackends,
  loadModel,
  type Engine,
  type GenerateEvent,
  type GenerateRequest,
  type LoadModelOptions,
  type RequestEndEvent,
  type SpeculativeCounts,
  type SpeculativeOptions,
} from "./index.js";

// ---------------------------------------------------------------------------------------------------------------------
// Helpers

interface Outcome {
  readonly tokenIds: readonly number[];
  readonly text: string;
  /** The token-delta texts joined: must equal `text`. */
  readonly streamed: string;
  readonly finishReason: string;
  readonly stopString: string | null;
  readonly contextFull: boolean;
  readonly speculative: SpeculativeCounts | undefined;
  /** The token-deltas' logprobs (compared with a tolerance: a row's logits may differ in the last bits by batch shape). */
  readonly logprobs: readonly number[];
}

async function outcome(stream: AsyncIterable<GenerateEvent>, onDelta?: (count: number) => void): Promise<Outcome> {
  let end: RequestEndEvent | null = null;
  let streamed = "";
  let deltas = 0;
  const logprobs: number[] = [];
  for await (const event of stream) {
    if (event.type === "token-delta") {
      streamed += event.text;
      if (event.logprob !== undefined) logprobs.push(event.logprob);
      if (event.tokenId >= 0) onDelta?.(++deltas);
    }
    if (event.type === "request-end") end = event;
  }
  if (end === null) throw new Error("the stream ended without request-end");
  return {
    tokenIds: [...end.tokenIds],
    text: end.text,
    streamed,
    finishReason: end.finishReason,
    stopString: end.stopString,
    contextFull: end.contextFull,
    speculative: end.speculative,
    logprobs,
  };
}

/** What plain decoding and speculative decoding must agree on. */
function visible(o: Outcome): Omit<Outcome, "speculative" | "logprobs"> {
  const { speculative: _, logprobs: __, ...rest } = o;
  return rest;
}

/** The greedy run with speculation (request override `spec`) and without, on the same engine. */
async function both(engine: Engine, request: GenerateRequest, spec: GenerateRequest["speculative"] = true): Promise<{ plain: Outcome; spec: Outcome }> {
  const plain = await outcome(engine.generate({ ...request, speculative: false }));
  const withSpec = await outcome(engine.generate({ ...request, speculative: spec }));
  expect(plain.speculative).toBeUndefined();
  expect(withSpec.speculative).toBeDefined();
  return { plain, spec: withSpec };
}

/**
 * Property: eight greedy requests at once (sequence i drafting at most i + 1 tokens) give, each, plain
 * decoding's outcome of the same eight run at once without drafting; their counters go to `tally`.
 */
async function eightAtOnce(engine: Engine, prompt: fc.Arbitrary<GenerateRequest["prompt"]>, maxTokens: number, tally: Tally): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.array(prompt, { minLength: 8, maxLength: 8 }), async (prompts) => {
      const request = (i: number): GenerateRequest => ({ prompt: prompts[i]!, maxTokens, temperature: 0, ignoreEos: true });
      const plain = await Promise.all(prompts.map((_, i) => outcome(engine.generate({ ...request(i), speculative: false }))));
      const spec = await Promise.all(prompts.map((_, i) => outcome(engine.generate({ ...request(i), speculative: { maxDraft: i + 1 } }))));
      for (let i = 0; i < 8; i++) {
        expect(visible(spec[i]!), `sequence ${i}`).toEqual(visible(plain[i]!));
        tally.add(spec[i]!.speculative);
      }
    }),
    { numRuns: 2 },
  );
}

/** Sums request counters (a property's runs together). */
class Tally {
  runs = 0;
  verifySteps = 0;
  drafted = 0;
  accepted = 0;
  add(counts: SpeculativeCounts | undefined): void {
    if (counts === undefined) throw new Error("a speculative request reported no counters");
    this.runs++;
    this.verifySteps += counts.verifySteps;
    this.drafted += counts.draftedTokens;
    this.accepted += counts.acceptedTokens;
    // Internal consistency of one request's counters.
    expect(counts.acceptedTokens).toBeLessThanOrEqual(counts.draftedTokens);
    expect(counts.verifySteps).toBeLessThanOrEqual(counts.decodeSteps);
    expect(counts.draftedTokens === 0).toBe(counts.verifySteps === 0);
  }
}

function codeOf(error: unknown): string | undefined {
  return isHaloError(error) ? error.code : undefined;
}

async function refusal(call: () => unknown): Promise<{ code: string | undefined; field: string | undefined; message: string }> {
  try {
    const value = await call();
    if (value !== null && typeof value === "object" && "dispose" in value) (value as Engine).dispose();
  } catch (error) {
    return { code: codeOf(error), field: isHaloError(error) ? error.field : undefined, message: String((error as Error).message) };
  }
  throw new Error("expected a refusal, the call succeeded");
}

// ---------------------------------------------------------------------------------------------------------------------
// Models

const SYNTH_SEED = 5;
const synth = (): ReturnType<typeof synthModel> => synthModel({ seed: SYNTH_SEED });
const SYNTH_CONTEXT = 96;

const modelsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "model-tiny", "models");
const TINY = join(modelsDir, "halo-tiny.halo");
const TINY_DRAFT = join(modelsDir, "halo-tiny-draft.halo");
const TINY_MEDUSA = join(modelsDir, "halo-tiny.h1b-medusa");

let dir = "";
const files = { same: "", other: "", medusa: "", otherVocab: "" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-speculative-"));
  files.same = join(dir, "same.halo");
  files.other = join(dir, "other.halo");
  files.medusa = join(dir, "random.h1b-medusa");
  files.otherVocab = join(dir, "vocab-1024.halo");
  await writeHalo(synth(), files.same);
  await writeHalo(synthModel({ seed: SYNTH_SEED + 1 }), files.other);
  await writeHalo(synthModel({ seed: 2, shape: { ...synth().config, vocabSize: 1024 } }), files.otherVocab);
  // Four random Medusa heads for the synthetic model's hidden size (fp16 in the file).
  const hidden = synth().config.hiddenSize;
  let state = 7;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const matrix = (name: string): ReturnType<typeof floatTensor> =>
    floatTensor(name, "f32", [hidden, hidden], { data: new Uint8Array(Float32Array.from({ length: hidden * hidden }, () => (random() - 0.5) * 0.2).buffer) });
  await writeMedusa({ hiddenDim: hidden, heads: Array.from({ length: 4 }, (_, i) => ({ wIn: matrix(`h${i}.in`), wOut: matrix(`h${i}.out`) })) }, files.medusa, {
    force: true,
  });
});

const engines: Engine[] = [];
afterAll(() => {
  for (const engine of engines) engine.dispose();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

async function keep(engine: Promise<Engine>): Promise<Engine> {
  const e = await engine;
  engines.push(e);
  return e;
}

/** Whether the native cpu backend loads here (the trained tiny model runs on it; the reference is 10× slower). */
const cpuProblem: string | null = await (async () => {
  const discovery = await discoverBackends();
  const cpu = discovery.factories.find((f) => f.name === "cpu");
  if (cpu === undefined) return "@halo/kernels-cpu was not discovered";
  const probe = await cpu.probe();
  return probe.available ? null : `the cpu backend is not available: ${probe.reason}`;
})();

/** Skips (with the reason) without the cpu backend, or fails under HALO_REQUIRE_NATIVE=1 (CI). */
function requireCpu(context: { skip: (note?: string) => void }): boolean {
  if (cpuProblem === null) return true;
  if (process.env["HALO_REQUIRE_NATIVE"] === "1") throw new Error(`${cpuProblem}. HALO_REQUIRE_NATIVE=1 (CI): the native CPU backend must load`);
  context.skip(`${cpuProblem}; the trained tiny model's tests run on it`);
  return false;
}

const loadSynth = (speculative: SpeculativeOptions | undefined, options: LoadModelOptions = {}): Promise<Engine> =>
  keep(loadModel(synth(), { backend: "reference", contextLength: SYNTH_CONTEXT, maxSequences: 8, ...options, ...(speculative ? { speculative } : {}) }));

const loadTiny = (speculative: SpeculativeOptions | undefined, options: LoadModelOptions = {}): Promise<Engine> =>
  keep(loadModel(TINY, { backend: "cpu", contextLength: 160, maxSequences: 8, ...options, ...(speculative ? { speculative } : {}) }));

// ---------------------------------------------------------------------------------------------------------------------
// 1. Greedy: token for token

/** The synthetic model's drafters: acceptance ≈ 100 % (the same model drafts), ≈ 0 % (another model, random heads). */
const SYNTH_DRAFTERS: [string, () => SpeculativeOptions, "all" | "some" | "any"][] = [
  ["ngram (sizes 1-4)", () => ({ drafter: "ngram", policy: "always", maxDraft: 8, ngram: { minN: 1, maxN: 4 } }), "any"],
  ["draft-model: the same model (every draft accepted)", () => ({ drafter: "draft-model", draftModel: files.same, policy: "always", maxDraft: 8 }), "all"],
  ["draft-model: another random model (drafts rejected)", () => ({ drafter: "draft-model", draftModel: files.other, policy: "always", maxDraft: 8 }), "some"],
  ["medusa: random heads (drafts rejected)", () => ({ drafter: "medusa", medusa: files.medusa, policy: "always", maxDraft: 8 }), "some"],
];

/** Prompts over a few ids, so prompt lookup finds matches. */
const synthPrompt = fc.array(fc.integer({ min: 40, max: 47 }), { minLength: 2, maxLength: 14 });

function checkAcceptance(tally: Tally, expected: "all" | "some" | "any"): void {
  expect(tally.verifySteps).toBeGreaterThan(0);
  expect(tally.drafted).toBeGreaterThan(0);
  if (expected === "all") expect(tally.accepted).toBe(tally.drafted);
  if (expected === "some") expect(tally.accepted).toBeLessThan(tally.drafted);
}

describe("greedy speculative decoding is plain decoding, token for token (random model, reference backend)", () => {
  for (const [name, options, acceptance] of SYNTH_DRAFTERS) {
    it(`${name}: one sequence, any prompt and draft length`, async () => {
      const engine = await loadSynth(options());
      const tally = new Tally();
      await fc.assert(
        fc.asyncProperty(synthPrompt, fc.integer({ min: 1, max: 8 }), async (prompt, maxDraft) => {
          const request: GenerateRequest = { prompt, maxTokens: 12, temperature: 0, ignoreEos: true };
          const { plain, spec } = await both(engine, request, { maxDraft });
          expect(visible(spec)).toEqual(visible(plain));
          expect(spec.streamed).toBe(spec.text);
          tally.add(spec.speculative);
          // Prompt lookup drafts only after a match; the others draft every round that has room.
          if (!name.startsWith("ngram")) expect(spec.speculative!.draftedTokens).toBeGreaterThan(0);
          // The request's maxDraft bounds every round.
          expect(spec.speculative!.draftedTokens).toBeLessThanOrEqual(maxDraft * spec.speculative!.verifySteps);
        }),
        { numRuns: 6 },
      );
      checkAcceptance(tally, acceptance);
    });

    it(`${name}: eight sequences in one batch, each its own draft length`, async () => {
      const engine = await loadSynth(options());
      const tally = new Tally();
      await eightAtOnce(engine, synthPrompt, 10, tally);
      checkAcceptance(tally, acceptance);
      expect(engine.stats().activeSequences).toBe(0);
      expect(engine.stats().kv.slotsInUse).toBe(0);
    });
  }

  it("with policy auto, the cost model calibrated at load, and on a backend that returns logits only", async () => {
    const auto = await loadSynth({ drafter: "draft-model", draftModel: files.same, maxDraft: 3 });
    const stats = auto.stats().speculative!;
    expect(stats.calibrationMs).toBeGreaterThan(0);
    expect(stats.stepCost.map((c) => c.rows)).toEqual([1, 2, 3, 4]);
    // A contract-1 backend: no forward(), so no argmax or hidden rows: verification samples the logits rows.
    const logitsOnly = wrapBackend(referenceBackend(), { name: "logits-only", capabilities: { outputs: ["logits"] }, model: () => ({ forward: undefined }) });
    const old = await keep(
      loadModel(synth(), { backend: logitsOnly, contextLength: SYNTH_CONTEXT, speculative: { drafter: "ngram", policy: "always", ngram: { minN: 1 } } }),
    );
    for (const engine of [auto, old]) {
      for (const prompt of [
        [40, 41, 40, 41, 40],
        [45, 46, 47, 45, 46],
      ]) {
        const { plain, spec } = await both(engine, { prompt, maxTokens: 16, temperature: 0, ignoreEos: true });
        expect(visible(spec)).toEqual(visible(plain));
      }
    }
  });
});

const TINY_WORDS = ["def", " self", "(", ")", ":", "\n", "    ", "import", " os", " return", " x", " =", " 1", ",", "class", " Foo", " the", " value", "."];
const tinyPrompt = fc.array(fc.constantFrom(...TINY_WORDS), { minLength: 3, maxLength: 12 }).map((words) => words.join(""));

describe("a draft model catching up on long contexts (trained tiny model, cpu backend)", () => {
  it("feeds them in chunks: eight 700-token prompts draft from their first round (one unchunked draft step would be 5,600 rows)", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "draft-model", draftModel: TINY_DRAFT, policy: "always", maxDraft: 4 }, { contextLength: 1024 });
    const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: 700 }, (_, j) => 10 + ((i * 131 + j * 17) % 3000)));
    const request = (prompt: number[]): GenerateRequest => ({ prompt, maxTokens: 8, temperature: 0, ignoreEos: true });
    const plain = await Promise.all(prompts.map((p) => outcome(engine.generate({ ...request(p), speculative: false }))));
    const spec = await Promise.all(prompts.map((p) => outcome(engine.generate(request(p)))));
    for (let i = 0; i < 8; i++) {
      expect(visible(spec[i]!)).toEqual(visible(plain[i]!));
      expect(spec[i]!.speculative!.draftedTokens).toBeGreaterThan(0);
    }
    expect(engine.stats().speculative!.draftFailures).toBe(0);
  });
});

describe("greedy speculative decoding with penalties and logprobs (trained tiny model, cpu backend)", () => {
  it("verification rows see every accepted draft in the penalties' history, and report plain decoding's logprobs", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "draft-model", draftModel: TINY_DRAFT, policy: "always", maxDraft: 6 });
    const tally = new Tally();
    for (const prompt of ["import os\nimport sys\nimport os\nimport", "def f(self):\n    return self.x\n", "class Foo:\n"]) {
      const request: GenerateRequest = { prompt, maxTokens: 24, temperature: 0, repeatPenalty: 1.3, frequencyPenalty: 0.4, logprobs: true, ignoreEos: true };
      const { plain, spec } = await both(engine, request);
      expect(visible(spec), JSON.stringify(prompt)).toEqual(visible(plain));
      expect(spec.logprobs).toHaveLength(plain.logprobs.length);
      spec.logprobs.forEach((lp, i) => expect(lp).toBeCloseTo(plain.logprobs[i]!, 4));
      tally.add(spec.speculative);
    }
    expect(tally.accepted).toBeGreaterThan(0);
    expect(tally.accepted).toBeLessThan(tally.drafted);
  });
});

const TINY_DRAFTERS: [string, () => SpeculativeOptions][] = [
  ["ngram", () => ({ drafter: "ngram", policy: "always", maxDraft: 8 })],
  ["draft-model halo-tiny-draft", () => ({ drafter: "draft-model", draftModel: TINY_DRAFT, policy: "always", maxDraft: 8 })],
  ["medusa halo-tiny.h1b-medusa", () => ({ drafter: "medusa", medusa: TINY_MEDUSA, policy: "always", maxDraft: 8 })],
];

describe("greedy speculative decoding is plain decoding, token for token (trained tiny model, cpu backend)", () => {
  for (const [name, options] of TINY_DRAFTERS) {
    it(`${name}: one sequence, any prompt and draft length`, async (context) => {
      if (!requireCpu(context)) return;
      const engine = await loadTiny(options());
      const tally = new Tally();
      await fc.assert(
        fc.asyncProperty(tinyPrompt, fc.integer({ min: 1, max: 8 }), async (prompt, maxDraft) => {
          const { plain, spec } = await both(engine, { prompt, maxTokens: 24, temperature: 0, ignoreEos: true }, { maxDraft });
          expect(visible(spec)).toEqual(visible(plain));
          tally.add(spec.speculative);
        }),
        { numRuns: 8 },
      );
      expect(tally.verifySteps).toBeGreaterThan(0);
      expect(tally.drafted).toBeGreaterThan(0);
      expect(tally.accepted).toBeGreaterThan(0);
    });

    it(`${name}: eight sequences in one batch`, async (context) => {
      if (!requireCpu(context)) return;
      const engine = await loadTiny(options());
      const tally = new Tally();
      await eightAtOnce(engine, tinyPrompt, 20, tally);
      expect(tally.drafted).toBeGreaterThan(0);
      // Engine totals add up the requests' counters.
      const totals = engine.stats().speculative!;
      expect(totals.draftedTokens).toBeGreaterThanOrEqual(tally.drafted);
      expect(totals.acceptedTokens).toBeLessThanOrEqual(totals.draftedTokens);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------------
// 2. Sampling: the same distribution, and a seed repeats

/** A correct engine fails one of these tests for one seed set in 10 000 (per test; the seeds are fixed). */
const ALPHA = 1e-4;

describe("sampled speculative decoding", () => {
  it("homogeneity test sanity: it takes two samples of one distribution and refuses two different ones (its tail is checked in verify.test.ts)", () => {
    const draw = (probabilities: number[], n: number, seed: number): string[] => {
      let state = seed;
      return Array.from({ length: n }, () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        let r = state / 2 ** 32;
        let i = 0;
        while (i < probabilities.length - 1 && r >= probabilities[i]!) r -= probabilities[i++]!;
        return String(i);
      });
    };
    const p = [0.4, 0.3, 0.2, 0.1];
    expect(homogeneity(draw(p, 1500, 1), draw(p, 1500, 2)).pValue).toBeGreaterThan(ALPHA);
    // Moving a tenth of the mass from the first token to the second is found.
    expect(homogeneity(draw(p, 1500, 1), draw([0.3, 0.4, 0.2, 0.1], 1500, 2)).pValue).toBeLessThan(ALPHA);
  });

  it("has plain decoding's distribution at every position (two-sample chi-square over 1200 seeded runs each, prompt lookup drafting)", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "ngram", policy: "always", maxDraft: 3 }, { contextLength: 64, maxSequences: 16 });
    // The model continues this with "import os/sys…": prompt lookup drafts in most runs and about half the drafts are
    // rejected, so the accept path, the residual draw and the bonus row all shape the sample.
    const prompt = engine.tokenize("import os\nimport sys\nimport os\nimport");
    const RUNS = 1200;
    const request = { prompt, maxTokens: 4, temperature: 0.7, ignoreEos: true } as const;
    const spec = await Promise.all(Array.from({ length: RUNS }, (_, i) => outcome(engine.generate({ ...request, seed: i }))));
    const plain = await Promise.all(Array.from({ length: RUNS }, (_, i) => outcome(engine.generate({ ...request, seed: RUNS + i, speculative: false }))));
    const tally = new Tally();
    for (const o of spec) tally.add(o.speculative);
    expect(tally.drafted).toBeGreaterThan(RUNS / 2);
    expect(tally.accepted).toBeGreaterThan(tally.drafted / 5);
    expect(tally.accepted).toBeLessThan((tally.drafted * 4) / 5);
    for (let position = 0; position < 4; position++) {
      const fit = homogeneity(
        spec.map((o) => String(o.tokenIds[position])),
        plain.map((o) => String(o.tokenIds[position])),
      );
      expect(fit.pValue, `token ${position + 1}: χ² = ${fit.statistic.toFixed(1)} on ${fit.df} df`).toBeGreaterThan(ALPHA);
    }
    // The pair of the two tokens verified against drafts.
    const pair = homogeneity(
      spec.map((o) => o.tokenIds.slice(1, 3).join(",")),
      plain.map((o) => o.tokenIds.slice(1, 3).join(",")),
    );
    expect(pair.pValue, `tokens 2-3: χ² = ${pair.statistic.toFixed(1)} on ${pair.df} df`).toBeGreaterThan(ALPHA);
  });

  it("repeats with its seed (policy always), alone and in a batch, for each drafter", async (context) => {
    if (!requireCpu(context)) return;
    for (const [name, options] of TINY_DRAFTERS) {
      const engine = await loadTiny(options());
      const request: GenerateRequest = {
        prompt: "import os\nimport sys\nimport os\nimport sys\nimport",
        maxTokens: 24,
        temperature: 0.9,
        topP: 0.95,
        repeatPenalty: 1.1,
        seed: 4242,
      };
      const first = await outcome(engine.generate(request));
      const again = await outcome(engine.generate(request));
      expect(visible(again), name).toEqual(visible(first));
      expect(again.speculative, name).toEqual(first.speculative);
      expect(first.speculative!.draftedTokens, name).toBeGreaterThan(0);
      // Among seven other sampled requests, the same tokens.
      const batch = await Promise.all([
        outcome(engine.generate(request)),
        ...Array.from({ length: 7 }, (_, i) => outcome(engine.generate({ ...request, seed: i, prompt: `x = ${i}\n` }))),
      ]);
      expect(visible(batch[0]!), name).toEqual(visible(first));
      // Another seed, other tokens.
      const other = await outcome(engine.generate({ ...request, seed: 4243 }));
      expect(other.tokenIds, name).not.toEqual(first.tokenIds);
    }
  });

  it("gives plain decoding's tokens for the same seed, whatever the policy drafts (each row sampled as plain decoding samples it)", async (context) => {
    if (!requireCpu(context)) return;
    for (const [name, options] of TINY_DRAFTERS) {
      for (const policy of ["always", "auto"] as const) {
        const engine = await loadTiny({ ...options(), policy });
        for (const seed of [1, 2, 3]) {
          const request: GenerateRequest = { prompt: "import os\nimport sys\nimport os\nimport", maxTokens: 24, temperature: 0.8, topK: 40, seed };
          const { plain, spec } = await both(engine, request);
          expect(visible(spec), `${name} ${policy} seed ${seed}`).toEqual(visible(plain));
          if (policy === "always") expect(spec.speculative!.draftedTokens, name).toBeGreaterThan(0);
        }
        engine.dispose();
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// 3. Where a generation ends

describe("stops, maxTokens, the context end and abort land where plain decoding lands", () => {
  it("stop strings and stop ids anywhere in the output, drafts running past them (trained tiny model, prompt lookup)", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "ngram", policy: "always", maxDraft: 8 });
    // A prompt whose continuation repeats, so most tokens arrive in multi-token verification steps.
    const prompt = "import os\nimport sys\nimport os\nimport sys\nimport os\nimport";
    const base = { prompt, maxTokens: 40, temperature: 0, ignoreEos: true } as const;
    const full = await both(engine, base);
    expect(visible(full.spec)).toEqual(visible(full.plain));
    const counts = full.spec.speculative!;
    expect(counts.tokensPerStep).toBeGreaterThan(1.5);
    const text = full.plain.text;
    const ids = full.plain.tokenIds;
    let stopped = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: text.length - 1 }), fc.integer({ min: 1, max: 4 }), fc.nat({ max: ids.length - 1 }), async (start, length, at) => {
        const stop = text.slice(start, start + length);
        const byString = await both(engine, { ...base, stop: [stop] });
        expect(visible(byString.spec), JSON.stringify(stop)).toEqual(visible(byString.plain));
        expect(byString.plain.finishReason).toBe("stop");
        expect(byString.plain.stopString).toBe(stop);
        const byId = await both(engine, { ...base, stopTokenIds: [ids[at]!] });
        expect(visible(byId.spec), `stop id ${ids[at]}`).toEqual(visible(byId.plain));
        expect(byId.plain.tokenIds.at(-1)).toBe(ids[at]);
        stopped++;
      }),
      { numRuns: 15 },
    );
    expect(stopped).toBe(15);
    // A stop string inside the repeated part, which prompt lookup drafts past: every boundary between two tokens.
    for (let i = 12; i < 20; i++) {
      const before = engine.detokenize(ids.slice(0, i));
      const stop = text.slice(before.length - 1, before.length + 1);
      const r = await both(engine, { ...base, stop: [stop] });
      expect(visible(r.spec), JSON.stringify(stop)).toEqual(visible(r.plain));
    }
  });

  it("maxTokens 1 to 10, for every drafter (random model, reference backend)", async () => {
    for (const [name, options] of SYNTH_DRAFTERS) {
      const engine = await loadSynth(options());
      for (let maxTokens = 1; maxTokens <= 10; maxTokens++) {
        const { plain, spec } = await both(engine, { prompt: [40, 41, 42, 40, 41], maxTokens, temperature: 0, ignoreEos: true });
        expect(visible(spec), `${name}, maxTokens ${maxTokens}`).toEqual(visible(plain));
        expect(spec.tokenIds).toHaveLength(maxTokens);
        expect(spec.finishReason).toBe("length");
      }
      // maxTokens 0: no token, as plain.
      const none = await both(engine, { prompt: [40, 41], maxTokens: 0, temperature: 0 });
      expect(visible(none.spec)).toEqual(visible(none.plain));
    }
  });

  it("the end of the context window (drafts are cut to the room left)", async () => {
    for (const [name, options] of SYNTH_DRAFTERS.slice(0, 2)) {
      const engine = await loadSynth(options(), { contextLength: 24 });
      for (const promptLength of [10, 17, 21, 22]) {
        const prompt = Array.from({ length: promptLength }, (_, i) => 40 + (i % 3));
        const { plain, spec } = await both(engine, { prompt, maxTokens: 64, temperature: 0, ignoreEos: true });
        expect(visible(spec), `${name}, prompt ${promptLength}`).toEqual(visible(plain));
        expect(spec.contextFull).toBe(true);
      }
    }
  });

  it("the model's own stop token (EOS), without ignoreEos", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "draft-model", draftModel: TINY_DRAFT, policy: "always", maxDraft: 6 });
    for (const prompt of ["def f(x):\n    return x\n", "import os\n", "class Foo:\n    pass\n\n", "x = 1\ny = 2\n"]) {
      const { plain, spec } = await both(engine, { prompt, maxTokens: 48, temperature: 0 });
      expect(visible(spec), JSON.stringify(prompt)).toEqual(visible(plain));
    }
  });

  it("abort: before the start and mid-way, exactly where plain decoding's lands (tokens of the step not yet taken are withdrawn)", async () => {
    const engine = await loadSynth({ drafter: "draft-model", draftModel: files.same, policy: "always", maxDraft: 4 });
    const request: GenerateRequest = { prompt: [40, 41, 42], maxTokens: 32, temperature: 0, ignoreEos: true };
    const full = await outcome(engine.generate({ ...request, speculative: false }));
    const early = new AbortController();
    early.abort();
    const before = await outcome(engine.generate({ ...request, signal: early.signal }));
    const beforePlain = await outcome(engine.generate({ ...request, signal: early.signal, speculative: false }));
    expect(visible(before)).toEqual(visible(beforePlain));
    expect(before.finishReason).toBe("abort");
    expect(before.tokenIds).toEqual([]);
    let tokensPerStep = 0;
    for (const n of [1, 2, 3, 5, 8]) {
      const controller = new AbortController();
      const aborted = await outcome(engine.generate({ ...request, signal: controller.signal }), (count) => {
        if (count === n) controller.abort();
      });
      const plainController = new AbortController();
      const plainAborted = await outcome(engine.generate({ ...request, signal: plainController.signal, speculative: false }), (count) => {
        if (count === n) plainController.abort();
      });
      expect(plainAborted.tokenIds).toEqual(full.tokenIds.slice(0, n));
      expect(aborted.finishReason).toBe("abort");
      expect(visible(aborted)).toEqual(visible(plainAborted));
      expect(aborted.tokenIds).toEqual(full.tokenIds.slice(0, n));
      expect(aborted.text).toBe(engine.detokenize(aborted.tokenIds, { skipSpecialTokens: true }));
      tokensPerStep = Math.max(tokensPerStep, aborted.speculative!.tokensPerStep);
    }
    // Steps did carry several tokens, so withdrawing was needed.
    expect(tokensPerStep).toBeGreaterThan(1.5);
    expect(engine.stats().activeSequences).toBe(0);
    expect(engine.stats().kv.slotsInUse).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// 4. Sessions

describe("sessions with speculative decoding", () => {
  it("answer three turns as plain decoding does, with the same cached tokens, reusing the prefix", async (context) => {
    if (!requireCpu(context)) return;
    const engine = await loadTiny({ drafter: "ngram", policy: "always", maxDraft: 6 }, { contextLength: 512, maxSequences: 2 });
    const specSession = engine.createSession({ system: "You write Python." });
    const plainSession = engine.createSession({ system: "You write Python." });
    const turns = ["import os\nimport sys\nimport os\nimport", "def f(self):\n    return self.x", "class Foo:\n    def __init__(self):"];
    let drafted = 0;
    for (const [index, turn] of turns.entries()) {
      const options = { maxTokens: 24, temperature: 0, ignoreEos: true } as const;
      let specStart = 0;
      let plainStart = 0;
      const cachedBefore = specSession.cachedTokens.length;
      const spec = await outcome(
        (async function* () {
          for await (const e of specSession.chat(turn, options)) {
            if (e.type === "request-start") specStart = e.promptTokens;
            yield e;
          }
        })(),
      );
      const plain = await outcome(
        (async function* () {
          for await (const e of plainSession.chat(turn, { ...options, speculative: false })) {
            if (e.type === "request-start") plainStart = e.promptTokens;
            yield e;
          }
        })(),
      );
      expect(visible(spec), `turn ${index + 1}`).toEqual(visible(plain));
      expect(specStart).toBe(plainStart);
      expect(specSession.cachedTokens).toEqual(plainSession.cachedTokens);
      expect(specSession.messages).toEqual(plainSession.messages);
      // The cache holds what the slot was fed: every token of the turn but the last generated one.
      const cached = specSession.cachedTokens;
      if (spec.tokenIds.length > 1) expect(cached.slice(-(spec.tokenIds.length - 1))).toEqual(spec.tokenIds.slice(0, -1));
      if (index > 0) {
        // The follow-up ran only the new part of the conversation.
        expect(specStart).toBeLessThan(cached.length - spec.tokenIds.length + 1);
        expect(cachedBefore).toBeGreaterThan(0);
      }
      drafted += spec.speculative!.draftedTokens;
    }
    expect(drafted).toBeGreaterThan(0);
    // A fresh run of the whole conversation gives the last answer again: the cached KV held the right tokens. (It needs
    // a free slot: the plain session gives its back.)
    plainSession.dispose();
    const fresh = await outcome(engine.chat(specSession.messages.slice(0, -1), { maxTokens: 24, temperature: 0, ignoreEos: true }));
    expect(fresh.text).toBe(specSession.messages.at(-1)!.content);
    specSession.dispose();
  });

  it("draft from the whole conversation: with the model as its own draft model, every later turn's drafts are accepted", async () => {
    // The draft model sees what the target's KV holds only if the session's cached turns reach the drafter; with the
    // new turn alone it would predict from a shorter context and miss.
    const engine = await loadSynth({ drafter: "draft-model", draftModel: files.same, policy: "always", maxDraft: 4 });
    const session = engine.createSession();
    for (const prompt of [[40, 41, 42, 43, 44, 45], [46, 47], [41]]) {
      const turn = await outcome(session.generate(prompt, { maxTokens: 10, temperature: 0, ignoreEos: true }));
      expect(turn.speculative!.draftedTokens).toBeGreaterThan(0);
      expect(turn.speculative!.acceptedTokens).toBe(turn.speculative!.draftedTokens);
    }
    session.dispose();
  });

  it("continue raw token ids after a rewound draft: session.generate matches plain", async () => {
    const engine = await loadSynth({ drafter: "draft-model", draftModel: files.other, policy: "always", maxDraft: 5 });
    const spec = engine.createSession();
    const plain = engine.createSession();
    for (const prompt of [[40, 41, 42], [43, 44], [45]]) {
      const a = await outcome(spec.generate(prompt, { maxTokens: 9, temperature: 0, ignoreEos: true }));
      const b = await outcome(plain.generate(prompt, { maxTokens: 9, temperature: 0, ignoreEos: true, speculative: false }));
      expect(visible(a)).toEqual(visible(b));
      expect(spec.cachedTokens).toEqual(plain.cachedTokens);
      expect(a.speculative!.draftedTokens).toBeGreaterThan(a.speculative!.acceptedTokens);
    }
    spec.dispose();
    plain.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// 5. Bad input

describe("speculative options: refusals", () => {
  it("refuses bad loadModel options with SPECULATIVE_BAD_OPTION naming the field", async () => {
    const bad: [unknown, string][] = [
      [{ drafter: "lookahead" }, "speculative.drafter"],
      [{ drafter: "medusa" }, "speculative.medusa"],
      [{ drafter: "draft-model" }, "speculative.draftModel"],
      [{ drafter: "ngram", maxDraft: 0 }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxDraft: 17 }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxdraft: 4 }, "speculative.maxdraft"],
      [{ drafter: "ngram", policy: "never" }, "speculative.policy"],
      [{ drafter: "ngram", ngram: { minN: 5, maxN: 3 } }, "ngram.minN"],
      ["ngram", "speculative"],
    ];
    for (const [speculative, field] of bad) {
      const r = await refusal(() => loadModel(synth(), { backend: "reference", contextLength: 32, speculative: speculative as SpeculativeOptions }));
      expect(r, JSON.stringify(speculative)).toMatchObject({ code: "SPECULATIVE_BAD_OPTION", field });
    }
  });

  it("refuses a draft model of another vocabulary, and Medusa on a backend without hidden states, with SPECULATIVE_DRAFTER_MISMATCH", async () => {
    const vocab = await refusal(() =>
      loadModel(synth(), { backend: "reference", contextLength: 32, speculative: { drafter: "draft-model", draftModel: files.otherVocab } }),
    );
    expect(vocab.code).toBe("SPECULATIVE_DRAFTER_MISMATCH");
    expect(vocab.message).toMatch(/vocabulary/);
    const noHidden = wrapBackend(referenceBackend(), { name: "no-hidden", capabilities: { hiddenRows: false } });
    const medusa = await refusal(() => loadModel(synth(), { backend: noHidden, contextLength: 32, speculative: { drafter: "medusa", medusa: files.medusa } }));
    expect(medusa.code).toBe("SPECULATIVE_DRAFTER_MISMATCH");
    // Medusa heads of another hidden size: the tiny model's heads (256 wide) on a model of another width are refused.
    const wide = synthModel({ seed: 1, shape: { ...synth().config, hiddenSize: 512, intermediateSize: 1024, numHeads: 8, numKvHeads: 4 } });
    const width = await refusal(() => loadModel(wide, { backend: "reference", contextLength: 32, speculative: { drafter: "medusa", medusa: files.medusa } }));
    expect(width).toMatchObject({ code: "SPECULATIVE_DRAFTER_MISMATCH", field: "speculative.medusa" });
    expect(width.message).toMatch(/another hidden size.*expected heads of hidden size 512.*found 256/);
    // Files that are not there.
    const missing = await refusal(() =>
      loadModel(synth(), { backend: "reference", contextLength: 32, speculative: { drafter: "draft-model", draftModel: join(dir, "absent.halo") } }),
    );
    expect(missing.code).toBe("H1B_MISSING_FILE");
  });

  it("refuses a request that asks for speculation from an engine without a drafter (ENGINE_BAD_OPTION), and a malformed override", async () => {
    const plain = await loadSynth(undefined);
    expect(plain.speculative).toBeNull();
    expect(plain.stats().speculative).toBeUndefined();
    for (const speculative of [true, { maxDraft: 2 }, { policy: "always" as const }]) {
      const r = await refusal(() => outcome(plain.generate({ prompt: [40, 41], maxTokens: 2, speculative })));
      expect(r, JSON.stringify(speculative)).toMatchObject({ code: "ENGINE_BAD_OPTION", field: "speculative" });
    }
    // speculative: false is always fine.
    const ok = await outcome(plain.generate({ prompt: [40, 41], maxTokens: 2, temperature: 0, speculative: false }));
    expect(ok.tokenIds).toHaveLength(2);
    expect(ok.speculative).toBeUndefined();

    const engine = await loadSynth({ drafter: "ngram", policy: "always" });
    expect(engine.speculative).toEqual({ drafter: "ngram", label: "ngram 2-4" });
    for (const [speculative, field] of [
      [{ maxDraft: 0 }, "speculative.maxDraft"],
      [{ maxDraft: 17 }, "speculative.maxDraft"],
      [{ drafter: "ngram" }, "speculative.drafter"],
      [{ policy: "sometimes" }, "speculative.policy"],
      ["yes", "speculative"],
      [null, "speculative"],
    ] as const) {
      const r = await refusal(() => outcome(engine.generate({ prompt: [40, 41], maxTokens: 2, speculative: speculative as never })));
      expect(r, JSON.stringify(speculative)).toMatchObject({ code: "SPECULATIVE_BAD_OPTION", field });
    }
    const chat = await refusal(() => outcome(engine.chat([{ role: "user", content: "hi" }], { maxTokens: 2, speculative: { maxDraft: 99 } })));
    expect(chat).toMatchObject({ code: "SPECULATIVE_BAD_OPTION", field: "speculative.maxDraft" });
  });
});
