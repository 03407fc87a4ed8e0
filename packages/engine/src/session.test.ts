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

  it("drops the oldest turns when the context is full, keeps the system prompt, and stays correct with the cached prefix", async () => {
    await using engine = await loadModel(synthModel({ seed: 12 }), { backend: "reference", contextLength: 96 });
    const options = { maxTokens: 8, temperature: 0, ignoreEos: true } as const;
    const session = engine.createSession({ system: "Be brief." });
    let dropped = 0;
    for (let turn = 1; turn <= 8; turn++) {
      const before = session.messages.slice();
      const cachedBefore = session.cachedTokens.slice();
      let start: { droppedMessages: number; contextTokens: number; promptTokens: number } | null = null;
      let result: RequestEndEvent | null = null;
      for await (const e of session.chat(`Question number ${turn}, please?`, options)) {
        if (e.type === "request-start") start = e;
        if (e.type === "request-end") result = e;
      }
      if (start === null || result === null) throw new Error("incomplete turn");
      expect(session.messages[0]).toEqual({ role: "system", content: "Be brief." });
      expect(session.messages.at(-2)).toEqual({ role: "user", content: `Question number ${turn}, please?` });
      expect(session.messages.at(-1)).toEqual({ role: "assistant", content: result.text });
      // The session forgot exactly the dropped messages: whole turns, oldest first.
      expect(session.messages.length).toBe(before.length + 2 - start.droppedMessages);
      expect(session.messages.slice(1, -2)).toEqual(before.slice(1 + start.droppedMessages));
      expect(start.contextTokens + options.maxTokens).toBeLessThanOrEqual(96);
      // Only the tokens after the longest matching cached prefix ran; after a drop that prefix ends within the system prompt.
      const fresh = await end(engine.chat(session.messages.slice(0, -1), options));
      const ids = [...engine.tokenizer!.encodeChat(session.messages.slice(0, -1))];
      let common = 0;
      while (common < cachedBefore.length && common < ids.length - 1 && cachedBefore[common] === ids[common]) common++;
      expect(start.promptTokens).toBe(ids.length - common);
      expect(start.contextTokens).toBe(ids.length);
      // Same answer as the kept conversation run from scratch: the reused KV is right.
      expect(result.tokenIds).toEqual(fresh.tokenIds);
      dropped += start.droppedMessages;
    }
    expect(dropped).toBeGreaterThan(0);
    expect(session.messages.length).toBeLessThan(1 + 2 * 8);
    session.dispose();
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

  it("dispose during a streaming turn cancels it and frees the slot only once the turn has ended; the generation waiting for the slot then runs normally", async () => {
    await using engine = await loadModel(synthModel({ seed: 12 }), { backend: "reference", contextLength: 256, maxSequences: 1 });
    const request = { prompt: [500, 7, 8, 9], maxTokens: 6, temperature: 0, ignoreEos: true } as const;
    const alone = await end(engine.generate(request));
    const session = engine.createSession();
    const turn = session.generate([500, 1, 2, 3], { maxTokens: 100, temperature: 0, ignoreEos: true });
    const iterator = turn[Symbol.asyncIterator]();
    let deltas = 0;
    while (deltas < 2) {
      const next = await iterator.next();
      if (next.done === true) throw new Error("the turn ended early");
      if (next.value.type === "token-delta") deltas++;
    }
    const waiting = end(engine.generate(request));
    await new Promise((resolve) => setImmediate(resolve));
    expect(engine.stats().queuedSequences).toBe(1);
    session.dispose();
    // The slot is still the turn's until it leaves the scheduler: nothing was admitted onto it.
    expect(engine.stats().queuedSequences).toBe(1);
    let turnEnd: RequestEndEvent | null = null;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) if (next.value.type === "request-end") turnEnd = next.value;
    expect(turnEnd?.finishReason).toBe("abort");
    expect(turnEnd!.tokenIds.length).toBeLessThan(100);
    const other = await waiting;
    expect(other.finishReason).toBe("length");
    expect(other.tokenIds).toEqual(alone.tokenIds);
    expect(engine.stats().kv.slotsInUse).toBe(0);
  });
});
