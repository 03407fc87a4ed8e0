import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTinyServer, type TinyServer } from "../test/tiny-server.js";
import { MAX_PIECES, SLICE_CHARS } from "./prompt-tokens.js";

// Large bodies are worked through in event-loop turns: /health answers while they run. The bound
// is generous (CI shares 2 loaded cores); a body handled in one synchronous piece takes seconds.
const HEALTH_MS = 1000;

let tiny: TinyServer;
beforeAll(async () => {
  tiny = await startTinyServer({ parallel: 1 });
});
afterAll(async () => {
  await tiny.close();
});

/** POSTs a JSON text made beforehand (stringifying megabytes would hold this event loop inside the measured window). */
function postText(path: string, body: string): Promise<Response> {
  return fetch(`${tiny.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
}

/** The slowest /health answer while `work` runs (polled every 25 ms), and what `work` gave. */
async function healthWhile<T>(start: () => Promise<T>): Promise<{ worstMs: number; result: T }> {
  const work = start();
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  let worstMs = 0;
  while (!done) {
    const started = performance.now();
    const answer = await fetch(`${tiny.url}/health`);
    await answer.arrayBuffer();
    worstMs = Math.max(worstMs, performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const result = await settled;
  if (process.env["HALO_SHOW_HEALTH_MS"] !== undefined) console.log(`health ${Math.round(worstMs)} ms`);
  return { worstMs, result };
}

/** Runs `work` with the served engine's `method` watched: the largest input (text length or id count) one call got. */
async function largestCall<T>(method: "tokenize" | "detokenize", work: () => Promise<T>): Promise<{ largest: number; result: T }> {
  const engine = tiny.engine as unknown as Record<string, unknown>;
  const original = engine[method] as (input: string | readonly number[], options?: object) => unknown;
  let largest = 0;
  engine[method] = (input: string | readonly number[], options?: object) => (
    (largest = Math.max(largest, input.length)),
    original.call(engine, input, options)
  );
  try {
    const result = await work();
    return { largest, result };
  } finally {
    delete engine[method];
  }
}

describe("the event loop stays free", () => {
  it("a chat of 60 000 short messages (3 MB) is answered while /health stays responsive", async () => {
    const messages = Array.from({ length: 60_000 }, (_, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content: `short message number ${i}` }));
    const body = JSON.stringify({ messages, max_tokens: 2, temperature: 0 });
    expect(body.length).toBeGreaterThan(3_000_000);
    const { worstMs, result } = await healthWhile(() =>
      postText("/v1/chat/completions", body).then(async (r) => ({ status: r.status, dropped: r.headers.get("x-halo-context-dropped"), body: await r.text() })),
    );
    expect(result.status, result.body).toBe(200);
    expect(Number(result.dropped)).toBeGreaterThan(59_000);
    expect(worstMs).toBeLessThan(HEALTH_MS);
  }, 60_000);

  it("10 parallel 3.8 MB /tokenize requests are answered, tokenized in slices, while /health stays responsive", async () => {
    const content = "the ternary weights of a model 1.58 bits. ".repeat(90_000);
    expect(content.length).toBeGreaterThan(3_700_000);
    const expected = JSON.stringify({ tokens: tiny.engine.tokenize(content, { addSpecialTokens: false, allowSpecial: true }) });
    const body = JSON.stringify({ content });
    // Answers are read as text and compared afterwards: the client shares this event loop.
    const { largest, result } = await largestCall("tokenize", () =>
      healthWhile(() => Promise.all(Array.from({ length: 10 }, async () => (await postText("/tokenize", body)).text()))),
    );
    expect(result.worstMs).toBeLessThan(HEALTH_MS);
    expect(largest).toBeLessThan(SLICE_CHARS + 64);
    for (const answer of result.result) expect(answer === expected).toBe(true);
  }, 120_000);

  it("/detokenize of 800 000 ids gives the one-shot text, decoded in slices, while /health stays responsive", async () => {
    const tokens = Array.from({ length: 800_000 }, (_, i) => (i * 7919) % 500);
    const expected = JSON.stringify({ content: tiny.engine.detokenize(tokens) });
    const body = JSON.stringify({ tokens });
    const { largest, result } = await largestCall("detokenize", () => healthWhile(() => postText("/detokenize", body).then((r) => r.text())));
    expect(result.result === expected).toBe(true);
    expect(result.worstMs).toBeLessThan(HEALTH_MS);
    expect(largest).toBeLessThanOrEqual(16_384);
  }, 60_000);

  it("with_pieces gives each token's text, for at most MAX_PIECES tokens", async () => {
    const small = (await (await postJson(`${tiny.url}/tokenize`, { content: "a ternary weight", with_pieces: true })).json()) as {
      tokens: Array<{ id: number; piece: string }>;
    };
    expect(small.tokens.map((t) => t.piece).join("")).toBe("a ternary weight");
    const long = await postJson(`${tiny.url}/tokenize`, { content: "word ".repeat(MAX_PIECES + 10), with_pieces: true });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { param: string } }).error.param).toBe("with_pieces");
  });
});
