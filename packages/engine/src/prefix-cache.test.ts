// The prefix cache: a generation whose prompt starts like a finished one continues from that KV (copied), gives the
// answer a fresh prefill gives, reports the reused tokens, and never holds back a request or a session that needs a slot.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { TOLERANCES } from "@halo/kernels";
import { discoverBackends, loadModel, type Engine, type GenerateRequest, type LoadModelOptions, type RequestEndEvent } from "./index.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

// The trained tiny model, from the repository (engine does not depend on @halo/model-tiny).
const tinyModelPath = join(dirname(fileURLToPath(import.meta.url)), "../../model-tiny/models/halo-tiny.halo");
const weights = synthModel({ seed: 21 });
const vocab = weights.config.vocabSize;
/** A shared "system prompt" of 40 ids, and two different questions after it. */
const SYSTEM = Array.from({ length: 40 }, (_, i) => 3 + ((i * 29) % (vocab - 3)));
const QUESTION_A = [11, 12, 13, 14, 15];
const QUESTION_B = [21, 22, 23];
const engines: Engine[] = [];

afterEach(() => {
  for (const engine of engines.splice(0)) engine.dispose();
});

async function load(options: LoadModelOptions = {}): Promise<Engine> {
  const engine = await loadModel(weights, { backend: "reference", contextLength: 128, maxSequences: 2, ...options });
  engines.push(engine);
  return engine;
}

interface Run {
  readonly tokens: readonly number[];
  readonly end: RequestEndEvent;
  readonly logprobs: readonly number[];
}

async function run(engine: Engine, request: GenerateRequest): Promise<Run> {
  const logprobs: number[] = [];
  let end: RequestEndEvent | null = null;
  for await (const event of engine.generate(request)) {
    if (event.type === "token-delta" && event.tokenId >= 0 && event.logprob !== undefined) logprobs.push(event.logprob);
    if (event.type === "request-end") end = event;
  }
  return { tokens: end!.tokenIds, end: end!, logprobs };
}

const greedy = (prompt: readonly number[]): GenerateRequest => ({ prompt, maxTokens: 10, temperature: 0, ignoreEos: true });

describe("the prefix cache (loadModel prefixCache, request cachePrompt)", () => {
  it("a prompt that shares a finished request's prefix reuses it and answers as a fresh prefill does", async () => {
    const cached = await load();
    const fresh = await load({ prefixCache: false });
    const first = await run(cached, greedy([...SYSTEM, ...QUESTION_A]));
    expect(first.end.usage.cachedPromptTokens).toBe(0);
    const second = await run(cached, greedy([...SYSTEM, ...QUESTION_B]));
    // The shared part is reused; the reference backend is batch-invariant, so the answer is the fresh one exactly.
    expect(second.end.usage.cachedPromptTokens).toBe(SYSTEM.length);
    expect(second.end.usage.promptTokens).toBe(SYSTEM.length + QUESTION_B.length);
    expect(second.tokens).toEqual((await run(fresh, greedy([...SYSTEM, ...QUESTION_B]))).tokens);
    // The same prompt again: everything but its last token comes from the cache (the last one's logits are needed).
    const again = await run(cached, greedy([...SYSTEM, ...QUESTION_A]));
    expect(again.end.usage.cachedPromptTokens).toBe(SYSTEM.length + QUESTION_A.length - 1);
    expect(again.tokens).toEqual(first.tokens);
    const stats = cached.stats().prefixCache!;
    expect(stats.hits).toBe(2);
    expect(stats.misses).toBe(1);
    expect(stats.reusedTokens).toBe(SYSTEM.length + SYSTEM.length + QUESTION_A.length - 1);
    expect(stats.cachedSequences).toBeGreaterThan(0);
    // Kept slots are not counted as in use.
    expect(cached.stats().kv.slotsInUse).toBe(0);
    expect(fresh.stats().prefixCache).toBeUndefined();
  });

  it("a continuation of a finished answer reuses the prompt and the answer's tokens", async () => {
    const engine = await load();
    const prompt = [...SYSTEM, ...QUESTION_A];
    const first = await run(engine, greedy(prompt));
    // The answer's last token was sampled, never fed: the KV holds the prompt and every answer token but the last.
    const next = await run(engine, greedy([...prompt, ...first.tokens, 7, 8]));
    expect(next.end.usage.cachedPromptTokens).toBe(prompt.length + first.tokens.length - 1);
  });

  it("short shared prefixes (under minTokens), cachePrompt: false and prefixCache: false compute everything", async () => {
    const engine = await load({ prefixCache: { minTokens: 41 }, maxSequences: 4 });
    await run(engine, greedy([...SYSTEM, ...QUESTION_A]));
    expect((await run(engine, greedy([...SYSTEM, ...QUESTION_B]))).end.usage.cachedPromptTokens).toBe(0);
    expect((await run(engine, { ...greedy([...SYSTEM, ...QUESTION_A]), cachePrompt: false })).end.usage.cachedPromptTokens).toBe(0);
    expect((await run(engine, greedy([...SYSTEM, ...QUESTION_A]))).end.usage.cachedPromptTokens).toBe(SYSTEM.length + QUESTION_A.length - 1);
  });

  it("kept slots never hold back work: with 2 slots, three prompts and a session all run (least recently used evicted)", async () => {
    const engine = await load();
    const prompts = [0, 1, 2].map((k) => Array.from({ length: 30 }, (_, i) => 5 + ((i * 7 + k * 101) % (vocab - 5))));
    for (const prompt of prompts) await run(engine, greedy(prompt));
    const stats = engine.stats().prefixCache!;
    expect(stats.cachedSequences).toBe(2);
    expect(stats.evictions).toBe(1);
    // Both slots are kept: a session still gets one, and concurrent requests still run.
    const session = engine.createSession();
    let text = "";
    for await (const event of session.chat("hello")) if (event.type === "token-delta") text += event.text;
    expect(typeof text).toBe("string");
    const [a, b] = await Promise.all(prompts.slice(0, 2).map((p) => run(engine, greedy(p))));
    expect(a!.tokens).toHaveLength(10);
    expect(b!.tokens).toHaveLength(10);
    session.dispose();
  });

  it("a request that arrives while another with the same prefix decodes copies the running sequence's KV", async () => {
    const engine = await load();
    const fresh = await load({ prefixCache: false });
    const first = engine.generate({ ...greedy([...SYSTEM, ...QUESTION_A]), maxTokens: 30 });
    const iterator = first[Symbol.asyncIterator]();
    // Wait for the first one's first token: its prompt is in its KV now, and it keeps decoding.
    for (;;) {
      const { value } = await iterator.next();
      if (value.type === "token-delta") break;
    }
    const second = await run(engine, greedy([...SYSTEM, ...QUESTION_B]));
    expect(second.end.usage.cachedPromptTokens).toBe(SYSTEM.length);
    expect(second.tokens).toEqual((await run(fresh, greedy([...SYSTEM, ...QUESTION_B]))).tokens);
    for (;;) if ((await iterator.next()).done === true) break;
  });

  it("with a single slot, the kept slot itself is continued (nothing to copy into)", async () => {
    const one = await load({ maxSequences: 1 });
    const fresh = await load({ prefixCache: false, maxSequences: 1 });
    await run(one, greedy([...SYSTEM, ...QUESTION_A]));
    const second = await run(one, greedy([...SYSTEM, ...QUESTION_B]));
    expect(second.end.usage.cachedPromptTokens).toBe(SYSTEM.length);
    expect(second.tokens).toEqual((await run(fresh, greedy([...SYSTEM, ...QUESTION_B]))).tokens);
    expect(one.stats().prefixCache!.cachedSequences).toBe(1);
  });

  it("perplexity, evaluation and embeddings read every row, so they never start from the cache", async () => {
    const cached = await load();
    const fresh = await load({ prefixCache: false });
    const ids = [...SYSTEM, ...QUESTION_A];
    await run(cached, greedy(ids));
    expect((await cached.perplexity(ids)).perplexity).toBe((await fresh.perplexity(ids)).perplexity);
    expect((await cached.embed([ids])).embeddings[0]).toEqual((await fresh.embed([ids])).embeddings[0]);
    expect(cached.stats().prefixCache!.hits).toBe(0);
  });

  it("refuses malformed options", async () => {
    expect(await haloCodeOf(() => load({ prefixCache: { minTokens: 0 } }))).toBe("ENGINE_BAD_OPTION");
    expect(await haloCodeOf(() => load({ prefixCache: "yes" as never }))).toBe("ENGINE_BAD_OPTION");
    expect(await haloCodeOf(() => load({ prefixCache: { size: 3 } as never }))).toBe("ENGINE_BAD_OPTION");
    const engine = await load();
    expect(await haloCodeOf(() => run(engine, { ...greedy([1, 2, 3]), cachePrompt: 1 as never }))).toBe("ENGINE_BAD_OPTION");
  });
});

describe("the prefix cache on the cpu backend (trained tiny model)", () => {
  it("a shared system prompt is reused; the answer's logprobs are the fresh prefill's within the batch tolerance", async (context) => {
    const cpu = (await discoverBackends()).factories.find((f) => f.name === "cpu");
    if (cpu === undefined || !(await cpu.create().probe()).available) {
      context.skip();
      return;
    }
    const cached = await loadModel(tinyModelPath, { backend: "cpu", contextLength: 512, maxSequences: 2 });
    const fresh = await loadModel(tinyModelPath, { backend: "cpu", contextLength: 512, maxSequences: 2, prefixCache: false });
    engines.push(cached, fresh);
    const system = "You answer questions about Python's standard library in one short paragraph, with an example. ";
    const request = (question: string): GenerateRequest => ({ prompt: system + question, maxTokens: 16, temperature: 0, logprobs: true, ignoreEos: true });
    await run(cached, request("What does os.path.join do?"));
    const second = await run(cached, request("How do I read a file line by line?"));
    const alone = await run(fresh, request("How do I read a file line by line?"));
    expect(second.end.usage.cachedPromptTokens).toBeGreaterThan(10);
    expect(second.logprobs).toHaveLength(alone.logprobs.length);
    // Greedy ids agree while the logprobs do; a near-tie could flip one id, so the ids are compared up to the first such.
    for (let i = 0; i < alone.logprobs.length && second.tokens[i] === alone.tokens[i]; i++) {
      expect(Math.abs(second.logprobs[i]! - alone.logprobs[i]!)).toBeLessThan(TOLERANCES.batchInvariance * 10);
    }
    expect(second.tokens[0]).toBe(alone.tokens[0]);
  });
});
