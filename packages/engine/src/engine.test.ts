import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "@halo/h1b-format";
import { referenceBackend, wrapBackend, type Backend } from "@halo/kernels";
import { discoverBackends, loadModel, prefillChunkOf, type GenerateEvent, type LoadModelOptions, type RequestEndEvent } from "./index.js";

async function collect(stream: AsyncIterable<GenerateEvent>): Promise<{ events: GenerateEvent[]; end: RequestEndEvent }> {
  const events: GenerateEvent[] = [];
  for await (const event of stream) events.push(event);
  const end = events.at(-1);
  if (end?.type !== "request-end") throw new Error("stream did not end with request-end");
  return { events, end };
}

/** Greedy tokens computed directly on a backend, one step per token: an independent path to the same answer. */
async function directGreedy(prompt: number[], n: number, activation: "relu2" | "silu", kvDtype: "f16" | "f32"): Promise<number[]> {
  const model = await referenceBackend().loadModel(synthModel({ seed: 5, activation }), { contextLength: 128, kvDtype });
  const slot = model.allocateSequence();
  const out: number[] = [];
  let logits = await model.step({
    tokens: Int32Array.from(prompt),
    positions: Int32Array.from(prompt, (_, i) => i),
    slots: new Int32Array(prompt.length).fill(slot),
    logitRows: Int32Array.of(prompt.length - 1),
  });
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v;
    out.push(best);
    logits = await model.step({
      tokens: Int32Array.of(best),
      positions: Int32Array.of(prompt.length + i),
      slots: Int32Array.of(slot),
      logitRows: Int32Array.of(0),
    });
  }
  model.dispose();
  return out;
}

describe("Engine.generate", () => {
  for (const activation of ["relu2", "silu"] as const) {
    it(`greedy tokens equal a direct step-by-step run (${activation})`, async () => {
      const engine = await loadModel(synthModel({ seed: 5, activation }), { backend: "reference", contextLength: 128 });
      const prompt = [500, 72, 101, 108, 108, 111];
      const { end, events } = await collect(engine.generate({ prompt, maxTokens: 12, temperature: 0, ignoreEos: true }));
      expect(engine.kvDtype).toBe("f16");
      expect(end.tokenIds).toEqual(await directGreedy(prompt, 12, activation, "f16"));
      expect(end.finishReason).toBe("length");
      expect(end.usage).toEqual({ promptTokens: 6, completionTokens: 12, totalTokens: 18, cachedPromptTokens: 0 });
      expect(events[0]).toEqual({ type: "request-start", promptTokens: 6, contextTokens: 6, contextLength: 128, droppedMessages: 0 });
      const deltas = events.filter((e) => e.type === "token-delta");
      expect(deltas.map((e) => e.text).join("")).toBe(end.text);
      engine.dispose();
    });
  }

  it("streams text that equals the detokenized ids, and stops at a stop string", async () => {
    await using engine = await loadModel(synthModel({ seed: 9 }), { backend: "reference", contextLength: 128 });
    const first = await collect(engine.complete("The capital of France is", { maxTokens: 24, temperature: 0, ignoreEos: true }));
    expect(first.end.text).toBe(engine.detokenize(first.end.tokenIds, { skipSpecialTokens: true }));
    const text = first.end.text;
    // Pick a stop string from the middle of the greedy output; the rerun must end right before it.
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    expect(stop.length).toBe(2);
    const second = await collect(engine.complete("The capital of France is", { maxTokens: 24, temperature: 0, ignoreEos: true, stop: [stop] }));
    expect(second.end.finishReason).toBe("stop");
    expect(second.end.stopString).toBe(stop);
    expect(second.end.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it("runs many sequences together with the same tokens as alone", async () => {
    const engine = await loadModel(synthModel({ seed: 5 }), { backend: "reference", contextLength: 128, maxSequences: 2 });
    const prompts = [
      [500, 1, 2, 3],
      [500, 40, 41],
      [500, 7, 8, 9, 10, 11],
      [500, 99],
    ];
    const alone: number[][] = [];
    for (const prompt of prompts) alone.push((await collect(engine.generate({ prompt, maxTokens: 8, temperature: 0, ignoreEos: true }))).end.tokenIds.slice());
    // Four at once with two slots: two wait in the queue and join between steps.
    const together = await Promise.all(prompts.map((prompt) => collect(engine.generate({ prompt, maxTokens: 8, temperature: 0, ignoreEos: true }))));
    expect(together.map((r) => r.end.tokenIds)).toEqual(alone);
    expect(engine.stats().activeSequences).toBe(0);
    engine.dispose();
  });

  it("seeded sampling is reproducible", async () => {
    await using engine = await loadModel(synthModel({ seed: 2 }), { backend: "reference", contextLength: 64 });
    const run = async () =>
      (await collect(engine.generate({ prompt: [500, 3], maxTokens: 10, temperature: 0.9, topK: 20, seed: 1234, ignoreEos: true }))).end.tokenIds;
    expect(await run()).toEqual(await run());
  });

  it("abort ends the stream with finishReason abort and frees the sequence; the engine stays usable", async () => {
    await using engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 128, maxSequences: 1 });
    const controller = new AbortController();
    const events: GenerateEvent[] = [];
    for await (const event of engine.generate({ prompt: [500, 1], maxTokens: 100, temperature: 0, ignoreEos: true, signal: controller.signal })) {
      events.push(event);
      if (events.filter((e) => e.type === "token-delta").length === 3) controller.abort();
    }
    const end = events.at(-1) as RequestEndEvent;
    expect(end.finishReason).toBe("abort");
    expect(end.tokenIds.length).toBeLessThan(100);
    expect(engine.stats().activeSequences).toBe(0);
    // Breaking out of the loop also frees the only slot: the next request must run.
    for await (const event of engine.generate({ prompt: [500, 1], maxTokens: 50, temperature: 0, ignoreEos: true })) {
      if (event.type === "token-delta") break;
    }
    const after = await collect(engine.generate({ prompt: [500, 1], maxTokens: 4, temperature: 0, ignoreEos: true }));
    expect(after.end.finishReason).toBe("length");
    expect(after.end.tokenIds).toHaveLength(4);
  });

  it("ends with length at the context limit instead of overflowing", async () => {
    await using engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 16 });
    const { end } = await collect(engine.generate({ prompt: [500, 1, 2, 3, 4, 5], maxTokens: 100, temperature: 0, ignoreEos: true }));
    expect(end.finishReason).toBe("length");
    expect(end.usage.totalTokens).toBe(16);
  });

  it("chat renders the model's template and stops on end-of-turn ids", async () => {
    await using engine = await loadModel(synthModel({ seed: 4 }), { backend: "reference", contextLength: 128 });
    expect(engine.renderChat([{ role: "user", content: "Hi" }])).toBe("User: Hi<|eot_id|>Assistant: ");
    const eot = engine.tokenize("<|eot_id|>", { addSpecialTokens: false, allowSpecial: true });
    expect(eot).toHaveLength(1);
    // Bias the end-of-turn token up: the reply must stop at once with reason stop.
    const { end } = await collect(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 10, temperature: 0, logitBias: { [eot[0]!]: 100 } }));
    expect(end.finishReason).toBe("stop");
    expect(end.tokenIds).toEqual(eot);
    expect(end.text).toBe("");
  });
});

describe("Engine errors", () => {
  it("refuses bad input with typed errors and stays usable", async () => {
    const engine = await loadModel(synthModel({ seed: 1 }), { backend: "reference", contextLength: 32 });
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (error) {
        if (isHaloError(error)) return error.code;
        throw error;
      }
      return "no error";
    };
    expect(code(() => engine.generate({ prompt: new Array(40).fill(3) }))).toBe("ENGINE_CONTEXT_OVERFLOW");
    expect(code(() => engine.generate({ prompt: [1, 99999] }))).toBe("ENGINE_TOKEN_OUT_OF_RANGE");
    expect(code(() => engine.generate({ prompt: [] }))).toBe("ENGINE_BAD_OPTION");
    expect(code(() => engine.generate({ prompt: [1], maxTokens: -1 }))).toBe("ENGINE_BAD_OPTION");
    expect(code(() => engine.generate({ prompt: [1], temperature: -1 }))).toMatch(/^SAMPLER_/);
    const ok = await collect(engine.generate({ prompt: [500, 1], maxTokens: 2, temperature: 0, ignoreEos: true }));
    expect(ok.end.tokenIds).toHaveLength(2);
    engine.dispose();
    engine.dispose();
    expect(code(() => engine.generate({ prompt: [1] }))).toBe("ENGINE_DISPOSED");
    await expect(loadModel(synthModel(), { backend: "reference", contextLength: 100000 })).rejects.toMatchObject({ code: "ENGINE_BAD_OPTION" });
    await expect(loadModel(synthModel(), { backend: "no-such-backend" })).rejects.toMatchObject({ code: "ENGINE_NO_BACKEND", field: "backend" });
  });
});

describe("Engine.perplexity", () => {
  it("equals exp(mean NLL) computed independently from direct steps", async () => {
    const engine = await loadModel(synthModel({ seed: 6 }), { backend: "reference", contextLength: 64 });
    const ids = engine.tokenize("The quick brown fox jumps over the lazy dog. Language models predict the next token.");
    const window = 12;
    const result = await engine.perplexity(ids, { contextLength: window });
    // Independent computation: each window from position 0, all logits at once, float64 log-softmax.
    const model = await referenceBackend().loadModel(synthModel({ seed: 6 }), { contextLength: 64, kvDtype: "f16" });
    let sum = 0;
    let count = 0;
    for (let begin = 0; begin < ids.length - 1; begin += window) {
      const chunk = ids.slice(begin, begin + window);
      const slot = model.allocateSequence();
      const logits = await model.step({
        tokens: Int32Array.from(chunk),
        positions: Int32Array.from(chunk, (_, i) => i),
        slots: new Int32Array(chunk.length).fill(slot),
        logitRows: Int32Array.from(chunk, (_, i) => i),
      });
      model.freeSequence(slot);
      const vocab = engine.config.vocabSize;
      for (let i = 0; i + 1 < chunk.length; i++) {
        const row = Array.from(logits.subarray(i * vocab, (i + 1) * vocab));
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
        sum += lse - row[chunk[i + 1]!]!;
        count++;
      }
    }
    model.dispose();
    expect(result.scoredTokens).toBe(count);
    expect(result.meanNll).toBeCloseTo(sum / count, 9);
    expect(result.perplexity).toBeCloseTo(Math.exp(sum / count), 6);
    // A sliding window scores every token after the first exactly once.
    const sliding = await engine.perplexity(ids, { contextLength: window, stride: 4 });
    expect(sliding.scoredTokens).toBe(ids.length - 1);
    engine.dispose();
  });
});

describe("backend auto-selection", () => {
  it("picks the native CPU backend and it agrees with the reference (skipped, with the reason, without @halo/kernels-cpu; fails under HALO_REQUIRE_NATIVE=1, as in CI)", async (context) => {
    // Without the native backend "auto" is the reference, and this test would compare the reference with itself.
    const discovery = await discoverBackends();
    const cpu = discovery.factories.find((f) => f.name === "cpu");
    const probe = cpu === undefined ? undefined : await cpu.probe();
    if (probe?.available !== true) {
      const refused = discovery.refused.find((r) => r.packageName === "@halo/kernels-cpu" || r.name === "cpu");
      const why =
        probe !== undefined
          ? `the cpu backend is not available here: ${probe.reason}`
          : `@halo/kernels-cpu was not discovered${refused === undefined ? "" : ` (${refused.reason})`}`;
      // HALO_REQUIRE_NATIVE=1: test:ci, and every run under CI (scripts/vitest-ci-requires.ts defaults it to 1 there).
      if (process.env["HALO_REQUIRE_NATIVE"] === "1")
        throw new Error(`${why}. HALO_REQUIRE_NATIVE=1 (CI): the native CPU backend must load; build it with \`pnpm --filter @halo/kernels-cpu build\``);
      context.skip(`${why}; without it "auto" is the reference and this test would compare the reference with itself`);
      return;
    }
    const model = () => synthModel({ seed: 7 });
    const auto = await loadModel(model(), { contextLength: 64 });
    const reference = await loadModel(model(), { backend: "reference", contextLength: 64 });
    const run = async (engine: typeof auto) =>
      (await collect(engine.generate({ prompt: [506, 72, 101, 108, 108, 111], maxTokens: 16, temperature: 0, ignoreEos: true }))).end.tokenIds;
    expect(auto.backend).toBe("cpu");
    expect(await run(auto)).toEqual(await run(reference));
    auto.dispose();
    reference.dispose();
  });
});

describe("lmHead option", () => {
  it("gives the cpu backend the quantised head asked for: perplexity moves a little, not a lot", async () => {
    const text = "The quick brown fox jumps over the lazy dog. Language models predict the next token.";
    const score = async (lmHead: "f16" | "int8" | "int4") => {
      const engine = await loadModel(synthModel({ seed: 6 }), { backend: "cpu", backendOptions: { cpu: { lmHead } }, contextLength: 64 });
      const { meanNll } = await engine.perplexity(engine.tokenize(text), { contextLength: 32 });
      engine.dispose();
      return meanNll;
    };
    const exact = await score("f16");
    for (const head of ["int8", "int4"] as const) {
      const quantised = await score(head);
      expect(quantised, head).not.toBe(exact);
      expect(Math.abs(quantised - exact) / exact, head).toBeLessThan(0.05);
    }
  });

  it("says where the old top-level option went, and lets the cpu backend refuse unknown storages", async () => {
    await expect(loadModel(synthModel(), { backend: "reference", lmHead: "int4" } as LoadModelOptions)).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      field: "lmHead",
      message: expect.stringMatching(/lmHead moved to backendOptions\.cpu\.lmHead/) as unknown,
    });
    await expect(loadModel(synthModel(), { backend: referenceBackend(), backendOptions: { reference: { maxBatchTokens: 8 } } })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
    });
    await expect(loadModel(synthModel(), { backend: "cpu", backendOptions: { cpu: { lmHead: "q4" } } })).rejects.toMatchObject({
      code: "KERNELS_CPU_BAD_OPTION",
      field: "lmHead",
    });
    await expect(loadModel(synthModel(), { backend: "cpu", backendOptions: { cpu: { lm_head: "int4" } } })).rejects.toMatchObject({
      code: "KERNELS_BAD_OPTION",
      field: "cpu.lm_head",
    });
  });
});

describe("Engine.stats().kv", () => {
  it("counts the slots and positions of running generations and of sessions, idle ones included", async () => {
    await using engine = await loadModel(synthModel({ seed: 4 }), { backend: "reference", contextLength: 64, maxSequences: 3 });
    const empty = engine.stats().kv;
    expect(empty).toMatchObject({ slotsInUse: 0, maxSequences: 3, positionsInUse: 0, positionsCapacity: 3 * 64 });
    const session = engine.createSession();
    const idle = await collect(session.generate([500, 1, 2, 3], { maxTokens: 5, temperature: 0, ignoreEos: true }));
    // The session keeps the prompt and every sampled token that was fed back (the last one never was).
    expect(engine.stats().kv).toMatchObject({ slotsInUse: 1, positionsInUse: idle.end.contextTokens - 1 });
    let during: ReturnType<typeof engine.stats>["kv"] | null = null;
    for await (const e of engine.generate({ prompt: [500, 9, 9], maxTokens: 6, temperature: 0, ignoreEos: true })) {
      if (e.type === "token-delta" && during === null) during = engine.stats().kv;
    }
    expect(during?.slotsInUse).toBe(2);
    expect(during!.positionsInUse).toBeGreaterThanOrEqual(idle.end.contextTokens - 1 + 3);
    expect(engine.stats().kv.slotsInUse).toBe(1);
    // Bytes come from the backend's memory estimate (the reference has one).
    const perPosition = engine.memoryEstimate?.kvBytesPerPosition;
    expect(perPosition).toBeGreaterThan(0);
    expect(engine.stats().kv).toMatchObject({
      bytesPerPosition: perPosition,
      bytesInUse: (idle.end.contextTokens - 1) * perPosition!,
      bytesCapacity: 3 * 64 * perPosition!,
    });
    session.dispose();
    expect(engine.stats().kv).toMatchObject({ slotsInUse: 0, positionsInUse: 0, bytesInUse: 0 });
  });
});

/** The reference backend with every step's output kind recorded; `forward: false` hides its forward (a logits-only backend). */
function recordingReference(outputs: string[], forward: boolean): Backend {
  return wrapBackend(referenceBackend(), {
    name: forward ? "reference-recorded" : "reference-step-only",
    model: (inner) => ({
      step: (batch) => {
        outputs.push("step");
        return inner.step(batch);
      },
      forward: forward
        ? (batch) => {
            outputs.push(batch.output ?? "logits");
            return inner.forward!(batch);
          }
        : undefined,
    }),
  });
}

describe("greedy through the backend's argmax", () => {
  it("asks for argmax only for plain greedy requests, and gives the same tokens as sampling the logits", async () => {
    const viaArgmax: string[] = [];
    const viaLogits: string[] = [];
    await using argmaxEngine = await loadModel(synthModel({ seed: 5 }), { backend: recordingReference(viaArgmax, true), contextLength: 128 });
    await using logitsEngine = await loadModel(synthModel({ seed: 5 }), { backend: recordingReference(viaLogits, false), contextLength: 128 });
    for (const prompt of [
      [500, 72, 101, 108, 108, 111],
      [500, 1],
      [500, 9, 8, 7, 6, 5, 4, 3, 2, 1],
    ]) {
      const request = { prompt, maxTokens: 20, temperature: 0, ignoreEos: true } as const;
      viaArgmax.length = 0;
      const argmaxRun = await collect(argmaxEngine.generate(request));
      expect(viaArgmax.length).toBeGreaterThan(0);
      expect(new Set(viaArgmax)).toEqual(new Set(["argmax"]));
      viaLogits.length = 0;
      const logitsRun = await collect(logitsEngine.generate(request));
      expect(new Set(viaLogits)).toEqual(new Set(["step"]));
      expect(argmaxRun.end.tokenIds).toEqual(logitsRun.end.tokenIds);
      expect(argmaxRun.end.text).toBe(logitsRun.end.text);
      // Logprobs, penalties or a bias need the logit rows: the same engine asks for logits then.
      for (const extra of [{ logprobs: true }, { repeatPenalty: 1.1 }, { logitBias: { 7: -1 } }]) {
        viaArgmax.length = 0;
        const run = await collect(argmaxEngine.generate({ ...request, ...extra }));
        expect(new Set(viaArgmax), JSON.stringify(extra)).toEqual(new Set(["logits"]));
        if ("logprobs" in extra) expect(run.end.tokenIds).toEqual(argmaxRun.end.tokenIds);
      }
    }
  });

  it("on the cpu backend (argmax computed natively) gives the tokens of its logits path", async () => {
    await using engine = await loadModel(synthModel({ seed: 5 }), { backend: "cpu", contextLength: 128 });
    expect(engine.backendFactory!.create().capabilities().outputs, "cpu computes argmax itself, so greedy asks it for argmax").toContain("argmax");
    for (const prompt of [
      [500, 72, 101, 108, 108, 111],
      [500, 1],
      [500, 9, 8, 7, 6, 5, 4, 3, 2, 1],
    ]) {
      const request = { prompt, maxTokens: 24, temperature: 0, ignoreEos: true } as const;
      const argmaxRun = await collect(engine.generate(request));
      // logprobs need whole logit rows: the same greedy choice, made by the sampler from the logits.
      const logitsRun = await collect(engine.generate({ ...request, logprobs: true }));
      expect(argmaxRun.end.tokenIds).toEqual(logitsRun.end.tokenIds);
    }
  });
});

describe("queueing, prompt chunks and rendered chats", () => {
  it("a request aborted while queued behind a full engine ends promptly with finishReason abort", async () => {
    await using engine = await loadModel(synthModel({ seed: 5 }), { backend: "reference", contextLength: 256, maxSequences: 1 });
    const long = collect(engine.generate({ prompt: [500, 1], maxTokens: 200, temperature: 0, ignoreEos: true }));
    while (engine.stats().steps === 0) await new Promise((resolve) => setImmediate(resolve));
    // The head of the queue waits for the slot; the request behind it is the one aborted.
    const head = collect(engine.generate({ prompt: [500, 3], maxTokens: 3, temperature: 0, ignoreEos: true }));
    const controller = new AbortController();
    const queued = collect(engine.generate({ prompt: [500, 2], maxTokens: 5, signal: controller.signal }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(engine.stats().queuedSequences).toBe(2);
    const stepsAtAbort = engine.stats().steps;
    controller.abort();
    const { end } = await queued;
    expect(end.finishReason).toBe("abort");
    expect(end.tokenIds).toEqual([]);
    // It ended while the long generation still held the only slot, not when the slot was freed.
    expect(engine.stats().steps - stepsAtAbort).toBeLessThan(50);
    expect(engine.stats().queuedSequences).toBe(1);
    expect((await long).end.tokenIds).toHaveLength(200);
    expect((await head).end.tokenIds).toHaveLength(3);
  });

  it("prompt chunks: min(preferred, 256) up to 512 rows per step (a small batch is never halved), half above", () => {
    expect([1, 16, 64, 256, 300, 512, 513, 1024, 4096].map(prefillChunkOf)).toEqual([1, 16, 64, 256, 256, 256, 256, 512, 2048]);
  });

  it("encodeRenderedChat of renderChat's text is encodeChat", async () => {
    await using engine = await loadModel(synthModel({ seed: 5 }), { backend: "reference", contextLength: 128 });
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi <|eot_id|> there" },
    ] as const;
    const text = engine.renderChat(messages);
    expect(engine.encodeRenderedChat(text)).toEqual(engine.encodeChat(messages));
    const sliced = await engine.encodeRenderedChat(text, async (t, options) => engine.tokenize(t, options));
    expect(sliced).toEqual(engine.encodeChat(messages));
  });
});
