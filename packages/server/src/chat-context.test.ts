import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "@halo/engine";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

// A conversation longer than the server's context: real requests over a socket.

const CONTEXT = 64;
const conversation: ChatMessage[] = [{ role: "system", content: "Be brief." }];
for (let i = 1; i <= 6; i++) conversation.push({ role: "user", content: `Question number ${i}?` }, { role: "assistant", content: `Answer ${i}.` });
conversation.push({ role: "user", content: "Last one?" });

interface ChatBody {
  choices: Array<{ message: { content: string }; finish_reason: string }>;
  halo: { dropped_messages: number; context_tokens: number; context_length: number; context_full: boolean };
  error?: { message: string; code: string };
}

let tiny: TinyServer;
let strict: TinyServer;
beforeAll(async () => {
  tiny = await startTinyServer({ contextLength: CONTEXT, parallel: 1 });
  strict = await startTinyServer({ contextLength: CONTEXT, parallel: 1, contextShift: "error" });
});
afterAll(async () => {
  await tiny.close();
  await strict.close();
});

async function engineAnswer(messages: ChatMessage[], maxTokens: number): Promise<string> {
  let text = "";
  for await (const e of tiny.engine.chat(messages, { maxTokens, temperature: 0, contextShift: "error" })) if (e.type === "request-end") text = e.text;
  return text;
}

describe("/v1/chat/completions with a full context", () => {
  it("drops the oldest turns, says so in a header and the halo field, and answers as for the kept messages", async () => {
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { messages: conversation, max_tokens: 8, temperature: 0 });
    expect(response.status).toBe(200);
    const dropped = Number(response.headers.get("x-halo-context-dropped"));
    const body = (await response.json()) as ChatBody;
    expect(dropped).toBeGreaterThan(0);
    expect(dropped % 2).toBe(0);
    expect(body.halo).toMatchObject({ dropped_messages: dropped, context_length: CONTEXT });
    expect(body.halo.context_tokens).toBeLessThanOrEqual(CONTEXT);
    const kept = [conversation[0]!, ...conversation.slice(1 + dropped)];
    expect(body.choices[0]!.message.content).toBe(await engineAnswer(kept, 8));
    expect(tiny.app.stats().droppedMessages).toBeGreaterThanOrEqual(dropped);

    // A conversation that fits says 0.
    const short = await postJson(`${tiny.url}/v1/chat/completions`, { messages: kept.slice(-1), max_tokens: 4, temperature: 0 });
    expect(short.headers.get("x-halo-context-dropped")).toBe("0");
    expect(((await short.json()) as ChatBody).halo.dropped_messages).toBe(0);
  });

  it("drops turns from a conversation so long that its bytes alone show it cannot fit (no refusal before the policy)", async () => {
    const long: ChatMessage[] = [];
    for (let i = 0; i < 40; i++)
      long.push({ role: "user", content: `Question ${i}: ${"tell me more ".repeat(10)}` }, { role: "assistant", content: "Sure. ".repeat(15) });
    long.push({ role: "user", content: "Short now?" });
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { messages: long, max_tokens: 4, temperature: 0 });
    expect(response.status).toBe(200);
    expect(Number(response.headers.get("x-halo-context-dropped"))).toBe(80);
    expect(((await response.json()) as ChatBody).choices[0]!.message.content).toBe(await engineAnswer([{ role: "user", content: "Short now?" }], 4));
  });

  it("streams the same note, shows each running sequence's context in stats, and flags an answer cut by the context", async () => {
    const response = await postJson(`${tiny.url}/v1/chat/completions`, { messages: conversation, max_tokens: 500, temperature: 0, stream: true });
    expect(response.status).toBe(200);
    const dropped = Number(response.headers.get("x-halo-context-dropped"));
    expect(dropped).toBeGreaterThan(0);
    // Read the first records, then look at the stats while the sequence runs.
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    const running = tiny.app.stats().contextTokens;
    expect(running).toHaveLength(1);
    expect(running[0]).toBeGreaterThan(0);
    expect(running[0]).toBeLessThanOrEqual(CONTEXT);
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const records = await readSseRecords(new Response(text));
    expect(records.at(-1)).toBe("[DONE]");
    const last = JSON.parse(records.at(-2)!) as { choices: Array<{ finish_reason: string }>; halo: ChatBody["halo"] };
    expect(last.choices[0]!.finish_reason).toBe("length");
    expect(last.halo).toEqual({ dropped_messages: dropped, context_tokens: CONTEXT, context_length: CONTEXT, context_full: true });
    expect(tiny.app.stats().contextTokens).toEqual([]);
  });

  it('refuses with context_length_exceeded when the newest message alone cannot fit, or when the server runs with contextShift "error"', async () => {
    const huge = await postJson(`${tiny.url}/v1/chat/completions`, { messages: [{ role: "user", content: "word ".repeat(200) }], max_tokens: 4 });
    expect(huge.status).toBe(400);
    const hugeBody = (await huge.json()) as ChatBody;
    expect(hugeBody.error?.code).toBe("context_length_exceeded");
    expect(hugeBody.error?.message).toMatch(/newest message does not fit .*even after dropping every older turn/);

    const refused = await postJson(`${strict.url}/v1/chat/completions`, { messages: conversation, max_tokens: 8 });
    expect(refused.status).toBe(400);
    const refusedBody = (await refused.json()) as ChatBody;
    expect(refusedBody.error?.code).toBe("context_length_exceeded");
    expect(refusedBody.error?.message).toMatch(/--context-shift drop-oldest/);
  });

  it("rejects an unknown contextShift option", async () => {
    const { createServer } = await import("./index.js");
    expect(() => createServer({ engine: tiny.engine, contextShift: "rotate" as "error" })).toThrow(/contextShift must be/);
  });
});
