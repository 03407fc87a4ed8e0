import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTinyServer, type TinyServer } from "../test/tiny-server.js";

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
});
