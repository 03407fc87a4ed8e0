// The in-place tokenizer.json scan must build exactly what JSON.parse + the general path build, or step aside.
import { describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { llama3Files } from "../test/llama3-fixture.js";
import { parityCorpus } from "../test/corpus.js";
import { scanTokenizerJson } from "./hf-json-fast.js";
import { Tokenizer } from "./tokenizer.js";

const files = llama3Files();

function sameTokenizers(text: string): void {
  const fast = Tokenizer.fromJson(text);
  const general = Tokenizer.fromJson(JSON.parse(text) as object);
  const a = fast.toHtok();
  const b = general.toHtok();
  expect(a.merges).toEqual(b.merges);
  expect(a.tokens.length).toBe(b.tokens.length);
  for (const s of parityCorpus(300, 7)) expect(fast.encode(s, { allowSpecial: true })).toEqual(general.encode(s, { allowSpecial: true }));
}

describe("scanTokenizerJson", () => {
  it("is used for the synthetic file and for pretty-printed JSON with escapes, and agrees with JSON.parse", () => {
    const synth = synthTokenizerJson(512).tokenizerJson;
    expect(scanTokenizerJson(synth)).not.toBeNull();
    sameTokenizers(synth);
    const pretty = JSON.stringify(JSON.parse(synth), null, 2);
    expect(scanTokenizerJson(pretty)).not.toBeNull();
    sameTokenizers(pretty);
    const escaped = JSON.parse(synth) as { model: { vocab: Record<string, number>; merges: unknown[] } };
    escaped.model.vocab['"\\'] = 600;
    escaped.model.vocab['"'] = 601;
    escaped.model.vocab["\\"] = 602;
    escaped.model.merges.push('" \\', ['"', "\\"]);
    const text = JSON.stringify(escaped);
    expect(text).toContain('\\"');
    expect(scanTokenizerJson(text)).not.toBeNull();
    sameTokenizers(text);
  });

  it("steps aside for layouts it does not expect", () => {
    expect(scanTokenizerJson('{"model": {"merges": [], "vocab": {}}}')).toBeNull();
    expect(scanTokenizerJson('{"model": {"vocab": {"a": 1.5}, "merges": []}}')).toBeNull();
    expect(scanTokenizerJson('{"model": {"vocab": {"a": 1}, "merges": ["a a"]')).toBeNull();
  });

  it.skipIf(files === null)("builds the Llama-3 tokenizer exactly as the general path does", () => {
    sameTokenizers(files!.tokenizerJson);
  });
});
