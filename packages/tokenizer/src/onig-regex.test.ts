// Tests of the Oniguruma → JS pattern translation (whitespace set, case-insensitive groups, classes).
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { LLAMA3_SPLIT_PATTERN, onigToJsRegExp } from "./onig-regex.js";

const split = (pattern: string, text: string): string[] => text.match(onigToJsRegExp(pattern)) ?? [];

describe("onigToJsRegExp", () => {
  it("splits text like the Llama-3 pre-tokenizer", () => {
    expect(split(LLAMA3_SPLIT_PATTERN, "Hello world's 1234567 end!!\n\n  x")).toEqual([
      "Hello",
      " world",
      "'s",
      " ",
      "123",
      "456",
      "7",
      " end",
      "!!\n\n",
      " ",
      " x",
    ]);
  });

  it("uses Unicode White_Space for \\s: U+0085 is space, U+FEFF is not", () => {
    expect(onigToJsRegExp("\\s").test("\u0085")).toBe(true);
    expect(onigToJsRegExp("\\s").test("\ufeff")).toBe(false);
    expect(onigToJsRegExp("[^\\s]").test("\ufeff")).toBe(true);
  });

  it("expands (?i:…) with Unicode simple case folds", () => {
    expect(split("(?i:'s|'ll)", "'S 'LL 'Ll \u017f '\u017f")).toEqual(["'S", "'LL", "'Ll", "'\u017f"]);
    expect(split("(?i:k)x", "Kx \u212ax kx kX")).toEqual(["Kx", "\u212ax", "kx"]);
  });

  it("translates \\d and \\w to their Unicode meaning", () => {
    expect(split("\\d+", "ab١٢٣cd45")).toEqual(["١٢٣", "45"]);
    expect(split("\\w+", "héllo_wörld, x")).toEqual(["héllo_wörld", "x"]);
  });

  it("reports patterns JS cannot compile", () => {
    try {
      onigToJsRegExp("(?<=a+)b(");
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error) && error.code).toBe("TOKENIZER_UNSUPPORTED");
    }
  });
});
