// The payloads @halo/h1b-format produces fit Tokenizer.fromPayload as they are (structural types), and .htok bytes round-trip.
import { describe, expect, it } from "vitest";
import { htokToTokenizerPayload, readHtok, synthTokenizerJson, writeHtok, type TokenizerPayload } from "@halo/h1b-format";
import { Tokenizer } from "../src/index.js";
import { parityCorpus } from "./corpus.js";

describe("interop with @halo/h1b-format", () => {
  const synth = synthTokenizerJson(512);
  const tokenizer = Tokenizer.fromJson(synth.tokenizerJson, synth.tokenizerConfigJson);

  it("accepts h1b-format's TokenizerPayload type", () => {
    const payload: TokenizerPayload = { kind: "hf-json", tokenizerJson: synth.tokenizerJson, tokenizerConfigJson: synth.tokenizerConfigJson };
    expect(Tokenizer.fromPayload(payload).encode("Hello world")).toEqual(tokenizer.encode("Hello world"));
  });

  it("toHtok → writeHtok → readHtok → fromPayload encodes identically", () => {
    const bytes = writeHtok(tokenizer.toHtok());
    const again = Tokenizer.fromPayload(htokToTokenizerPayload(readHtok(bytes)));
    for (const text of parityCorpus(500, 11)) {
      expect(again.encode(text, { allowSpecial: true })).toEqual(tokenizer.encode(text, { allowSpecial: true }));
    }
  });
});
