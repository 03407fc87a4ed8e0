import { describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import type { Tokenizer } from "@halo/tokenizer";
import type { GenerateEvent, RequestEndEvent } from "./events.js";
import { loadModel } from "./index.js";
import { TokenEmitter, type TokenEmitterOptions } from "./token-emitter.js";

const BASE: TokenEmitterOptions = {
  tokenizer: null,
  stopStrings: [],
  stopTokenIds: new Set([2]),
  maxTokens: 5,
  contextLength: 32,
  promptTokens: 4,
  cachedTokens: 0,
  droppedMessages: 0,
};

async function drain(emitter: TokenEmitter): Promise<{ events: GenerateEvent[]; end: RequestEndEvent }> {
  const events: GenerateEvent[] = [];
  for await (const e of emitter.events) events.push(e);
  const end = events.at(-1);
  if (end?.type !== "request-end") throw new Error("no request-end");
  return { events, end };
}

/** Feeds tokens at positions following the prompt until the emitter says stop; returns how many it took. */
function feed(emitter: TokenEmitter, tokens: readonly number[], firstPosition: number): number {
  emitter.stepStarted();
  emitter.outputsArrived();
  for (let i = 0; i < tokens.length; i++) if (!emitter.accept({ token: tokens[i]! }, firstPosition + i)) return i + 1;
  return tokens.length;
}

describe("TokenEmitter", () => {
  it("ends at a stop id: the id is in tokenIds and usage, not in the text or the deltas", async () => {
    const emitter = new TokenEmitter(BASE);
    emitter.start();
    expect(feed(emitter, [7, 8, 2, 9], 3)).toBe(3);
    emitter.end(null, false);
    const { events, end } = await drain(emitter);
    expect(events[0]).toEqual({ type: "request-start", promptTokens: 4, contextTokens: 4, contextLength: 32, droppedMessages: 0 });
    expect(events.filter((e) => e.type === "token-delta").map((e) => e.tokenId)).toEqual([7, 8]);
    expect(end).toMatchObject({
      finishReason: "stop",
      contextFull: false,
      tokenIds: [7, 8, 2],
      contextTokens: 7,
      usage: { promptTokens: 4, completionTokens: 3, totalTokens: 7 },
    });
  });

  it("ends at maxTokens with length, and at a full context with length and contextFull", async () => {
    const byMax = new TokenEmitter({ ...BASE, cachedTokens: 10 });
    expect(feed(byMax, [5, 5, 5, 5, 5, 5, 5], 13)).toBe(5);
    byMax.end(null, false);
    expect((await drain(byMax)).end).toMatchObject({ finishReason: "length", contextFull: false, contextTokens: 10 + 4 + 5 });
    // Prompt of 4 at positions 26..29 of a 32-position context: the token from row 30 would run at 31, the last position.
    const byContext = new TokenEmitter({ ...BASE, cachedTokens: 26, maxTokens: 100 });
    expect(feed(byContext, [5, 5, 5, 5], 29)).toBe(2);
    byContext.end(null, false);
    expect((await drain(byContext)).end).toMatchObject({ finishReason: "length", contextFull: true, tokenIds: [5, 5] });
  });

  it("reports abort, passes errors to the iteration, and says when no token may be generated", async () => {
    const aborted = new TokenEmitter(BASE);
    feed(aborted, [7], 3);
    aborted.end(null, true);
    expect((await drain(aborted)).end).toMatchObject({ finishReason: "abort", tokenIds: [7] });
    const failed = new TokenEmitter(BASE);
    failed.end(new Error("step failed"), false);
    await expect(drain(failed)).rejects.toThrow("step failed");
    expect(new TokenEmitter({ ...BASE, maxTokens: 0 }).wantsTokens).toBe(false);
    expect(new TokenEmitter(BASE).wantsTokens).toBe(true);
  });

  it("detokenizes incrementally and cuts the text before a stop string", async () => {
    await using engine = await loadModel(synthModel({ seed: 9 }), { backend: "reference", contextLength: 64 });
    const tokenizer = engine.tokenizer as Tokenizer;
    const ids = tokenizer.encode("one two three four", { addSpecialTokens: false });
    const whole = new TokenEmitter({ ...BASE, tokenizer, maxTokens: 100 });
    feed(whole, ids, 3);
    whole.end(null, false);
    const all = await drain(whole);
    expect(all.end.text).toBe("one two three four");
    expect(
      all.events
        .filter((e) => e.type === "token-delta")
        .map((e) => e.text)
        .join(""),
    ).toBe(all.end.text);
    const cut = new TokenEmitter({ ...BASE, tokenizer, maxTokens: 100, stopStrings: [" three"] });
    feed(cut, ids, 3);
    cut.end(null, false);
    const stopped = await drain(cut);
    expect(stopped.end).toMatchObject({ finishReason: "stop", text: "one two", stopString: " three" });
    expect(
      stopped.events
        .filter((e) => e.type === "token-delta")
        .map((e) => e.text)
        .join(""),
    ).toBe("one two");
  });
});
