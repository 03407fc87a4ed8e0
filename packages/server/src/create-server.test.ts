import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Engine, type GenerateEvent } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { createServer, silentLogger } from "./index.js";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

let tiny: TinyServer;
const messages = [{ role: "user", content: "What is a ternary weight?" }];

async function engineText(engine: Engine, events: AsyncIterable<GenerateEvent>): Promise<{ text: string; ids: readonly number[] }> {
  void engine;
  for await (const event of events) if (event.type === "request-end") return { text: event.text, ids: event.tokenIds };
  throw new Error("no request-end");
}

beforeAll(async () => {
  tiny = await startTinyServer({ statsIntervalMs: 100 });
});
afterAll(async () => {
  await tiny.close();
});

describe("routes", () => {
  it("GET /health answers ok and echoes a sane x-request-id", async () => {
    const response = await fetch(`${tiny.url}/health`, { headers: { "x-request-id": "req-42" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("req-42");
    expect(await response.json()).toMatchObject({ status: "ok", model: "tiny" });
    const minted = await fetch(`${tiny.url}/health`, { headers: { "x-request-id": "bad id with spaces" } });
    expect(minted.headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
  });

  it("GET /v1/models lists the served model; /v1/models/{id} finds it or answers 404", async () => {
    const list = (await (await fetch(`${tiny.url}/v1/models`)).json()) as { object: string; data: Array<Record<string, unknown>> };
    expect(list.object).toBe("list");
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({ id: "tiny", object: "model", owned_by: "halo", meta: { backend: "reference", context_length: 256, vocab_size: 512 } });
    expect((await fetch(`${tiny.url}/v1/models/tiny`)).status).toBe(200);
    const missing = await fetch(`${tiny.url}/v1/models/gpt-4`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
  });

  it("non-streaming chat equals the engine's own greedy chat (same template, same ids)", async () => {
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { model: "tiny", messages, max_tokens: 12, temperature: 0 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, any>;
    const direct = await engineText(tiny.engine, tiny.engine.chat(messages, { maxTokens: 12, temperature: 0 }));
    expect(body["object"]).toBe("chat.completion");
    expect(body["id"]).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(body["choices"][0].message).toEqual({ role: "assistant", content: direct.text, refusal: null });
    expect(body["choices"][0].finish_reason).toBe(direct.ids.length === 12 ? "length" : "stop");
    const promptTokens = tiny.engine.tokenizer!.encodeChat(messages, { template: "bitnet" }).length;
    expect(body["usage"]).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: direct.ids.length,
      total_tokens: promptTokens + direct.ids.length,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    // The same chat again starts from the prefix cache (everything but the prompt's last token) and answers the same.
    const again = (await (await postJson(`${tiny.url}/v1/chat/completions`, { model: "tiny", messages, max_tokens: 12, temperature: 0 })).json()) as Record<
      string,
      any
    >;
    expect(again["usage"].prompt_tokens_details).toEqual({ cached_tokens: promptTokens - 1 });
    expect(again["choices"][0].message.content).toBe(direct.text);
    // cache_prompt: false (llama-server's field) computes the whole prompt.
    const uncached = (await (
      await postJson(`${tiny.url}/v1/chat/completions`, { model: "tiny", messages, max_tokens: 12, temperature: 0, cache_prompt: false })
    ).json()) as Record<string, any>;
    expect(uncached["usage"].prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const metrics = await (await fetch(`${tiny.url}/metrics`)).text();
    expect(metrics).toMatch(/^halo_prefix_cache_reused_tokens_total \d+/m);
    expect(metrics).toMatch(/^halo_prefix_cache_hits_total [1-9]/m);
    expect(body["timings"].prompt_n).toBe(promptTokens);
  });

  it("streaming chat: role opener, content deltas, finish chunk, [DONE]; deltas join to the non-streamed text", async () => {
    const plain = (await (await postJson(`${tiny.url}/v1/chat/completions`, { messages, max_tokens: 10, temperature: 0 })).json()) as Record<string, any>;
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { messages, max_tokens: 10, temperature: 0, stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const records = await readSseRecords(response);
    expect(records.at(-1)).toBe("[DONE]");
    const chunks = records.slice(0, -1).map((r) => JSON.parse(r) as Record<string, any>);
    const ids = new Set(chunks.map((c) => c["id"]));
    expect(ids.size).toBe(1);
    for (const chunk of chunks) {
      expect(chunk["object"]).toBe("chat.completion.chunk");
      expect(chunk).not.toHaveProperty("usage");
    }
    expect(chunks[0]!["choices"][0]).toEqual({ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null });
    const last = chunks.at(-1)!;
    expect(last["choices"][0].delta).toEqual({});
    expect(last["choices"][0].finish_reason).toBe(plain["choices"][0].finish_reason);
    const middle = chunks.slice(1, -1);
    for (const chunk of middle) expect(chunk["choices"][0].finish_reason).toBeNull();
    expect(middle.map((c) => c["choices"][0].delta.content).join("")).toBe(plain["choices"][0].message.content);
  });

  it("stream_options.include_usage: usage null on every chunk, then one choices:[] chunk with usage", async () => {
    const response = await postJson(`${tiny.url}/v1/chat/completions`, {
      messages,
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const records = await readSseRecords(response);
    expect(records.at(-1)).toBe("[DONE]");
    const chunks = records.slice(0, -1).map((r) => JSON.parse(r) as Record<string, any>);
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk["choices"]).toEqual([]);
    expect(usageChunk["usage"].completion_tokens).toBe(6);
    expect(usageChunk["usage"].total_tokens).toBe(usageChunk["usage"].prompt_tokens + 6);
    for (const chunk of chunks.slice(0, -1)) expect(chunk["usage"]).toBeNull();
  });

  it("text completions stream text chunks (no role opener) and match the non-streamed text; echo prepends the prompt", async () => {
    const request = { prompt: "Once upon a time", max_tokens: 8, temperature: 0 };
    const plain = (await (await postJson(`${tiny.url}/v1/completions`, request)).json()) as Record<string, any>;
    expect(plain["object"]).toBe("text_completion");
    const direct = await engineText(tiny.engine, tiny.engine.complete("Once upon a time", { maxTokens: 8, temperature: 0 }));
    expect(plain["choices"][0].text).toBe(direct.text);
    const records = await readSseRecords(await postJson(`${tiny.url}/v1/completions`, { ...request, stream: true }));
    expect(records.at(-1)).toBe("[DONE]");
    const chunks = records.slice(0, -1).map((r) => JSON.parse(r) as Record<string, any>);
    for (const chunk of chunks) expect(chunk["object"]).toBe("text_completion");
    expect(chunks.map((c) => c["choices"][0].text).join("")).toBe(direct.text);
    expect(chunks.at(-1)!["choices"][0].finish_reason).toBe(plain["choices"][0].finish_reason);
    const echoed = (await (await postJson(`${tiny.url}/v1/completions`, { ...request, echo: true })).json()) as Record<string, any>;
    expect(echoed["choices"][0].text).toBe(`Once upon a time${direct.text}`);
  });

  it("a prompt of token ids is used as given", async () => {
    const ids = tiny.engine.tokenize("Hello world");
    const direct = await engineText(tiny.engine, tiny.engine.generate({ prompt: ids, maxTokens: 6, temperature: 0 }));
    const body = (await (await postJson(`${tiny.url}/v1/completions`, { prompt: ids, max_tokens: 6, temperature: 0 })).json()) as Record<string, any>;
    expect(body["choices"][0].text).toBe(direct.text);
    expect(body["usage"].prompt_tokens).toBe(ids.length);
    const nested = (await (await postJson(`${tiny.url}/v1/completions`, { prompt: [ids], max_tokens: 6, temperature: 0 })).json()) as Record<string, any>;
    expect(nested["choices"][0].text).toBe(direct.text);
  });

  it("stop strings cut the text before the stop string and finish with stop", async () => {
    const full = (await (await postJson(`${tiny.url}/v1/completions`, { prompt: "The", max_tokens: 24, temperature: 0, ignore_eos: true })).json()) as Record<
      string,
      any
    >;
    const text = full["choices"][0].text as string;
    const stop = text.slice(6, 8);
    expect(stop.length).toBe(2);
    const cut = (await (
      await postJson(`${tiny.url}/v1/completions`, { prompt: "The", max_tokens: 24, temperature: 0, ignore_eos: true, stop })
    ).json()) as Record<string, any>;
    expect(cut["choices"][0].finish_reason).toBe("stop");
    expect(cut["choices"][0].text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it("max_completion_tokens wins over max_tokens; seed makes sampling reproducible", async () => {
    const a = (await (
      await postJson(`${tiny.url}/v1/completions`, { prompt: "A", max_tokens: 3, max_completion_tokens: 5, temperature: 1, seed: 7, ignore_eos: true })
    ).json()) as Record<string, any>;
    const b = (await (
      await postJson(`${tiny.url}/v1/completions`, { prompt: "A", max_tokens: 3, max_completion_tokens: 5, temperature: 1, seed: 7, ignore_eos: true })
    ).json()) as Record<string, any>;
    expect(a["usage"].completion_tokens).toBe(5);
    expect(a["choices"][0].text).toBe(b["choices"][0].text);
  });

  it("logit_bias +100 on one token makes greedy decoding repeat it", async () => {
    const token = 300;
    const body = (await (
      await postJson(`${tiny.url}/v1/completions`, { prompt: "Hi", max_tokens: 4, temperature: 0, logit_bias: { [token]: 100 } })
    ).json()) as Record<string, any>;
    expect(body["choices"][0].text).toBe(tiny.engine.detokenize([token, token, token, token]));
  });

  it("chat logprobs: one entry per token with top_logprobs sorted and ≤ 0; text completions use the legacy shape", async () => {
    const body = (await (
      await postJson(`${tiny.url}/v1/chat/completions`, { messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3, ignore_eos: true })
    ).json()) as Record<string, any>;
    const content = body["choices"][0].logprobs.content as Array<{ token: string; logprob: number; bytes: number[]; top_logprobs: Array<{ logprob: number }> }>;
    expect(content).toHaveLength(5);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.top_logprobs).toHaveLength(3);
      const lps = entry.top_logprobs.map((t) => t.logprob);
      expect([...lps].sort((x, y) => y - x)).toEqual(lps);
      // greedy: the chosen token is the most likely one
      expect(entry.logprob).toBe(lps[0]);
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, "utf8")]);
    }
    const text = (await (
      await postJson(`${tiny.url}/v1/completions`, { prompt: "Hi", max_tokens: 4, temperature: 0, logprobs: 2, ignore_eos: true })
    ).json()) as Record<string, any>;
    const lp = text["choices"][0].logprobs;
    expect(lp.tokens).toHaveLength(4);
    expect(lp.token_logprobs).toHaveLength(4);
    expect(lp.text_offset[0]).toBe(0);
    expect(lp.tokens.join("")).toBe(text["choices"][0].text);
  });

  it("POST /tokenize and /detokenize round-trip text", async () => {
    const tokens = ((await (await postJson(`${tiny.url}/tokenize`, { content: "Hello ternary world" })).json()) as { tokens: number[] }).tokens;
    expect(tokens).toEqual(tiny.engine.tokenize("Hello ternary world", { addSpecialTokens: false }));
    const withBos = ((await (await postJson(`${tiny.url}/tokenize`, { content: "Hi", add_special: true })).json()) as { tokens: number[] }).tokens;
    expect(withBos[0]).toBe(506);
    const pieces = (
      (await (await postJson(`${tiny.url}/tokenize`, { content: "Hi", with_pieces: true })).json()) as { tokens: Array<{ id: number; piece: string }> }
    ).tokens;
    expect(pieces.map((p) => p.piece).join("")).toBe("Hi");
    const content = ((await (await postJson(`${tiny.url}/detokenize`, { tokens })).json()) as { content: string }).content;
    expect(content).toBe("Hello ternary world");
  });

  it("GET /metrics is Prometheus text with request, token, rate, queue and KV metrics that agree with the stats", async () => {
    const response = await fetch(`${tiny.url}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const name of [
      "halo_requests_total",
      "halo_request_duration_seconds_bucket",
      "halo_time_to_first_token_seconds_count",
      "halo_prompt_tokens_total",
      "halo_generated_tokens_total",
      "halo_prompt_tokens_per_second",
      "halo_decode_tokens_per_second",
      "halo_queue_depth",
      "halo_active_sequences",
      "halo_kv_usage_ratio",
    ]) {
      expect(text).toContain(`\n${name}`);
    }
    const generated = Number(/\nhalo_generated_tokens_total (\d+)/.exec(text)?.[1]);
    expect(generated).toBe(tiny.app.stats().generatedTokens);
    expect(generated).toBeGreaterThan(0);
    expect(text).toMatch(/halo_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);
  });

  it("GET /_live/stats streams a record at once and then every interval, with tok/s while generating", async () => {
    const controller = new AbortController();
    const response = await fetch(`${tiny.url}/_live/stats`, { signal: controller.signal });
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const generation = postJson(`${tiny.url}/v1/completions`, { prompt: "Go", max_tokens: 150, temperature: 0, ignore_eos: true });
    const records: Array<Record<string, any>> = [];
    let buffer = "";
    const started = performance.now();
    while (records.length < 60 && !records.some((r) => r["active"] === 1 && r["decodeTokensPerSecond"] > 0)) {
      const { value } = await reader.read();
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        records.push(JSON.parse(buffer.slice(6, cut)) as Record<string, any>);
        buffer = buffer.slice(cut + 2);
      }
    }
    controller.abort();
    await (await generation).json();
    expect(records[0]).toMatchObject({ status: "ready", model: "tiny", backend: "reference", parallel: 4, contextLength: 256 });
    // A record while the generation runs shows it, with a live rate.
    expect(records.some((r) => r["active"] === 1 && r["decodeTokensPerSecond"] > 0)).toBe(true);
    // Records come every ~100 ms (the interval this server was given), not in a burst.
    expect(performance.now() - started).toBeGreaterThanOrEqual((records.length - 1) * 100 * 0.5);
  });
});

describe("loading", () => {
  it("answers /health 503 'Loading model' and generation 503 until the engine resolves", async () => {
    let resolve!: (engine: Engine) => void;
    const pending = new Promise<Engine>((r) => (resolve = r));
    const app = createServer({ engine: pending, logger: silentLogger, modelId: "late" });
    const { url } = await app.listen(0);
    const loading = await fetch(`${url}/health`);
    expect(loading.status).toBe(503);
    expect(await loading.json()).toMatchObject({ error: { message: "Loading model", type: "unavailable_error", code: "model_loading" } });
    const early = await postJson(`${url}/v1/chat/completions`, { messages });
    expect(early.status).toBe(503);
    expect(early.headers.get("retry-after")).toBe("5");
    const engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 64 });
    resolve(engine);
    await app.ready;
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(app.stats().status).toBe("ready");
    await app.close();
    engine.dispose();
  });

  it("answers 503 model_load_failed when loading fails, and the server keeps running", async () => {
    const app = createServer({ engine: Promise.reject(new Error("file not found")), logger: silentLogger });
    const { url } = await app.listen(0);
    await expect(app.ready).rejects.toThrow("file not found");
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "model_load_failed" });
    expect((await postJson(`${url}/v1/completions`, { prompt: "x" })).status).toBe(503);
    await app.close();
  });
});

describe("the page", () => {
  it("GET / serves the HTML page and its script and stylesheet, without a key even when keys are set", async () => {
    const app = createServer({ engine: tiny.engine, logger: silentLogger, apiKeys: ["k"] });
    const { url } = await app.listen(0);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/app.js">');
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${url}/app.js`)).headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await fetch(`${url}/style.css`)).status).toBe(200);
    expect((await fetch(`${url}/_live/stats`)).status).toBe(401);
    await app.close();
  });
});
