import { once } from "node:events";
import { request as httpRequest } from "node:http";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../test/tiny-server.js";

// Load test on loopback: 32 concurrent streaming clients, bounded in count (2 rounds of 32 + 8 overflow) and time.
// The server runs in its own thread, as in production: the clients do not share its event loop.
const CLIENTS = 32;
const PARALLEL = 8;
const OVERFLOW = 8;
const MAX_TOKENS = 24;
/**
 * The first PARALLEL clients ask for this many tokens, so they still hold every slot while the other
 * clients queue and the overflow arrives: on a busy 2-core machine the server may take in only about
 * one new connection per batched step.
 */
const HOLD_TOKENS = 120;
/** The server's heapUsed after a forced GC may grow this much between two identical rounds without counting as a leak. */
const HEAP_GROWTH_TOLERANCE_BYTES = 4 * 1024 * 1024;
const PROMPTS = ["The sky is", "Ternary weights are", "Once upon a time", "In the beginning"];

let worker: Worker;
let url: string;
let reference: Map<string, string>;

async function ask<T>(type: string): Promise<T> {
  const reply = new Promise<T>((resolve) => {
    const onMessage = (message: { type: string }): void => {
      if (message.type !== type) return;
      worker.off("message", onMessage);
      resolve(message as T);
    };
    worker.on("message", onMessage);
  });
  worker.postMessage({ type });
  return reply;
}

interface Stats {
  stats: { active: number; queued: number; kvUsage: number };
  engine: { activeSequences: number; queuedSequences: number };
}

beforeAll(async () => {
  worker = new Worker(new URL("../test/load-server-worker.mjs", import.meta.url), { workerData: { parallel: PARALLEL, maxQueue: CLIENTS - PARALLEL } });
  const [ready] = (await once(worker, "message")) as [{ url: string }];
  url = ready.url;
  // What each prompt must produce: one request at a time, not streamed.
  reference = new Map();
  for (const prompt of PROMPTS) {
    const body = (await (await postJson(`${url}/v1/completions`, { prompt, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true })).json()) as {
      choices: Array<{ text: string }>;
    };
    reference.set(`${prompt}|${MAX_TOKENS}`, body.choices[0]!.text);
  }
  const hold = (await (await postJson(`${url}/v1/completions`, { prompt: PROMPTS[0], max_tokens: HOLD_TOKENS, temperature: 0, ignore_eos: true })).json()) as {
    choices: Array<{ text: string }>;
  };
  reference.set(`${PROMPTS[0]}|${HOLD_TOKENS}`, hold.choices[0]!.text);
});
afterAll(async () => {
  worker.postMessage({ type: "close" });
  await Promise.race([once(worker, "message"), new Promise((resolve) => setTimeout(resolve, 3000))]);
  await worker.terminate();
});

interface StreamResult {
  readonly key: string;
  readonly id: string;
  readonly text: string;
  readonly doneCount: number;
  readonly lastIsDone: boolean;
  readonly finish: string | null;
}

/** POSTs JSON on its own connection (node:http, no pooling) and reads the whole answer: independent clients, as on a real network. */
function post(body: unknown): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path: "/v1/completions", method: "POST", agent: false, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"], text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((record) => record.startsWith("data: "))
    .map((record) => record.slice(6));
}

async function streamOne(index: number): Promise<StreamResult> {
  const holder = index < PARALLEL;
  const prompt = holder ? PROMPTS[0]! : PROMPTS[index % PROMPTS.length]!;
  const maxTokens = holder ? HOLD_TOKENS : MAX_TOKENS;
  const response = await post({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, user: `client-${index}` });
  expect(response.status).toBe(200);
  const records = sseData(response.text);
  const chunks = records
    .filter((r) => r !== "[DONE]")
    .map((r) => JSON.parse(r) as { id: string; choices: Array<{ text: string; finish_reason: string | null }> });
  return {
    key: `${prompt}|${maxTokens}`,
    id: chunks[0]?.id ?? "",
    text: chunks.map((c) => c.choices[0]?.text ?? "").join(""),
    doneCount: records.filter((r) => r === "[DONE]").length,
    lastIsDone: records.at(-1) === "[DONE]",
    finish: chunks.at(-1)?.choices[0]?.finish_reason ?? null,
  };
}

async function waitFor(check: (stats: Stats["stats"]) => boolean, what: string): Promise<void> {
  const started = performance.now();
  for (;;) {
    const { stats } = await ask<Stats>("stats");
    if (check(stats)) return;
    if (performance.now() - started > 20_000) throw new Error(`${what} did not happen in 20 s: ${stats.active} running, ${stats.queued} queued`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function round(): Promise<{ results: StreamResult[]; overflow: Array<Awaited<ReturnType<typeof post>>>; ms: number }> {
  const started = performance.now();
  const holders = Array.from({ length: PARALLEL }, (_, i) => streamOne(i));
  await waitFor((s) => s.active === PARALLEL, "the first streams taking every slot");
  const queued = Array.from({ length: CLIENTS - PARALLEL }, (_, i) => streamOne(PARALLEL + i));
  await waitFor((s) => s.active === PARALLEL && s.queued === CLIENTS - PARALLEL, "the queue filling");
  const overflow = await Promise.all(Array.from({ length: OVERFLOW }, () => post({ prompt: "x", max_tokens: 2, stream: true })));
  const results = await Promise.all([...holders, ...queued]);
  return { results, overflow, ms: performance.now() - started };
}

describe("load", () => {
  it(`${CLIENTS} concurrent streams all end with [DONE], none lost, duplicated or mixed; overflow gets 429; server heap flat`, async () => {
    const first = await round();
    const heapAfterFirst = (await ask<{ heapUsed: number }>("heap")).heapUsed;
    const second = await round();
    const heapAfterSecond = (await ask<{ heapUsed: number }>("heap")).heapUsed;

    for (const { results, overflow } of [first, second]) {
      expect(results).toHaveLength(CLIENTS);
      expect(new Set(results.map((r) => r.id)).size).toBe(CLIENTS);
      for (const result of results) {
        expect([result.doneCount, result.lastIsDone, result.finish]).toEqual([1, true, "length"]);
        // Every stream carries exactly its own prompt's tokens: nothing lost, duplicated or crossed between streams.
        expect(result.text).toBe(reference.get(result.key));
      }
      for (const response of overflow) {
        expect(response.status).toBe(429);
        expect(Number(response.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(JSON.parse(response.text)).toMatchObject({ error: { type: "rate_limit_error", code: "queue_full" } });
      }
    }
    const after = await ask<Stats>("stats");
    expect(after.stats).toMatchObject({ active: 0, queued: 0, kvUsage: 0 });
    expect(after.engine).toMatchObject({ activeSequences: 0, queuedSequences: 0 });
    expect(heapAfterSecond - heapAfterFirst).toBeLessThan(HEAP_GROWTH_TOLERANCE_BYTES);
    console.log(
      `load: ${CLIENTS} streams (${PARALLEL} × ${HOLD_TOKENS} + ${CLIENTS - PARALLEL} × ${MAX_TOKENS} tokens), parallel ${PARALLEL}: ${first.ms.toFixed(0)} ms and ${second.ms.toFixed(0)} ms; ` +
        `server heapUsed after GC ${(heapAfterFirst / 2 ** 20).toFixed(2)} → ${(heapAfterSecond / 2 ** 20).toFixed(2)} MiB`,
    );
  }, 80_000);
});
