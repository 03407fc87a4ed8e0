// Tests of the .htok and GGUF loaders: the seed's digit-only pre-tokenizer on a hand-computed example, bad payloads.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { BYTE_TO_CHAR } from "./byte-level.js";
import type { GgufTokenizerPayload, HtokPayload } from "./payload.js";
import { Tokenizer } from "./tokenizer.js";

const enc = new TextEncoder();
// A hand-built vocabulary: ids 0..255 are the byte tokens (id = byte), merges append ids 256...
const MERGES: Array<[string, string]> = [
  ["Ġ", "w"], // 256 "Ġw"
  ["h", "e"], // 257 "he"
  ["he", "l"], // 258 "hel"
  ["l", "o"], // 259 "lo"
  ["o", "Ġ"], // 260 "oĠ"
  ["1", "2"], // 261 "12"
  ["12", "3"], // 262 "123"
];
const BOS = 263;
const EOS = 264;

function handHtok(): HtokPayload {
  const surfaces = [...BYTE_TO_CHAR];
  const ids = new Map(surfaces.map((s, i) => [s, i]));
  const triples: number[] = [];
  for (const [a, b] of MERGES) {
    ids.set(a + b, surfaces.length);
    triples.push(ids.get(a)!, ids.get(b)!, surfaces.length);
    surfaces.push(a + b);
  }
  surfaces.push("<|begin_of_text|>", "<|end_of_text|>");
  return { kind: "htok", tokens: surfaces.map((s) => enc.encode(s)), merges: Uint32Array.from(triples), bosTokenId: BOS, eosTokenId: EOS };
}

const b = (ch: string): number => ch.charCodeAt(0); // ASCII byte token id

describe(".htok payloads", () => {
  it("seed-digits pre-tokenizer: merges span words and spaces; digit runs cut in threes (hand-computed)", () => {
    const seed = Tokenizer.fromPayload(handHtok(), { preTokenizer: "seed-digits" });
    // "go home": one chunk; g o Ġ h o m e → (o,Ġ) rank 4 merges across the space.
    expect(seed.encode("go home", { addSpecialTokens: false })).toEqual([b("g"), 260, b("h"), b("o"), b("m"), b("e")]);
    // "hello world 12345": chunks "hello world ", "123", "45".
    // hello world: (Ġ,w)→256, (h,e)→257, (he,l)→258, (l,o)→259; then (o,Ġ) cannot apply since Ġ merged with w.
    expect(seed.encode("hello world 12345")).toEqual([BOS, 258, 259, 256, b("o"), b("r"), b("l"), b("d"), idOfSpace(), 262, b("4"), b("5")]);
  });

  it("default (Llama-3) pre-tokenizer on the same vocabulary splits words first", () => {
    const llama = Tokenizer.fromPayload(handHtok());
    // "go" | " home" → g o | Ġ h o m e: no merge crosses the word boundary.
    expect(llama.encode("go home", { addSpecialTokens: false })).toEqual([b("g"), b("o"), idOfSpace(), b("h"), b("o"), b("m"), b("e")]);
    expect(llama.encode("12345", { addSpecialTokens: false })).toEqual([262, b("4"), b("5")]);
    expect(llama.decode(llama.encode("hello world 12345"))).toBe("<|begin_of_text|>hello world 12345");
    expect(llama.encode("<|end_of_text|>", { allowSpecial: true, addSpecialTokens: false })).toEqual([EOS]);
  });

  it("round-trips through toHtok", () => {
    const tokenizer = Tokenizer.fromPayload(handHtok());
    const again = tokenizer.toHtok();
    expect(again.merges).toEqual(handHtok().merges);
    expect(again.tokens.map((t) => new TextDecoder().decode(t))).toEqual(handHtok().tokens.map((t) => new TextDecoder().decode(t)));
  });

  it("rejects merges outside the vocabulary, partial triples and bad special ids", () => {
    const base = handHtok();
    const cases: HtokPayload[] = [
      { ...base, merges: Uint32Array.from([1, 2, 999]) },
      { ...base, merges: Uint32Array.from([1, 2]) },
      { ...base, bosTokenId: 5000 },
      { ...base, tokens: [...base.tokens.slice(0, 10), Uint8Array.of(0xff, 0xfe)] },
    ];
    const codes = cases.map((payload) => {
      try {
        Tokenizer.fromPayload(payload);
        return "loaded";
      } catch (error) {
        return isHaloError(error) ? error.code : "other";
      }
    });
    expect(codes).toEqual(["TOKENIZER_BAD_MERGE", "TOKENIZER_BAD_MERGE", "TOKENIZER_BAD_FIELD", "TOKENIZER_BAD_FIELD"]);
  });
});

/** Id of the byte token for a space (byte 0x20, written Ġ). */
function idOfSpace(): number {
  return 0x20;
}

describe("GGUF payloads", () => {
  const tokens = [...BYTE_TO_CHAR, "Ġw", "he", "<|begin_of_text|>", "<|eot_id|>"];
  const payload: GgufTokenizerPayload = {
    kind: "gguf",
    model: "gpt2",
    pre: "llama-bpe",
    tokens,
    merges: ["Ġ w", "h e"],
    tokenTypes: tokens.map((t) => (t.startsWith("<|") ? 3 : 1)),
    bosTokenId: 258,
    eosTokenId: 259,
    addBosToken: true,
  };

  it("loads byte-level BPE with control tokens as special tokens and BOS per add_bos_token", () => {
    const tokenizer = Tokenizer.fromPayload(payload);
    expect(tokenizer.encode("he w<|eot_id|>", { allowSpecial: true })).toEqual([258, 257, 256, 259]);
    expect(Tokenizer.fromPayload({ ...payload, addBosToken: false }).encode("he")).toEqual([257]);
    expect(tokenizer.stopTokenIds).toEqual([259]);
  });

  it("rejects unknown models and pre-tokenizers, and merges naming missing tokens", () => {
    const attempts: Array<[Partial<GgufTokenizerPayload>, string, RegExp]> = [
      [{ model: "llama" }, "TOKENIZER_UNSUPPORTED", /GGUF tokenizer model llama/],
      [{ pre: "qwen2" }, "TOKENIZER_UNSUPPORTED", /qwen2.*preTokenizer/],
      [{ merges: ["Ġ w", "x yz"] }, "TOKENIZER_BAD_MERGE", /yz/],
      [{ tokenTypes: [1, 2] }, "TOKENIZER_BAD_FIELD", /token types/],
      [{ eosTokenId: 99999 }, "TOKENIZER_BAD_FIELD", /eos_token_id/],
    ];
    for (const [change, code, message] of attempts) {
      try {
        Tokenizer.fromPayload({ ...payload, ...change });
        expect.unreachable(`${JSON.stringify(change)} loaded`);
      } catch (error) {
        expect(isHaloError(error) && error.code).toBe(code);
        expect((error as Error).message).toMatch(message);
      }
    }
    expect(Tokenizer.fromPayload({ ...payload, pre: "qwen2" }, { preTokenizer: "gpt2" }).encode("he", { addSpecialTokens: false })).toEqual([257]);
  });
});
