// Tests of the streaming decoder: split UTF-8 characters are held, stop strings are found across tokens.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { isHaloError } from "@halo/errors";
import { StreamDecoder } from "./stream-decoder.js";
import { Tokenizer } from "./tokenizer.js";

const synth = synthTokenizerJson(512);
const tokenizer = Tokenizer.fromJson(synth.tokenizerJson, synth.tokenizerConfigJson);

/** A decoder over raw byte chunks: id n is chunks[n]. */
function byteStream(chunks: readonly Uint8Array[], stopStrings: readonly string[] = []): StreamDecoder {
  return new StreamDecoder((id) => chunks[id]!, { stopStrings });
}

describe("StreamDecoder", () => {
  it("holds a character split across tokens until it is complete", () => {
    const emoji = new TextEncoder().encode("😀"); // 4 bytes, one token each
    const stream = byteStream([emoji.subarray(0, 1), emoji.subarray(1, 2), emoji.subarray(2, 3), emoji.subarray(3, 4)]);
    expect(stream.push(0)).toBe("");
    expect(stream.push(1)).toBe("");
    expect(stream.push(2)).toBe("");
    expect(stream.push(3)).toBe("😀");
    expect(stream.flush()).toBe("");
  });

  it("turns bytes that can never complete into U+FFFD at once, and a dangling start at flush", () => {
    const stream = byteStream([Uint8Array.of(0x80), Uint8Array.of(0x61), Uint8Array.of(0xe2, 0x82)]);
    expect(stream.push([0, 1])).toBe("\ufffda");
    expect(stream.push(2)).toBe("");
    expect(stream.flush()).toBe("\ufffd");
  });

  it("finds a stop string spread over several tokens and returns only the text before it", () => {
    const ids = tokenizer.encode("The answer is 42.\nUser: next", { addSpecialTokens: false });
    const stream = tokenizer.createStreamDecoder({ stopStrings: ["\nUser:"] });
    let out = "";
    for (const id of ids) {
      out += stream.push(id);
      if (stream.stopped) break;
    }
    expect(out).toBe("The answer is 42.");
    expect(stream.stopped).toBe(true);
    expect(stream.stopString).toBe("\nUser:");
    expect(stream.push(ids[0]!)).toBe("");
  });

  it("holds back text that may start a stop string, and releases it when it does not", () => {
    const chunks = ["Hello <", "/ans", "wer", "x"].map((s) => new TextEncoder().encode(s));
    const stream = byteStream(chunks, ["</answer>"]);
    expect(stream.push(0)).toBe("Hello ");
    expect(stream.push(1)).toBe("");
    expect(stream.push(2)).toBe("");
    expect(stream.push(3)).toBe("</answerx");
    expect(stream.stopped).toBe(false);
    expect(stream.text).toBe("Hello </answerx");
  });

  it("emits held stop-string prefixes at flush, and the earliest of several stop strings wins", () => {
    const stream = byteStream([new TextEncoder().encode("abc END"), new TextEncoder().encode("ab STOP x END")], ["STOP", "END"]);
    expect(stream.push(0)).toBe("abc ");
    expect(stream.stopped).toBe(true);
    const second = byteStream([new TextEncoder().encode("text ST")], ["STOP"]);
    expect(second.push(0)).toBe("text ");
    expect(second.flush()).toBe("ST");
  });

  it("skips special tokens when asked", () => {
    const ids = tokenizer.encode("<|eot_id|>hi", { allowSpecial: true });
    expect(tokenizer.createStreamDecoder().push(ids)).toBe("<|begin_of_text|><|eot_id|>hi");
    expect(tokenizer.createStreamDecoder({ skipSpecialTokens: true }).push(ids)).toBe("hi");
  });

  it("rejects empty stop strings", () => {
    try {
      tokenizer.createStreamDecoder({ stopStrings: [""] });
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error)).toBe(true);
    }
  });

  it("property: pushing ids one by one emits exactly decode(ids), and never a broken character", () => {
    fc.assert(
      // U+FFFD in a piece means a broken character, unless the text itself contains U+FFFD (a
      // legitimate character, checked separately below): leave those texts out of this property.
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\ufffd")),
        (text) => {
          const ids = tokenizer.encode(text, { addSpecialTokens: false });
          const stream = tokenizer.createStreamDecoder();
          let out = "";
          for (const id of ids) {
            const piece = stream.push(id);
            if (piece.includes("\ufffd")) return false;
            out += piece;
          }
          out += stream.flush();
          return out === text && out === tokenizer.decode(ids);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("streams a literal U+FFFD in the text unchanged", () => {
    const text = "a\ufffdb \ufffd";
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const stream = tokenizer.createStreamDecoder();
    let out = "";
    for (const id of ids) out += stream.push(id);
    expect(out + stream.flush()).toBe(text);
  });

  it("property: with a stop string, the emitted text is the decoded text up to its first occurrence", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii", maxLength: 40 }), fc.constantFrom("ab", "a", " the", "\n\n", "xyz!"), (text, stop) => {
        const ids = tokenizer.encode(text, { addSpecialTokens: false });
        const stream = tokenizer.createStreamDecoder({ stopStrings: [stop] });
        let out = "";
        for (const id of ids) out += stream.push(id);
        out += stream.flush();
        const full = tokenizer.decode(ids);
        const at = full.indexOf(stop);
        return out === (at < 0 ? full : full.slice(0, at)) && stream.stopped === at >= 0;
      }),
      { numRuns: 1000 },
    );
  });
});
