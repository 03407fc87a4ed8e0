import { describe, expect, it } from "vitest";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

const long = { prompt: "Go", temperature: 0, ignore_eos: true, stream: true };

/** Reads SSE `data:` records from a fetch answer as they arrive, with their arrival times. */
async function* sseRecords(response: Response): AsyncGenerator<{ data: string; at: number }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const record = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (record.startsWith("data: ")) yield { data: record.slice(6), at: performance.now() };
    }
  }
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function withServer(options: Parameters<typeof startTinyServer>[0], body: (tiny: TinyServer) => Promise<void>): Promise<void> {
  const tiny = await startTinyServer(options);
  try {
    await body(tiny);
  } finally {
    await tiny.close();
  }
}

describe("streaming and scheduling", () => {
  it("tokens reach the client as they are generated, not at the end", () =>
    withServer({}, async (tiny) => {
      const started = performance.now();
      const times: number[] = [];
      for await (const record of sseRecords(await postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 80 }))) times.push(record.at - started);
      expect(times.length).toBeGreaterThan(40);
      const total = times.at(-1)!;
      // The first content chunk arrives within the first third of the stream's life.
      expect(times[0]!).toBeLessThan(total / 3);
    }));

  it("a request that arrives mid-generation joins between steps (continuous batching)", () =>
    withServer({ parallel: 2 }, async (tiny) => {
      const first = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 120 });
      const firstRecords: number[] = [];
      const firstDone = (async () => {
        for await (const record of sseRecords(await first)) firstRecords.push(record.at);
        return performance.now();
      })();
      await until(() => firstRecords.length > 10);
      let secondFirstToken = 0;
      for await (const record of sseRecords(await postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 5 }))) {
        if (secondFirstToken === 0) secondFirstToken = record.at;
      }
      const firstEnded = await firstDone;
      expect(secondFirstToken).toBeGreaterThan(0);
      expect(secondFirstToken).toBeLessThan(firstEnded);
    }));
});

describe("disconnects, queue, timeouts", () => {
  it("a client that disconnects mid-stream frees its sequence at the next step", () =>
    withServer({}, async (tiny) => {
      const controller = new AbortController();
      const response = await fetch(`${tiny.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...long, max_tokens: 200 }),
        signal: controller.signal,
      });
      let seen = 0;
      const reading = (async () => {
        try {
          for await (const _ of sseRecords(response)) {
            if (++seen === 4) controller.abort();
            if (controller.signal.aborted) break;
          }
        } catch {
          // aborted
        }
      })();
      await until(() => controller.signal.aborted);
      await reading;
      await until(() => tiny.app.stats().active === 0 && tiny.engine.stats().activeSequences === 0, 2000);
      await until(() => tiny.logs.some((l) => l["msg"] === "request" && l["status"] === 499));
      const entry = tiny.logs.find((l) => l["msg"] === "request" && l["status"] === 499)!;
      expect(entry["finishReason"]).toBe("abort:client");
      expect(entry["completionTokens"] as number).toBeLessThan(100);
    }));

  it("a queued request whose client leaves is dropped from the queue; the bounded queue answers 429 with Retry-After", () =>
    withServer({ parallel: 1, maxQueue: 1 }, async (tiny) => {
      const running = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 150 });
      await until(() => tiny.app.stats().active === 1);
      const leaver = new AbortController();
      const queued = fetch(`${tiny.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...long, max_tokens: 5 }),
        signal: leaver.signal,
      }).catch((error: unknown) => error);
      await until(() => tiny.app.stats().queued === 1);
      const rejected = await postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 5 });
      expect(rejected.status).toBe(429);
      expect(Number(rejected.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(((await rejected.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: "rate_limit_error", code: "queue_full" });
      leaver.abort();
      await queued;
      await until(() => tiny.app.stats().queued === 0, 1000);
      expect(tiny.app.stats().active).toBe(1);
      const records = await readSseRecords(await running);
      expect(records.at(-1)).toBe("[DONE]");
    }));

  it("the per-request timeout cancels a stream (error record, then [DONE]) and a JSON request (504)", () =>
    withServer({ requestTimeoutMs: 300, parallel: 1 }, async (tiny) => {
      const started = performance.now();
      const records = await readSseRecords(await postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 250 }));
      expect(performance.now() - started).toBeLessThan(1500);
      expect(records.at(-1)).toBe("[DONE]");
      expect(JSON.parse(records.at(-2)!)).toMatchObject({ error: { type: "timeout_error", code: "request_timeout" } });
      const plain = await postJson(`${tiny.url}/v1/completions`, { prompt: "Go", max_tokens: 250, ignore_eos: true });
      expect(plain.status).toBe(504);
      expect(((await plain.json()) as { error: { code: string } }).error.code).toBe("request_timeout");
      await until(() => tiny.engine.stats().activeSequences === 0, 1000);
    }));
});

describe("graceful shutdown", () => {
  it("lets running streams finish, fails queued requests with 503 and refuses new connections", async () => {
    const tiny = await startTinyServer({ parallel: 1 });
    const running = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 40 });
    await until(() => tiny.app.stats().active === 1);
    const queued = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 5 });
    await until(() => tiny.app.stats().queued === 1);
    const closing = tiny.app.close({ graceMs: 20_000 });
    const queuedAnswer = await queued;
    expect(queuedAnswer.status).toBe(503);
    expect(((await queuedAnswer.json()) as { error: { code: string } }).error.code).toBe("shutting_down");
    const records = await readSseRecords(await running);
    expect(records.at(-1)).toBe("[DONE]");
    expect(JSON.parse(records.at(-2)!).choices[0].finish_reason).toBe("length");
    await closing;
    await expect(fetch(`${tiny.url}/health`)).rejects.toThrow();
    tiny.engine.dispose();
  });

  it("cancels streams still running when the grace period ends", async () => {
    const tiny = await startTinyServer({ parallel: 2 });
    const running = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 250 });
    await until(() => tiny.app.stats().active === 1);
    const started = performance.now();
    const records = readSseRecords(await running);
    await tiny.app.close({ graceMs: 100 });
    expect(performance.now() - started).toBeLessThan(1500);
    const list = await records;
    expect(list.at(-1)).toBe("[DONE]");
    expect(JSON.parse(list.at(-2)!)).toMatchObject({ error: { code: "shutting_down" } });
    expect(tiny.engine.stats().activeSequences).toBe(0);
    tiny.engine.dispose();
  });
});
