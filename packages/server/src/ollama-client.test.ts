import { Ollama, type Message } from "ollama";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { postJson, startTinyServer, type TinyServer } from "../test/tiny-server.js";

// The official `ollama` npm client, unmodified, against a real listening server on a tiny generated model. Each
// generation is also asked of the OpenAI routes with the same greedy settings: both APIs must give the same text.
let tiny: TinyServer;
let client: Ollama;
const KEY = "sk-halo-test";
const AUTH = { authorization: `Bearer ${KEY}` };
const messages: Message[] = [{ role: "user", content: "Tell me about ternary weights." }];
const GREEDY = { temperature: 0, num_predict: 12 };

beforeAll(async () => {
  tiny = await startTinyServer({ apiKeys: [KEY], parallel: 2 });
  client = new Ollama({ host: tiny.url, headers: AUTH });
});
afterAll(async () => {
  await tiny.close();
});

async function openAi(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await postJson(`${tiny.url}${path}`, body, AUTH);
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

function choice(answer: Record<string, unknown>): Record<string, unknown> {
  return (answer["choices"] as Array<Record<string, unknown>>)[0]!;
}

/** What the client throws for an error answer: its message and HTTP status. */
async function refusal(run: () => Promise<unknown>): Promise<{ message: string; status: number | undefined }> {
  try {
    await run();
  } catch (error) {
    return { message: (error as Error).message, status: (error as { status_code?: number }).status_code };
  }
  throw new Error("the request was not refused");
}

describe("ollama npm client", () => {
  it("version, tags, ps and show describe the served model", async () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await client.version()).toEqual({ version: pkg.version });
    const { models } = await client.list();
    expect(models.map((m) => m.name)).toEqual(["tiny:latest"]);
    expect(models[0]!.details.family).toBe(tiny.engine.config.architecture);
    expect(models[0]!.details.parameter_size).toMatch(/^\d+(\.\d)?[KMB]$/);
    expect(models[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    const running = await client.ps();
    expect(running.models.map((m) => m.name)).toEqual(["tiny:latest"]);
    const shown = await client.show({ model: "tiny" });
    expect(shown.template).toBe(tiny.engine.chatTemplate.source);
    const info = shown.model_info as unknown as Record<string, unknown>;
    expect(info["general.architecture"]).toBe(tiny.engine.config.architecture);
    expect(info[`${tiny.engine.config.architecture}.context_length`]).toBe(tiny.engine.contextLength);
    expect(shown.capabilities).toEqual(["completion", "embedding"]);
  });

  it("chat, not streamed: the OpenAI route's greedy answer, with Ollama's counts and durations", async () => {
    const answer = await client.chat({ model: "tiny", messages, stream: false, options: GREEDY });
    const openai = await openAi("/v1/chat/completions", { model: "tiny", messages, max_tokens: 12, temperature: 0 });
    expect(answer.message.role).toBe("assistant");
    expect(answer.message.content).toBe((choice(openai)["message"] as { content: string }).content);
    expect(answer.done).toBe(true);
    expect(answer.done_reason).toBe(choice(openai)["finish_reason"]);
    const usage = openai["usage"] as { prompt_tokens: number; completion_tokens: number };
    expect(answer.prompt_eval_count).toBe(usage.prompt_tokens);
    expect(answer.eval_count).toBe(usage.completion_tokens);
    expect(answer.total_duration).toBeGreaterThan(0);
    expect(answer.eval_duration).toBeGreaterThan(0);
    expect(answer.model).toBe("tiny:latest");
  });

  it("chat, streamed: the parts join to the non-streamed answer and the last one is done", async () => {
    const whole = await client.chat({ model: "tiny:latest", messages, stream: false, options: GREEDY });
    const parts = [];
    for await (const part of await client.chat({ model: "tiny", messages, stream: true, options: GREEDY })) parts.push(part);
    expect(parts.length).toBeGreaterThan(3);
    expect(parts.slice(0, -1).every((p) => !p.done)).toBe(true);
    const last = parts[parts.length - 1]!;
    expect(last.done).toBe(true);
    expect(last.eval_count).toBe(whole.eval_count);
    expect(parts.map((p) => p.message.content).join("")).toBe(whole.message.content);
  });

  it("generate: the prompt as one chat turn (with a system prompt), as Ollama renders it", async () => {
    const answer = await client.generate({ model: "tiny", prompt: "Why is the sky blue?", system: "Answer briefly.", stream: false, options: GREEDY });
    const openai = await openAi("/v1/chat/completions", {
      messages: [
        { role: "system", content: "Answer briefly." },
        { role: "user", content: "Why is the sky blue?" },
      ],
      max_tokens: 12,
      temperature: 0,
    });
    expect(answer.response).toBe((choice(openai)["message"] as { content: string }).content);
    expect(answer.done).toBe(true);
    expect(answer.context.length).toBe(answer.prompt_eval_count + answer.eval_count);
  });

  it("generate raw: the text completion's answer; its context continued by a raw request is the same ids as a prompt", async () => {
    const prompt = "Once upon a time";
    const streamed = [];
    for await (const part of await client.generate({ model: "tiny", prompt, raw: true, stream: true, options: GREEDY })) streamed.push(part);
    const text = streamed.map((p) => p.response).join("");
    const openai = await openAi("/v1/completions", { prompt, max_tokens: 12, temperature: 0 });
    expect(text).toBe(choice(openai)["text"]);
    const context = streamed[streamed.length - 1]!.context;
    expect(context.length).toBe(streamed[streamed.length - 1]!.prompt_eval_count + streamed[streamed.length - 1]!.eval_count);
    // Continuing the returned ids with more text equals completing those ids followed by the text's tokens.
    const more = await client.generate({ model: "tiny", prompt: " and then", raw: true, context, stream: false, options: { ...GREEDY, num_predict: 6 } });
    const ids = [...context, ...tiny.engine.tokenize(" and then", { addSpecialTokens: false })];
    const byIds = await openAi("/v1/completions", { prompt: ids, max_tokens: 6, temperature: 0 });
    expect(more.response).toBe(choice(byIds)["text"]);
  });

  it("sampler options map: a seeded sampled chat repeats, and num_predict bounds it", async () => {
    const options = { temperature: 0.9, top_k: 40, top_p: 0.9, seed: 7, num_predict: 9, repeat_penalty: 1.1 };
    const a = await client.chat({ model: "tiny", messages, stream: false, options });
    const b = await client.chat({ model: "tiny", messages, stream: false, options });
    expect(a.message.content).toBe(b.message.content);
    expect(a.eval_count).toBeLessThanOrEqual(9);
    const openai = await openAi("/v1/chat/completions", { messages, temperature: 0.9, top_k: 40, top_p: 0.9, seed: 7, max_tokens: 9, repeat_penalty: 1.1 });
    expect(a.message.content).toBe((choice(openai)["message"] as { content: string }).content);
  });

  it("a load request (no messages, no prompt) is done at once with done_reason load", async () => {
    const chat = await client.chat({ model: "tiny", messages: [], stream: false });
    expect(chat.done_reason).toBe("load");
    const generate = await client.generate({ model: "tiny", prompt: "", stream: false });
    expect(generate.done_reason).toBe("load");
    expect(generate.response).toBe("");
  });

  it("refusals reach the client as Ollama errors with the HTTP status: unknown model, format, mirostat, images, unknown option", async () => {
    const unknown = await refusal(() => client.chat({ model: "llama3", messages, stream: false }));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toContain("not found");
    const format = await refusal(() => client.chat({ model: "tiny", messages, format: "json", stream: false }));
    expect(format.status).toBe(400);
    expect(format.message).toContain("format");
    const mirostat = await refusal(() => client.generate({ model: "tiny", prompt: "hi", options: { mirostat: 2 }, stream: false }));
    expect(mirostat.status).toBe(400);
    expect(mirostat.message).toContain("mirostat");
    const images = await refusal(() => client.generate({ model: "tiny", prompt: "hi", images: ["aGk="], stream: false }));
    expect(images.status).toBe(400);
    const option = await refusal(() => client.chat({ model: "tiny", messages, options: { nonsense: 1 } as never, stream: false }));
    expect(option.status).toBe(400);
    expect(option.message).toContain("options.nonsense");
    // Streamed requests are refused before the stream starts, with the same error.
    const streamed = await refusal(async () => {
      for await (const part of await client.chat({ model: "nope", messages, stream: true })) void part;
    });
    expect(streamed.status).toBe(404);
  });

  it("runtime options (num_ctx, num_thread, keep_alive) are accepted and named in x-halo-ignored-fields", async () => {
    const response = await postJson(
      `${tiny.url}/api/chat`,
      { model: "tiny", messages, stream: false, keep_alive: "5m", options: { num_ctx: 4096, num_thread: 8, num_predict: 4 } },
      AUTH,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-halo-ignored-fields")).toBe("keep_alive, options.num_ctx, options.num_thread");
    const body = (await response.json()) as { done: boolean; eval_count: number };
    expect(body.done).toBe(true);
    expect(body.eval_count).toBeLessThanOrEqual(4);
  });

  it("without the API key the routes answer 401 in Ollama's shape; /api/version needs none", async () => {
    const response = await postJson(`${tiny.url}/api/chat`, { model: "tiny", messages, stream: false });
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: string; halo_code: string };
    expect(typeof body.error).toBe("string");
    expect(body.halo_code).toBe("SERVER_UNAUTHORIZED");
    expect((await fetch(`${tiny.url}/api/version`)).status).toBe(200);
    const missing = await fetch(`${tiny.url}/api/nothing`, { headers: AUTH });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toContain("/api/nothing");
  });

  it("an aborted stream frees the server for the next request", async () => {
    const stream = await client.chat({ model: "tiny", messages, stream: true, options: { temperature: 0, num_predict: 200 } });
    let parts = 0;
    try {
      for await (const part of stream) {
        void part;
        if (++parts === 2) stream.abort();
      }
    } catch (error) {
      expect((error as Error).name).toBe("AbortError");
    }
    const after = await client.chat({ model: "tiny", messages, stream: false, options: GREEDY });
    expect(after.done).toBe(true);
  });
});
