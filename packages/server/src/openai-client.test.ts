import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTinyServer, type TinyServer } from "../test/tiny-server.js";

// The official `openai` npm client, unmodified, against a real listening server on a tiny generated model.
let tiny: TinyServer;
let client: OpenAI;
const KEY = "sk-halo-test";
const messages = [{ role: "user" as const, content: "Tell me about ternary weights." }];

beforeAll(async () => {
  tiny = await startTinyServer({ apiKeys: [KEY], parallel: 1, maxQueue: 0 });
  client = new OpenAI({ baseURL: `${tiny.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20_000 });
});
afterAll(async () => {
  await tiny.close();
});

describe("openai npm client", () => {
  it("lists the model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["tiny"]);
  });

  it("chat, not streamed", async () => {
    const completion = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0, seed: 1 });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]!.message.role).toBe("assistant");
    expect(typeof completion.choices[0]!.message.content).toBe("string");
    expect(["stop", "length"]).toContain(completion.choices[0]!.finish_reason);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens);
  });

  it("chat, streamed: chunks join to the non-streamed answer, usage arrives last", async () => {
    const plain = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0 });
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages,
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(usage).toEqual(plain.usage);
  });

  it("chat, streamed through the client's stream helper (finalChatCompletion)", async () => {
    const runner = client.chat.completions.stream({ model: "tiny", messages, max_tokens: 8, temperature: 0 });
    const deltas: string[] = [];
    runner.on("content", (delta) => deltas.push(delta));
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe(deltas.join(""));
  });

  it("n choices: each its own sample (seed + index), the prompt counted once, streamed choices join to the whole ones", async () => {
    const request = { model: "tiny", messages, max_tokens: 10, temperature: 0.9, seed: 5, n: 3 } as const;
    const hitsBefore = tiny.engine.stats().prefixCache!.hits;
    const whole = await client.chat.completions.create(request);
    // Choices 1 and 2 start from choice 0's prompt KV (this server has one slot: each takes the kept slot over in turn).
    expect(tiny.engine.stats().prefixCache!.hits - hitsBefore).toBeGreaterThanOrEqual(2);
    expect(whole.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    // Choice i samples with seed 5 + i: choice 1 is what a single request with seed 6 answers.
    const single = await client.chat.completions.create({ ...request, n: 1, seed: 6 });
    expect(whole.choices[1]!.message.content).toBe(single.choices[0]!.message.content);
    expect(new Set(whole.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    const single0 = await client.chat.completions.create({ ...request, n: 1 });
    expect(whole.usage!.prompt_tokens).toBe(single0.usage!.prompt_tokens);
    expect(whole.choices[0]!.message.content).toBe(single0.choices[0]!.message.content);
    expect(whole.usage!.completion_tokens).toBeGreaterThanOrEqual(single0.usage!.completion_tokens);
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    const texts = ["", "", ""];
    const finished = [false, false, false];
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? "";
        if (c.finish_reason !== null) finished[c.index] = true;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(texts).toEqual(whole.choices.map((c) => c.message.content));
    expect(finished).toEqual([true, true, true]);
    expect(usage!.completion_tokens).toBe(whole.usage!.completion_tokens);
  });

  it("text completions, streamed and not", async () => {
    const plain = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    expect(plain.object).toBe("text_completion");
    const stream = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 0, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(plain.choices[0]!.text);
  });

  it("a chat of 1000 messages that each carry `name` is answered (the ignored-fields header names the field once)", async () => {
    // The client's HTTP stack (undici) refuses answers with more than 16 KiB of headers.
    const many = Array.from({ length: 1000 }, (_, i) => ({
      role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
      content: "hi",
      name: `speaker${i % 2}`,
    }));
    const { data, response } = await client.chat.completions.create({ model: "tiny", messages: many, max_tokens: 2, temperature: 0 }).withResponse();
    expect(data.choices).toHaveLength(1);
    expect(response.headers.get("x-halo-ignored-fields")).toBe("messages[*].name");
  });

  it("errors surface as the client's typed errors", async () => {
    await expect(client.chat.completions.create({ model: "gpt-4o", messages })).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    await expect(client.chat.completions.create({ model: "tiny", messages, temperature: 5 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const anonymous = new OpenAI({ baseURL: `${tiny.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    await expect(anonymous.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("a full server answers 429, which the client reports as RateLimitError", async () => {
    const busy = await client.chat.completions.create({
      model: "tiny",
      messages,
      max_tokens: 100,
      temperature: 0,
      stream: true,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    const iterator = busy[Symbol.asyncIterator]();
    await iterator.next();
    await expect(client.chat.completions.create({ model: "tiny", messages, max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    busy.controller.abort();
  });
});
