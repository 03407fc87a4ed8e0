// Unit and property tests of Tokenizer: Llama-3 goldens, ignore_merges, special tokens, round trips, bad input.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { isHaloError } from "@halo/errors";
import { llama3Files } from "../test/llama3-fixture.js";
import { Tokenizer } from "./tokenizer.js";
import { TokenizerErrorCode } from "./errors.js";

const files = llama3Files();
const synth = synthTokenizerJson(512);

function expectHaloError(fn: () => unknown, code: string, mentions?: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(isHaloError(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    if (mentions !== undefined) expect((error as Error).message).toMatch(mentions);
    return;
  }
  throw new Error(`expected a HaloError ${code}`);
}

/** Arbitrary JS strings, lone surrogates included. */
const anyJsString = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 60 });
/** Well-formed strings over all code points, plus words from the vocabulary's world. */
const wellFormed = fc.oneof(
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc
    .array(fc.constantFrom("Hello", " world", "<|eot_id|>", "<|begin_of_text|>", "12345", "\n\n", "  ", "'s", "日本", "👨‍👩‍👧"), { maxLength: 12 })
    .map((a) => a.join("")),
);

describe.skipIf(files === null)("Llama-3 tokenizer", () => {
  let tokenizer: Tokenizer;
  beforeAll(() => {
    tokenizer = Tokenizer.fromJson(files!.tokenizerJson, files!.tokenizerConfigJson);
  });

  it("knows its size and special ids", () => {
    expect(tokenizer.vocabSize).toBe(128256);
    expect(tokenizer.bosTokenId).toBe(128000);
    expect(tokenizer.eosTokenId).toBe(128001);
    expect(tokenizer.stopTokenIds).toEqual([128001, 128009]);
    expect(tokenizer.tokenToId("<|eot_id|>")).toBe(128009);
    expect(tokenizer.tokenToId("Ġworld")).toBe(1917);
    expect(tokenizer.idToToken(1917)).toBe("Ġworld");
    expect(tokenizer.idToToken(128256)).toBeNull();
    expect(tokenizer.isSpecialToken(128009)).toBe(true);
    expect(tokenizer.isSpecialToken(1917)).toBe(false);
  });

  it("encodes known strings (this file's post-processor adds no BOS)", () => {
    expect(tokenizer.encode("Hello world")).toEqual([9906, 1917]);
    expect(tokenizer.encode("12345678")).toEqual([4513, 10961, 2495]);
    expect(Tokenizer.fromJson(files!.tokenizerJson, null, { addBosToken: true }).encode("Hello world")).toEqual([128000, 9906, 1917]);
  });

  it("ignore_merges: a pre-token found whole in the vocabulary is one id", () => {
    expect(tokenizer.encode(" jeho")).toEqual([101503]);
    const json = JSON.parse(files!.tokenizerJson) as { model: { ignore_merges: boolean } };
    json.model.ignore_merges = false;
    expect(Tokenizer.fromJson(json).encode(" jeho")).toEqual([503, 2701, 78]);
  });

  it("recognises special tokens only with allowSpecial", () => {
    expect(tokenizer.encode("a<|eot_id|>b", { allowSpecial: true })).toEqual([64, 128009, 65]);
    const plain = tokenizer.encode("a<|eot_id|>b");
    expect(plain).not.toContain(128009);
    expect(tokenizer.decode(plain)).toBe("a<|eot_id|>b");
  });

  it("decodes with and without special tokens; rejects ids outside the vocabulary", () => {
    expect(tokenizer.decode([128000, 9906, 1917, 128009])).toBe("<|begin_of_text|>Hello world<|eot_id|>");
    expect(tokenizer.decode([128000, 9906, 1917, 128009], { skipSpecialTokens: true })).toBe("Hello world");
    for (const bad of [-1, 128256, 1.5, 1e9, Number.NaN])
      expectHaloError(() => tokenizer.decode([9906, bad]), TokenizerErrorCode.TOKENIZER_BAD_TOKEN_ID, /token id/);
  });

  it("property: decode(encode(s)) === s for well-formed strings, with and without allowSpecial", () => {
    fc.assert(
      fc.property(wellFormed, fc.boolean(), (s, allowSpecial) => tokenizer.decode(tokenizer.encode(s, { allowSpecial })) === s),
      { numRuns: 2000 },
    );
  });

  it("property: any JS string encodes without throwing and round-trips to its well-formed form", () => {
    fc.assert(
      fc.property(anyJsString, (s) => {
        const wellFormedForm = (s as unknown as { toWellFormed(): string }).toWellFormed();
        return tokenizer.decode(tokenizer.encode(s)) === wellFormedForm;
      }),
      { numRuns: 2000 },
    );
  });
});

describe("synthetic tokenizer", () => {
  const tokenizer = Tokenizer.fromJson(synth.tokenizerJson, synth.tokenizerConfigJson);

  it("prepends BOS from TemplateProcessing and follows addSpecialTokens", () => {
    const ids = tokenizer.encode("The quick brown fox");
    expect(ids[0]).toBe(tokenizer.bosTokenId);
    expect(tokenizer.encode("The quick brown fox", { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(Tokenizer.fromJson(synth.tokenizerJson, null, { addBosToken: false }).encode("x")).not.toContain(tokenizer.bosTokenId);
  });

  it("property: decode(encode(s)) === s", () => {
    fc.assert(
      fc.property(wellFormed, (s) => tokenizer.decode(tokenizer.encode(s, { addSpecialTokens: false })) === s),
      { numRuns: 1000 },
    );
  });
});

describe("bad tokenizer files", () => {
  const json = (): Record<string, any> => JSON.parse(synth.tokenizerJson) as Record<string, any>;

  it("rejects invalid and truncated JSON", () => {
    expectHaloError(() => Tokenizer.fromJson("not json"), TokenizerErrorCode.TOKENIZER_BAD_JSON, /tokenizer\.json is not valid JSON/);
    expectHaloError(() => Tokenizer.fromJson(synth.tokenizerJson.slice(0, 5000)), TokenizerErrorCode.TOKENIZER_BAD_JSON, /truncated/);
    expectHaloError(() => Tokenizer.fromJson("[1,2]"), TokenizerErrorCode.TOKENIZER_BAD_JSON, /not a JSON object/);
    expectHaloError(() => Tokenizer.fromJson(synth.tokenizerJson, "{bad"), TokenizerErrorCode.TOKENIZER_BAD_JSON, /tokenizer_config\.json/);
  });

  it("rejects unknown model, pre-tokenizer, decoder and post-processor types", () => {
    const wordPiece = json();
    wordPiece["model"]["type"] = "WordPiece";
    expectHaloError(() => Tokenizer.fromJson(wordPiece), TokenizerErrorCode.TOKENIZER_UNSUPPORTED, /WordPiece/);
    const noModel = json();
    delete noModel["model"];
    expectHaloError(() => Tokenizer.fromJson(noModel), TokenizerErrorCode.TOKENIZER_BAD_FIELD, /no model/);
    const pre = json();
    pre["pre_tokenizer"] = { type: "Metaspace" };
    expectHaloError(() => Tokenizer.fromJson(pre), TokenizerErrorCode.TOKENIZER_UNSUPPORTED, /Metaspace/);
    const decoder = json();
    decoder["decoder"] = { type: "WordPiece" };
    expectHaloError(() => Tokenizer.fromJson(decoder), TokenizerErrorCode.TOKENIZER_UNSUPPORTED, /decoder/);
    const post = json();
    post["post_processor"] = { type: "Mystery" };
    expectHaloError(() => Tokenizer.fromJson(post), TokenizerErrorCode.TOKENIZER_UNSUPPORTED, /Mystery/);
  });

  it("rejects merges that name missing tokens or are not two tokens", () => {
    const missing = json();
    missing["model"]["merges"].push("Ġzzqq Ġqqzz");
    expectHaloError(() => Tokenizer.fromJson(missing), TokenizerErrorCode.TOKENIZER_BAD_MERGE, /Ġzzqq/);
    const single = json();
    single["model"]["merges"][3] = "nospace";
    expectHaloError(() => Tokenizer.fromJson(single), TokenizerErrorCode.TOKENIZER_BAD_MERGE, /model\.merges\[3\]/);
  });

  it("rejects malformed vocabularies and added tokens", () => {
    const vocab = json();
    vocab["model"]["vocab"]["a"] = "zero";
    expectHaloError(() => Tokenizer.fromJson(vocab), TokenizerErrorCode.TOKENIZER_BAD_FIELD, /vocab/);
    const added = json();
    added["added_tokens"] = [{ id: "x" }];
    expectHaloError(() => Tokenizer.fromJson(added), TokenizerErrorCode.TOKENIZER_BAD_FIELD, /added_tokens\[0\]/);
    const regex = json();
    regex["pre_tokenizer"]["pretokenizers"][0]["pattern"] = { Regex: "(unclosed" };
    expectHaloError(() => Tokenizer.fromJson(regex), TokenizerErrorCode.TOKENIZER_UNSUPPORTED, /regex/);
  });

  it("rejects unknown payload kinds and non-string input to encode", () => {
    expectHaloError(() => Tokenizer.fromPayload({ kind: "sentencepiece" } as never), TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, /payload kind/);
    const tokenizer = Tokenizer.fromJson(synth.tokenizerJson);
    expectHaloError(() => tokenizer.encode(42 as never), TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, /string/);
  });

  it("fuzz: mutated tokenizer.json either loads or throws a HaloError", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: synth.tokenizerJson.length - 1 }),
        fc.integer({ min: 1, max: 40 }),
        fc.string({ maxLength: 3 }),
        (at, cut, insert) => {
          const mutated = synth.tokenizerJson.slice(0, at) + insert + synth.tokenizerJson.slice(at + cut);
          try {
            Tokenizer.fromJson(mutated).encode("Hello world 123");
          } catch (error) {
            return isHaloError(error);
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
