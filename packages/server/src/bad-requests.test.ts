import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

let tiny: TinyServer;
const KEY = "sk-test-0123456789";
const auth = { authorization: `Bearer ${KEY}` };
const LIMIT = 64 * 1024;

beforeAll(async () => {
  tiny = await startTinyServer({ apiKeys: [KEY, "sk-second"], maxBodyBytes: LIMIT, corsOrigins: ["http://localhost:*", "https://app.example"] });
});
afterAll(async () => {
  await tiny.close();
});

interface ErrorAnswer {
  status: number;
  error: { message: string; type: string; param: string | null; code: string; halo_code: string };
  headers: Headers;
}

async function errorOf(response: Response): Promise<ErrorAnswer> {
  const body = (await response.json()) as { error: ErrorAnswer["error"] };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "halo_code", "message", "param", "type"]);
  expect(typeof body.error.message).toBe("string");
  return { status: response.status, error: body.error, headers: response.headers };
}

/** Raw POST of `size` bytes (declared or chunked) over node:http, so no client-side check interferes; stops sending once answered. */
function rawPost(path: string, size: number, declared: boolean): Promise<{ status: number; body: string }> {
  const { port } = new URL(tiny.url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        headers: { ...auth, "content-type": "application/json", ...(declared ? { "content-length": String(size) } : { "transfer-encoding": "chunked" }) },
      },
      (res) => {
        answered = true;
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    // The server closes the connection after a 413; writes still in flight may then fail.
    req.on("error", (error) => (answered ? undefined : reject(error)));
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    let sent = 0;
    const pump = (): void => {
      while (sent < size && !answered) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

const messages = [{ role: "user", content: "Hello" }];

describe("bad requests", () => {
  const chat = (body: unknown, headers: Record<string, string> = auth): Promise<Response> => postJson(`${tiny.url}/v1/chat/completions`, body, headers);

  it("malformed JSON, a non-object body and an empty body are 400 invalid_json", async () => {
    for (const text of ["{not json", "[1,2]", "", "null"]) {
      const response = await fetch(`${tiny.url}/v1/chat/completions`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: text });
      const { status, error } = await errorOf(response);
      expect(status).toBe(400);
      expect(error).toMatchObject({ type: "invalid_request_error", code: "invalid_json", halo_code: "SERVER_BAD_JSON" });
    }
  });

  it("wrong types and impossible values are 400 naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ messages: "hi" }, "messages"],
      [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
      [{ messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
      [{ messages, temperature: "hot" }, "temperature"],
      [{ messages, temperature: 3 }, "temperature"],
      [{ messages, top_p: 1.5 }, "top_p"],
      [{ messages, top_k: 2.5 }, "top_k"],
      [{ messages, max_tokens: 0 }, "max_tokens"],
      [{ messages, max_tokens: "ten" }, "max_tokens"],
      [{ messages, stream: "yes" }, "stream"],
      [{ messages, stop: [""] }, "stop"],
      [{ messages, stop: 4 }, "stop"],
      [{ messages, seed: 1.5 }, "seed"],
      [{ messages, logit_bias: { "9999": 1 } }, "logit_bias.9999"],
      [{ messages, logit_bias: { "1": 500 } }, "logit_bias.1"],
      [{ messages, presence_penalty: 9 }, "presence_penalty"],
      [{ messages, repeat_penalty: 0 }, "repeat_penalty"],
      [{ messages, top_logprobs: 3 }, "top_logprobs"],
      [{ messages, model: 42 }, "model"],
    ];
    for (const [body, param] of cases) {
      const { status, error } = await errorOf(await chat(body));
      expect([status, error.param, error.type, error.halo_code]).toEqual([400, param, "invalid_request_error", "SERVER_BAD_REQUEST"]);
      expect(error.message).toContain("expected");
    }
    const completion = await errorOf(await postJson(`${tiny.url}/v1/completions`, { prompt: [1, -2] }, auth));
    expect([completion.status, completion.error.param]).toEqual([400, "prompt"]);
    const missing = await errorOf(await postJson(`${tiny.url}/v1/completions`, { max_tokens: 3 }, auth));
    expect([missing.status, missing.error.param]).toEqual([400, "prompt"]);
  });

  it("empty messages are 400; unknown fields are refused naming the field, the listed ignored ones reported, null is absent", async () => {
    const { status, error } = await errorOf(await chat({ messages: [] }));
    expect([status, error.param]).toEqual([400, "messages"]);
    for (const [body, param] of [
      [{ messages, max_tokens: 2, grammar: 'root ::= "a"' }, "grammar"],
      [{ messages, max_tokens: 2, some_future_field: { x: 1 } }, "some_future_field"],
      [{ messages, max_tokens: 2, stream: true, stream_options: { include_usage: true, chunk_size: 3 } }, "stream_options.chunk_size"],
      [{ messages: [{ role: "user", content: "hi", images: [] }], max_tokens: 2 }, "messages[0].images"],
      [
        { messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }] }], max_tokens: 2 },
        "messages[0].content[0].cache_control",
      ],
    ] as const) {
      const refused = await errorOf(await chat(body));
      expect([refused.status, refused.error.param, refused.error.code, refused.error.halo_code]).toEqual([400, param, "unknown_field", "SERVER_UNKNOWN_FIELD"]);
    }
    const completion = await errorOf(await postJson(`${tiny.url}/v1/completions`, { prompt: "x", max_tokens: 2, grammar: "root ::= x" }, auth));
    expect([completion.status, completion.error.param]).toEqual([400, "grammar"]);
    const tokenize = await errorOf(await postJson(`${tiny.url}/tokenize`, { content: "x", add_bos: true }, auth));
    expect([tokenize.status, tokenize.error.param]).toEqual([400, "add_bos"]);
    const named = [
      { role: "user", content: "Hello", name: "ada" },
      { role: "assistant", content: "Hi", name: "bot" },
      { role: "user", content: "Hello again", name: "ada" },
    ];
    const ok = await chat({ messages: named, max_tokens: 2, metadata: { run: "1" }, store: false, some_future_field: null, temperature: null });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-halo-ignored-fields")).toBe("metadata, store, messages[*].name");
    const plain = await chat({ messages, max_tokens: 2 });
    expect(plain.headers.get("x-halo-ignored-fields")).toBeNull();
  });

  it("tools, image parts, json response_format and several prompts are refused clearly (400 unsupported_value)", async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["/v1/chat/completions", { messages, tools: [{ type: "function", function: { name: "f" } }] }, "tools"],
      ["/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }, "messages[0].content[0].type"],
      ["/v1/chat/completions", { messages, response_format: { type: "json_object" } }, "response_format"],
      ["/v1/completions", { prompt: ["a", "b"] }, "prompt"],
      ["/v1/completions", { prompt: "a", best_of: 3 }, "best_of"],
    ];
    for (const [path, body, param] of cases) {
      const { status, error } = await errorOf(await postJson(`${tiny.url}${path}`, body, auth));
      expect([status, error.param, error.code]).toEqual([400, param, "unsupported_value"]);
    }
  });

  it("n above 128 or below 1 is 400 invalid_value naming n", async () => {
    for (const n of [129, 0, 1.5]) {
      const { status, error } = await errorOf(await chat({ messages, n, max_tokens: 2 }));
      expect([status, error.param, error.code], String(n)).toEqual([400, "n", "invalid_value"]);
    }
  });

  it("an unknown model is 404 model_not_found", async () => {
    const { status, error } = await errorOf(await chat({ model: "gpt-4o", messages }));
    expect([status, error.param, error.code]).toEqual([404, "model", "model_not_found"]);
    expect(error.message).toContain('"tiny"');
  });

  it("a prompt longer than the context is 400 context_length_exceeded, before it is queued", async () => {
    const long = "word ".repeat(400);
    const { status, error } = await errorOf(await chat({ messages: [{ role: "user", content: long }] }));
    expect([status, error.code, error.param]).toEqual([400, "context_length_exceeded", "messages"]);
    expect(tiny.app.stats().queued).toBe(0);
    const ids = await errorOf(await postJson(`${tiny.url}/v1/completions`, { prompt: Array.from({ length: 300 }, () => 65) }, auth));
    expect([ids.status, ids.error.code]).toEqual([400, "context_length_exceeded"]);
  });

  it("a missing or wrong API key is 401 with WWW-Authenticate; /health and the page need none", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: `Basic ${KEY}` }, { authorization: `Bearer ${KEY}x` }] as Array<
      Record<string, string>
    >) {
      const { status, error, headers: answer } = await errorOf(await chat({ messages }, headers));
      expect([status, error.type, error.code]).toEqual([401, "authentication_error", "invalid_api_key"]);
      expect(answer.get("www-authenticate")).toBe('Bearer realm="halo"');
    }
    expect((await fetch(`${tiny.url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${tiny.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${tiny.url}/v1/models`, { headers: { authorization: "Bearer sk-second" } })).status).toBe(200);
    expect((await fetch(`${tiny.url}/health`)).status).toBe(200);
    expect((await fetch(`${tiny.url}/`)).status).toBe(200);
  });

  it("a body over the limit is 413, declared or streamed", async () => {
    const declared = await rawPost("/v1/chat/completions", LIMIT * 4, true);
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe("request_too_large");
    const chunked = await rawPost("/v1/chat/completions", LIMIT * 4, false);
    expect(chunked.status).toBe(413);
    const ok = await chat({ messages: [{ role: "user", content: "x".repeat(100) }], max_tokens: 1 });
    expect(ok.status).toBe(200);
  });

  it("an unknown route is 404 and a wrong method 405 with Allow", async () => {
    const missing = await errorOf(await fetch(`${tiny.url}/v2/everything`, { headers: auth }));
    expect([missing.status, missing.error.code]).toEqual([404, "not_found"]);
    const wrong = await fetch(`${tiny.url}/v1/chat/completions`, { headers: auth });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
  });

  it("CORS: allowed origins get headers and preflights; others get 403; same-origin pages pass", async () => {
    const preflight = await fetch(`${tiny.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "http://localhost:5173", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("authorization, content-type");
    const allowed = await chat({ messages, max_tokens: 1 }, { ...auth, origin: "https://app.example" });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const foreign = await errorOf(await chat({ messages, max_tokens: 1 }, { ...auth, origin: "https://evil.example" }));
    expect([foreign.status, foreign.error.code]).toEqual([403, "origin_not_allowed"]);
    const foreignPreflight = await fetch(`${tiny.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "https://evil.example" } });
    expect(foreignPreflight.status).toBe(403);
    const host = new URL(tiny.url).host;
    const same = await chat({ messages, max_tokens: 1 }, { ...auth, origin: `http://${host}` });
    expect(same.status).toBe(200);
    expect(same.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("none of the bad requests crashes the server or stalls a stream running beside them", async () => {
    const streamStarted = performance.now();
    const stream = postJson(`${tiny.url}/v1/completions`, { prompt: "Go", max_tokens: 120, temperature: 0, ignore_eos: true, stream: true }, auth).then(
      async (r) => {
        const records = await readSseRecords(r);
        return { records, at: performance.now() };
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const bad = await Promise.all([
      fetch(`${tiny.url}/v1/chat/completions`, { method: "POST", headers: auth, body: "{oops" }).then((r) => ({ status: r.status, at: performance.now() })),
      chat({ messages: [] }).then((r) => ({ status: r.status, at: performance.now() })),
      chat({ messages, temperature: "x" }).then((r) => ({ status: r.status, at: performance.now() })),
      chat({ messages, model: "nope" }).then((r) => ({ status: r.status, at: performance.now() })),
      chat({ messages }, {}).then((r) => ({ status: r.status, at: performance.now() })),
      rawPost("/v1/completions", LIMIT * 2, true).then((r) => ({ status: r.status, at: performance.now() })),
    ]);
    const { records, at: streamEnded } = await stream;
    expect(bad.map((b) => b.status)).toEqual([400, 400, 400, 404, 401, 413]);
    // Every bad request was answered while the stream was still running.
    for (const b of bad) expect(b.at).toBeLessThan(streamEnded);
    expect(records.at(-1)).toBe("[DONE]");
    const chunks = records.slice(0, -1).map((r) => JSON.parse(r) as { choices: Array<{ finish_reason: string | null }> });
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
    expect(streamEnded - streamStarted).toBeGreaterThan(0);
    expect((await fetch(`${tiny.url}/health`)).status).toBe(200);
  });
});
