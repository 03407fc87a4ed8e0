import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "@halo/h1b-format";
import {
  answerRoom,
  fitChatToContext,
  fitChatToContextAsync,
  type ChatMessage,
  type ContextShiftInfo,
  type GenerateEvent,
  loadModel,
  type RequestEndEvent,
  type RequestStartEvent,
} from "./index.js";

// A transparent encoder: one token per message header, one per character of content, one for the
// generation prompt. Any encoder works; this one makes the expected token counts easy to state.
const encode = (messages: readonly ChatMessage[]): number[] => [0, ...messages.flatMap((m) => [1, ...Array.from(m.content, (c) => c.charCodeAt(0))]), 2];
const tokens = (messages: readonly ChatMessage[]): number => encode(messages).length;

const system: ChatMessage = { role: "system", content: "sys" };
const turn = (n: number): ChatMessage[] => [
  { role: "user", content: `question ${n}` },
  { role: "assistant", content: `answer ${n}` },
];
const conversation: ChatMessage[] = [system, ...turn(1), ...turn(2), ...turn(3), { role: "user", content: "newest" }];

function overflowOf(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    if (isHaloError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error("expected a throw");
}

describe("answerRoom", () => {
  it("is maxTokens, at most a quarter of the context, at least 1", () => {
    expect(answerRoom(4096, 256)).toBe(256);
    expect(answerRoom(64, 512)).toBe(16);
    expect(answerRoom(64, 0)).toBe(1);
    expect(answerRoom(2, 8)).toBe(1);
  });
});

describe("fitChatToContext", () => {
  const full = tokens(conversation);

  it("leaves a conversation that fits alone", () => {
    const fit = fitChatToContext(conversation, { contextLength: full + 4, maxTokens: 4, encode });
    expect(fit.messages).toBe(conversation);
    expect(fit.droppedMessages).toBe(0);
    expect(fit.ids).toEqual(encode(conversation));
    expect(fit.promptTokensBefore).toBe(full);
  });

  it("drops the fewest whole oldest turns that leave the answer room, keeping the system prompt and newest message", () => {
    // Room for the answer: 4 tokens; the context is one token short of keeping all but the oldest turn.
    const withoutOne = tokens([system, ...turn(2), ...turn(3), { role: "user", content: "newest" }]);
    const withoutTwo = tokens([system, ...turn(3), { role: "user", content: "newest" }]);
    const contextLength = withoutOne + 4 - 1; // one token short of fitting with one turn dropped
    expect(withoutTwo + 4).toBeLessThanOrEqual(contextLength);
    const fit = fitChatToContext(conversation, { contextLength, maxTokens: 4, encode });
    expect(fit.messages).toEqual([system, ...turn(3), { role: "user", content: "newest" }]);
    expect(fit.droppedMessages).toBe(4);
    expect(fit.ids.length).toBe(withoutTwo);
    expect(fit.promptTokensBefore).toBe(full);
    // The room is counted: the same context with no room needed keeps one more turn.
    const roomless = fitChatToContext(conversation, { contextLength: withoutOne + 1, maxTokens: 0, encode });
    expect(roomless.droppedMessages).toBe(2);
  });

  it("treats a user message with every reply after it as one turn, and keeps system messages wherever they are", () => {
    const messages: ChatMessage[] = [
      { role: "assistant", content: "greeting" },
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "tool", content: "t1" },
      { role: "system", content: "mid" },
      { role: "user", content: "q2" },
    ];
    // Only the newest message fits beside the system prompt.
    const fit = fitChatToContext(messages, { contextLength: tokens([messages[4]!, messages[5]!]) + 1, maxTokens: 1, encode });
    expect(fit.messages).toEqual([messages[4], messages[5]]);
    expect(fit.droppedMessages).toBe(4);
  });

  it("runs with every older turn dropped when even that leaves less than the room, as long as one token fits", () => {
    const last: ChatMessage[] = [system, { role: "user", content: "newest" }];
    const fit = fitChatToContext(conversation, { contextLength: tokens(last) + 2, maxTokens: 100, encode });
    expect(fit.messages).toEqual(last);
    expect(fit.droppedMessages).toBe(6);
  });

  it("refuses when the system prompt and newest message alone fill the context, saying so", () => {
    const last = tokens([system, { role: "user", content: "newest" }]);
    const error = overflowOf(() => fitChatToContext(conversation, { contextLength: last, maxTokens: 8, encode }));
    expect(error.code).toBe("ENGINE_CONTEXT_OVERFLOW");
    expect(error.message).toMatch(/newest message does not fit .* even after dropping all 3 older turns.*larger contextLength/);
  });

  it('"error" never drops: runs what fits at all, refuses the rest', () => {
    const tight = fitChatToContext(conversation, { contextLength: full + 1, maxTokens: 64, policy: "error", encode });
    expect(tight.droppedMessages).toBe(0);
    const error = overflowOf(() => fitChatToContext(conversation, { contextLength: full, maxTokens: 1, policy: "error", encode }));
    expect(error.code).toBe("ENGINE_CONTEXT_OVERFLOW");
    expect(error.message).toMatch(/policy is "error".*drop-oldest/);
  });

  it("calls a custom policy only when needed, with the facts, and checks what it returns", () => {
    const calls: ContextShiftInfo[] = [];
    const lastOnly = (messages: readonly ChatMessage[], info: ContextShiftInfo): ChatMessage[] => {
      calls.push(info);
      return [messages.at(-1)!];
    };
    expect(fitChatToContext(conversation, { contextLength: full + 8, maxTokens: 8, policy: lastOnly, encode }).droppedMessages).toBe(0);
    expect(calls).toHaveLength(0);
    const fit = fitChatToContext(conversation, { contextLength: 40, maxTokens: 8, policy: lastOnly, encode });
    expect(fit.messages).toEqual([{ role: "user", content: "newest" }]);
    expect(fit.droppedMessages).toBe(conversation.length - 1);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ contextLength: 40, promptTokens: full, answerRoom: 8, maxPromptTokens: 32 });
    expect(calls[0]!.countTokens([system])).toBe(tokens([system]));

    const keepAll = (messages: readonly ChatMessage[]): readonly ChatMessage[] => messages;
    expect(overflowOf(() => fitChatToContext(conversation, { contextLength: 20, maxTokens: 8, policy: keepAll, encode })).message).toMatch(
      /contextShift function returned still do not fit/,
    );
    const broken = (() => "nope") as unknown as typeof keepAll;
    expect(overflowOf(() => fitChatToContext(conversation, { contextLength: 20, maxTokens: 8, policy: broken, encode })).code).toBe("ENGINE_BAD_OPTION");
    expect(overflowOf(() => fitChatToContext(conversation, { contextLength: 20, maxTokens: 8, policy: "shift" as "error", encode })).message).toMatch(
      /contextShift must be/,
    );
  });
});

describe("fitChatToContextAsync", () => {
  it("decides as the sync version, and treats null (known too long) as not fitting without a count", async () => {
    for (const contextLength of [30, 45, 60, 80, 200]) {
      const sync = fitChatToContext(conversation, { contextLength, maxTokens: 4, encode });
      const async = await fitChatToContextAsync(conversation, { contextLength, maxTokens: 4, encode: async (m) => encode(m) });
      expect(async).toEqual(sync);
    }
    // An encoder with a sound bound (every character is a token): 60 characters or more cannot fit a context of 60.
    const bounded = async (m: readonly ChatMessage[]): Promise<number[] | null> => (m.reduce((n, x) => n + x.content.length, 0) >= 60 ? null : encode(m));
    const fit = await fitChatToContextAsync(conversation, { contextLength: 60, maxTokens: 4, encode: bounded });
    expect(fit.promptTokensBefore).toBeNull();
    expect(fit.messages).toEqual(fitChatToContext(conversation, { contextLength: 60, maxTokens: 4, encode }).messages);
    await expect(fitChatToContextAsync(conversation, { contextLength: 60, maxTokens: 4, policy: "error", encode: bounded })).rejects.toThrow(
      /more than 60 tokens/,
    );
    await expect(
      fitChatToContextAsync(conversation, { contextLength: 60, maxTokens: 4, policy: (() => []) as unknown as "error", encode: bounded }),
    ).rejects.toThrow(/named context policy/);
  });
});

describe("oneTokenPerMessage", () => {
  // 30 000 one-character turns: the encoder counts what it is asked to render.
  const many: ChatMessage[] = [
    system,
    ...Array.from({ length: 30_000 }, (_, i) => turn(i).map((m) => ({ ...m, content: "x" }))).flat(),
    { role: "user", content: "newest" },
  ];

  it("never renders a candidate of contextLength messages or more, and decides as without it", () => {
    const rendered: number[] = [];
    const counting = (m: readonly ChatMessage[]): number[] => (rendered.push(m.length), encode(m));
    const fit = fitChatToContext(many, { contextLength: 256, maxTokens: 16, encode: counting, oneTokenPerMessage: true });
    expect(Math.max(...rendered)).toBeLessThan(256);
    expect(rendered.length).toBeLessThan(40);
    expect(fit).toEqual({ ...fitChatToContext(many, { contextLength: 256, maxTokens: 16, encode }), promptTokensBefore: null });
    expect(() => fitChatToContext(many, { contextLength: 256, maxTokens: 16, encode: counting, policy: "error", oneTokenPerMessage: true })).toThrow(
      /more than 256 tokens/,
    );
  });

  it("the async variant lets the event loop run between candidate renders", async () => {
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    let renders = 0;
    const fit = await fitChatToContextAsync(many, { contextLength: 256, maxTokens: 16, encode: async (m) => (renders++, encode(m)), oneTokenPerMessage: true });
    ticking = false;
    expect(fit.messages.length).toBeLessThan(256);
    expect(renders).toBeGreaterThan(5);
    expect(turns).toBeGreaterThanOrEqual(renders - 1);
  });
});

async function run(stream: AsyncIterable<GenerateEvent>): Promise<{ start: RequestStartEvent; end: RequestEndEvent }> {
  let start: RequestStartEvent | null = null;
  let end: RequestEndEvent | null = null;
  for await (const event of stream) {
    if (event.type === "request-start") start = event;
    if (event.type === "request-end") end = event;
  }
  if (start === null || end === null) throw new Error("incomplete stream");
  return { start, end };
}

describe("Engine.chat with a full context", () => {
  it("drops the oldest turns, says so in request-start, answers as the kept messages would, and flags an answer cut by the context", async () => {
    await using engine = await loadModel(synthModel({ seed: 12 }), { backend: "reference", contextLength: 64 });
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }];
    for (let i = 1; i <= 6; i++) messages.push({ role: "user", content: `Question number ${i}?` }, { role: "assistant", content: `Answer ${i}.` });
    messages.push({ role: "user", content: "Last one?" });
    const options = { maxTokens: 8, temperature: 0, ignoreEos: true } as const;
    const shifted = await run(engine.chat(messages, options));
    expect(shifted.start.droppedMessages).toBeGreaterThan(0);
    expect(shifted.start.droppedMessages % 2).toBe(0);
    expect(shifted.start.contextLength).toBe(64);
    expect(shifted.start.contextTokens).toBe(shifted.start.promptTokens);
    expect(shifted.start.contextTokens + 8).toBeLessThanOrEqual(64);
    expect(shifted.end.contextFull).toBe(false);
    expect(shifted.end.contextTokens).toBe(shifted.start.contextTokens + 8);
    // The answer is the one for the kept messages: system prompt, the newest turns, the last question.
    const kept = [messages[0]!, ...messages.slice(1 + shifted.start.droppedMessages)];
    const direct = await run(engine.chat(kept, options));
    expect(direct.start.droppedMessages).toBe(0);
    expect(shifted.end.tokenIds).toEqual(direct.end.tokenIds);

    // With "error" the same chat is refused, as before.
    expect(() => engine.chat(messages, { ...options, contextShift: "error" })).toThrow(/policy is "error"/);

    // An answer that runs into the end of the context ends with length + contextFull.
    const long = await run(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 500, temperature: 0, ignoreEos: true }));
    expect(long.end.finishReason).toBe("length");
    expect(long.end.contextFull).toBe(true);
    expect(long.end.contextTokens).toBe(64);
    const short = await run(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 3, temperature: 0, ignoreEos: true }));
    expect(short.end.finishReason).toBe("length");
    expect(short.end.contextFull).toBe(false);
  });
});
