// Tests of the BPE merge loop: lowest rank first, leftmost on ties, long pieces, the pre-token cache.
import { describe, expect, it } from "vitest";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { BpeModel } from "./bpe-model.js";
import { MergeTable } from "./merge-table.js";

function model(merges: Array<[string, string]>, ignoreMerges = false): BpeModel {
  const vocab = new Map(BYTE_TO_CHAR.map((c, i) => [c, i]));
  const table = new MergeTable(merges.length);
  merges.forEach(([a, b], rank) => {
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    table.set(vocab.get(a)!, vocab.get(b)!, rank, vocab.get(a + b)!);
  });
  return new BpeModel(vocab, table, { ignoreMerges, byteLevel: true, unkId: null, byteFallback: false });
}

const tokens = (m: BpeModel, text: string): string[] => {
  const inverse = new Map([...(m.vocab as Map<string, number>)].map(([k, v]) => [v, k]));
  return m.tokenize(text).map((id) => inverse.get(id)!);
};

describe("BpeModel", () => {
  it("applies the lowest-ranked pair first", () => {
    expect(
      tokens(
        model([
          ["b", "c"],
          ["a", "b"],
        ]),
        "abc",
      ),
    ).toEqual(["a", "bc"]);
    expect(
      tokens(
        model([
          ["a", "b"],
          ["b", "c"],
        ]),
        "abc",
      ),
    ).toEqual(["ab", "c"]);
  });

  it("takes the leftmost occurrence on ties and re-pairs merged symbols", () => {
    expect(tokens(model([["a", "a"]]), "aaaaa")).toEqual(["aa", "aa", "a"]);
    expect(
      tokens(
        model([
          ["a", "a"],
          ["aa", "aa"],
        ]),
        "aaaaaaa",
      ),
    ).toEqual(["aaaa", "aa", "a"]);
  });

  it("handles pieces far longer than its scratch buffers", () => {
    const long = "ab".repeat(20_000);
    const out = tokens(
      model([
        ["a", "b"],
        ["ab", "ab"],
      ]),
      long,
    );
    expect(out).toHaveLength(10_000);
    expect(out.every((t) => t === "abab")).toBe(true);
  });

  it("ignore_merges returns a whole-piece vocabulary hit without merging", () => {
    const m = model(
      [
        ["b", "c"],
        ["a", "bc"],
        ["x", "y"],
      ],
      true,
    );
    expect(tokens(m, "abc")).toEqual(["abc"]);
    expect(
      tokens(
        model(
          [
            ["b", "c"],
            ["a", "bc"],
          ],
          false,
        ),
        "abc",
      ),
    ).toEqual(["abc"]);
  });

  it("encodePiece caches without changing results", () => {
    const m = model([
      ["h", "e"],
      ["l", "l"],
    ]);
    const first: number[] = [];
    const second: number[] = [];
    m.encodePiece("hello", first);
    m.encodePiece("hello", second);
    expect(second).toEqual(first);
    expect(first).toEqual(m.tokenize("hello"));
  });
});

describe("MergeTable", () => {
  it("stores ranks and results, later inserts of a pair overwriting earlier ones", () => {
    const table = new MergeTable(4);
    table.set(1, 2, 0, 10);
    table.set(3, 4, 1, 11);
    table.set(1, 2, 2, 12);
    expect(table.get(1, 2)).toBe(2);
    expect(table.merged[2]).toBe(12);
    expect(table.get(2, 1)).toBe(-1);
    expect(table.size).toBe(2);
  });
});
