import OpenAI from "openai";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTinyServer, type TinyServer } from "../test/tiny-server.js";

// Embeddings through the official `openai` and `ollama` clients: the engine's own vectors (Engine.embed), in each API's
// shape, and the refusals.
let tiny: TinyServer;
let openai: OpenAI;
let ollama: Ollama;
const KEY = "sk-halo-test";
const AUTH = { authorization: `Bearer ${KEY}` };
const TEXTS = ["ternary weights", "a cat sat on the mat"];

beforeAll(async () => {
  tiny = await startTinyServer({ apiKeys: [KEY], parallel: 2 });
  openai = new OpenAI({ baseURL: `${tiny.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20_000 });
  ollama = new Ollama({ host: tiny.url, headers: AUTH });
});
afterAll(async () => {
  await tiny.close();
});

describe("embeddings", () => {
  it("openai client: the engine's unit vectors, by index, with usage (the client asks base64 and decodes it)", async () => {
    const want = await tiny.engine.embed(TEXTS);
    const answer = await openai.embeddings.create({ model: "tiny", input: TEXTS });
    expect(answer.object).toBe("list");
    expect(answer.data.map((d) => d.index)).toEqual([0, 1]);
    for (const [i, d] of answer.data.entries()) expect(Float32Array.from(d.embedding)).toEqual(want.embeddings[i]);
    expect(answer.usage).toEqual({ prompt_tokens: want.promptTokens, total_tokens: want.promptTokens });
    const floats = await openai.embeddings.create({ model: "tiny", input: TEXTS[0]!, encoding_format: "float" });
    expect(Float32Array.from(floats.data[0]!.embedding)).toEqual(want.embeddings[0]);
    // Token ids are inputs too.
    const ids = await openai.embeddings.create({ model: "tiny", input: [tiny.engine.tokenize(TEXTS[1]!)], encoding_format: "float" });
    expect(Float32Array.from(ids.data[0]!.embedding)).toEqual(want.embeddings[1]);
  });

  it("ollama client: embed gives the unit vectors, the older embeddings route the mean before unit scaling", async () => {
    const want = await tiny.engine.embed(TEXTS);
    const answer = await ollama.embed({ model: "tiny", input: TEXTS });
    expect(answer.embeddings.map((v) => Float32Array.from(v))).toEqual(want.embeddings);
    expect(answer.prompt_eval_count).toBe(want.promptTokens);
    expect(answer.model).toBe("tiny:latest");
    const raw = (await tiny.engine.embed([TEXTS[0]!], { normalize: false })).embeddings[0]!;
    const legacy = await ollama.embeddings({ model: "tiny", prompt: TEXTS[0]! });
    expect(Float32Array.from(legacy.embedding)).toEqual(raw);
  });

  it("Ollama truncates a long input by default; OpenAI's route refuses it with context_length_exceeded", async () => {
    const long = "word ".repeat(400);
    const cut = await ollama.embed({ model: "tiny", input: long });
    expect(cut.embeddings[0]).toHaveLength(tiny.engine.config.hiddenSize);
    expect(cut.prompt_eval_count).toBe(tiny.engine.contextLength);
    const refused = await postJson(`${tiny.url}/v1/embeddings`, { input: long }, AUTH);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("context_length_exceeded");
    const strict = await postJson(`${tiny.url}/api/embed`, { input: long, truncate: false }, AUTH);
    expect(strict.status).toBe(400);
    expect(typeof ((await strict.json()) as { error: string }).error).toBe("string");
  });

  it("refuses empty inputs, other dimensions, unknown fields and encodings, in each API's error shape", async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["/v1/embeddings", { input: "" }, "input"],
      ["/v1/embeddings", { input: [] }, "input"],
      ["/v1/embeddings", { input: ["ok", ""] }, "input[1]"],
      ["/v1/embeddings", { input: "x", dimensions: 3 }, "dimensions"],
      ["/v1/embeddings", { input: "x", encoding_format: "int8" }, "encoding_format"],
      ["/v1/embeddings", { input: "x", pooling: "cls" }, "pooling"],
    ];
    for (const [path, body, param] of cases) {
      const response = await postJson(`${tiny.url}${path}`, body, AUTH);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(((await response.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    const ollamaEmpty = await postJson(`${tiny.url}/api/embed`, { model: "tiny", input: [] }, AUTH);
    expect(ollamaEmpty.status).toBe(400);
    expect(((await ollamaEmpty.json()) as { error: string }).error).toContain("input");
    const unknownModel = await postJson(`${tiny.url}/api/embed`, { model: "other", input: "x" }, AUTH);
    expect(unknownModel.status).toBe(404);
  });
});
