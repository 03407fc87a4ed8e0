import { describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { loadModel, type GenerateEvent, type RequestEndEvent } from "./index.js";

async function end(stream: AsyncIterable<GenerateEvent>): Promise<RequestEndEvent & { promptTokensRun: number }> {
  let run = 0;
  let last: RequestEndEvent | null = null;
  for await (const e of stream) {
    if (e.type === "request-start") run = e.promptTokens;
    if (e.type === "request-end") last = e;
  }
  if (last === null) throw new Error("no request-end");
  return { ...last, promptTokensRun: run };
}

describe("Session", () => {
  it("reuses the cached prefix across turns and answers exactly as a fresh run of the whole chat", async () => {
    await using engine = await loadModel(synthModel({ seed: 12 }), { backend: "reference", contextLength: 256 });
    const options = { maxTokens: 6, temperature: 0 } as const;
    const session = engine.createSession({ system: "Be brief." });
    const first = await end(session.chat("What is the capital of France?", options));
    expect(session.messages.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(session.messages[2]!.content).toBe(first.text);

    const rowsBefore = engine.stats().rows;
    const second = await end(session.chat("And of Italy?", options));
    const rowsForSecond = engine.stats().rows - rowsBefore;

    // The same conversation from scratch, without a session.
    const fresh = await end(engine.chat(session.messages.slice(0, 4), options));
    expect(second.tokenIds).toEqual(fresh.tokenIds);
    // Only the new part of the prompt ran: far fewer rows than the whole conversation.
    expect(second.promptTokensRun).toBeLessThan(fresh.usage.promptTokens);
    expect(rowsForSecond).toBeLessThan(fresh.usage.promptTokens + second.usage.completionTokens);
    expect(session.cachedTokens.length).toBeGreaterThan(0);
    session.dispose();
    session.dispose();
    expect(() => session.chat("x")).toThrow(/after dispose/);
  });

  it("refuses a second turn while one runs, resets, and frees its slot", async () => {
    await using engine = await loadModel(synthModel({ seed: 12 }), { backend: "reference", contextLength: 128, maxSequences: 1 });
    const session = engine.createSession();
    const stream = session.chat("Hello", { maxTokens: 3, temperature: 0 });
    expect(() => session.chat("again")).toThrow(/already generating/);
    await end(stream);
    session.reset();
    expect(session.cachedTokens).toEqual([]);
    expect(session.messages).toEqual([]);
    // The only slot is the session's: a plain request waits until the session is disposed.
    const plain = end(engine.generate({ prompt: [500, 1], maxTokens: 2, temperature: 0, ignoreEos: true }));
    // Let the scheduler see the queue blocked for a while (it must idle, not spin), then free the slot.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(engine.stats().queuedSequences).toBe(1);
    session.dispose();
    expect((await plain).tokenIds).toHaveLength(2);
  });
});
