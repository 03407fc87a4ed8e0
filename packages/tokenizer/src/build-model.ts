// Shared loader step: a vocabulary plus merges (as token pairs or id triples) into a BpeModel.
import { HaloError } from "@halo/errors";
import { BpeModel, type BpeOptions } from "./bpe-model.js";
import { TokenizerErrorCode } from "./errors.js";
import type { ScannedMerges } from "./hf-json-fast.js";
import { MergeTable } from "./merge-table.js";
import type { StringTable, VocabLookup } from "./string-table.js";

/** @internal */
export interface BuiltModel {
  readonly model: BpeModel;
  readonly mergeLeft: Int32Array;
  readonly mergeRight: Int32Array;
}

/**
 * Resolves merges against the vocabulary: `"a b"` strings (exactly one space, as Hugging Face
 * requires) or `[a, b]` pairs; both parts and their concatenation must be tokens. Accepts the
 * parsed `model.merges` array or the in-place scan of {@link scanTokenizerJson}.
 */
export function buildFromStringMerges(
  vocab: StringTable,
  merges: readonly unknown[] | ScannedMerges,
  options: BpeOptions,
  path: string,
): BuiltModel {
  const n = Array.isArray(merges) ? merges.length : (merges as ScannedMerges).count;
  const table = new MergeTable(n);
  const mergeLeft = new Int32Array(n);
  const mergeRight = new Int32Array(n);
  const add = (rank: number, a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): void => {
    const left = vocab.getRange(a, aStart, aEnd);
    const right = vocab.getRange(b, bStart, bEnd);
    const result = vocab.getJoined(a, aStart, aEnd, b, bStart, bEnd);
    if (left < 0 || right < 0 || result < 0) {
      const partA = a.slice(aStart, aEnd);
      const partB = b.slice(bStart, bEnd);
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, "merge names a token that is not in the vocabulary", {
        field: `${path}[${rank}]`,
        expected: "both parts and their concatenation in the vocabulary",
        actual: left < 0 ? partA : right < 0 ? partB : partA + partB,
        hint: "The tokenizer file is damaged or its merges belong to another vocabulary",
      });
    }
    table.set(left, right, rank, result);
    mergeLeft[rank] = left;
    mergeRight[rank] = right;
  };
  const addString = (rank: number, text: string, start: number, end: number, merge: unknown): void => {
    const space = text.indexOf(" ", start);
    if (space < 0 || space >= end || (text.indexOf(" ", space + 1) >= 0 && text.indexOf(" ", space + 1) < end)) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, "merge is not two tokens", {
        field: `${path}[${rank}]`,
        expected: '"left right" (one space) or ["left", "right"]',
        actual: merge ?? text.slice(start, end),
      });
    }
    add(rank, text, start, space, text, space + 1, end);
  };
  if (Array.isArray(merges)) {
    for (let rank = 0; rank < n; rank++) {
      const merge: unknown = merges[rank];
      if (typeof merge === "string") addString(rank, merge, 0, merge.length, merge);
      else if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === "string" && typeof merge[1] === "string") {
        add(rank, merge[0], 0, merge[0].length, merge[1], 0, merge[1].length);
      } else {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, "merge is not two tokens", {
          field: `${path}[${rank}]`,
          expected: '"left right" or ["left", "right"]',
          actual: merge,
        });
      }
    }
  } else {
    const scanned = merges as ScannedMerges;
    const { starts, spaces, ends, hashes, source, decoded } = scanned;
    for (let rank = 0; rank < n; rank++) {
      const start = starts[rank]!;
      if (start < 0) {
        const text = decoded.get(rank)!;
        addString(rank, text, 0, text.length, text);
        continue;
      }
      const space = spaces[rank]!;
      const end = ends[rank]!;
      const left = space < 0 ? -1 : vocab.findInText(hashes[3 * rank]!, start, space, space, space);
      const right = left < 0 ? -1 : vocab.findInText(hashes[3 * rank + 1]!, space + 1, end, end, end);
      const result = right < 0 ? -1 : vocab.findInText(hashes[3 * rank + 2]!, start, space, space + 1, end);
      // Anything unusual (no space, two spaces, a missing token) takes the general path for its error.
      const secondSpace = result < 0 ? -1 : source.indexOf(" ", space + 1);
      if (result < 0 || (secondSpace >= 0 && secondSpace < end)) addString(rank, source, start, end, undefined);
      else {
        table.set(left, right, rank, result);
        mergeLeft[rank] = left;
        mergeRight[rank] = right;
      }
    }
  }
  return { model: new BpeModel(vocab, table, options), mergeLeft, mergeRight };
}

/** Merges as `[a, b, merged]` id triples (seed `.htok`); every id must be below `tokenCount`. */
export function buildFromIdMerges(
  vocab: VocabLookup,
  triples: Uint32Array,
  tokenCount: number,
  options: BpeOptions,
): BuiltModel {
  if (triples.length % 3 !== 0) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, ".htok merges are not whole id triples", {
      field: "merges",
      expected: "a multiple of 3 ids",
      actual: triples.length,
    });
  }
  const n = triples.length / 3;
  const table = new MergeTable(n);
  const mergeLeft = new Int32Array(n);
  const mergeRight = new Int32Array(n);
  for (let rank = 0; rank < n; rank++) {
    const a = triples[rank * 3]!;
    const b = triples[rank * 3 + 1]!;
    const merged = triples[rank * 3 + 2]!;
    if (a >= tokenCount || b >= tokenCount || merged >= tokenCount) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, ".htok merge names a token id outside the vocabulary", {
        field: `merges[${rank}]`,
        expected: `ids < ${tokenCount}`,
        actual: [a, b, merged],
      });
    }
    table.set(a, b, rank, merged);
    mergeLeft[rank] = a;
    mergeRight[rank] = b;
  }
  return { model: new BpeModel(vocab, table, options), mergeLeft, mergeRight };
}
