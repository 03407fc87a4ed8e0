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
export function buildFromStringMerges(vocab: StringTable, merges: readonly unknown[] | ScannedMerges, options: BpeOptions, path: string): BuiltModel {
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
    resolveScanned(vocab, merges as ScannedMerges, table, mergeLeft, mergeRight, addString);
  }
  return { model: new BpeModel(vocab, table, options), mergeLeft, mergeRight };
}

/**
 * The fast loop over merges scanned in place (a separate function so it optimises on its own).
 * Merges it cannot resolve go to `fallback`, which resolves them or throws the right error.
 */
function resolveScanned(
  vocab: StringTable,
  scanned: ScannedMerges,
  table: MergeTable,
  mergeLeft: Int32Array,
  mergeRight: Int32Array,
  fallback: (rank: number, text: string, start: number, end: number, merge: unknown) => void,
): void {
  const { starts, spaces, ends, hashes, source, decoded, count } = scanned;
  // Consecutive merges often build the same token (Llama-3: 152k of 280k): reuse its id.
  let previousHash = 0;
  let previousStart = -1;
  let previousSpace = -1;
  let previousEnd = -1;
  let previousResult = -1;
  for (let rank = 0; rank < count; rank++) {
    const start = starts[rank]!;
    const space = spaces[rank]!;
    if (start < 0 || space < 0) {
      if (start < 0) {
        const text = decoded.get(rank)!;
        fallback(rank, text, 0, text.length, text);
      } else fallback(rank, source, start, ends[rank]!, undefined);
      previousStart = -1;
      continue;
    }
    const end = ends[rank]!;
    const hashAB = hashes[3 * rank + 2]!;
    const left = vocab.findInText(hashes[3 * rank]!, start, space, space, space);
    const right = left < 0 ? -1 : vocab.findInText(hashes[3 * rank + 1]!, space + 1, end, end, end);
    let result = -1;
    if (right >= 0) {
      result =
        previousStart >= 0 && hashAB === previousHash && sameJoined(source, start, space, end, previousStart, previousSpace, previousEnd)
          ? previousResult
          : vocab.findInText(hashAB, start, space, space + 1, end);
    }
    if (result < 0) {
      fallback(rank, source, start, end, undefined);
      continue;
    }
    table.set(left, right, rank, result);
    mergeLeft[rank] = left;
    mergeRight[rank] = right;
    previousHash = hashAB;
    previousStart = start;
    previousSpace = space;
    previousEnd = end;
    previousResult = result;
  }
}

/** True when the two `"a b"` ranges of `text` spell the same token once their space is dropped. */
function sameJoined(text: string, s1: number, sp1: number, e1: number, s2: number, sp2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  let i = s1;
  let j = s2;
  while (i < e1 && j < e2) {
    if (i === sp1) i++;
    if (j === sp2) j++;
    if (i >= e1 || j >= e2) break;
    if (text.charCodeAt(i) !== text.charCodeAt(j)) return false;
    i++;
    j++;
  }
  return i >= e1 && j >= e2;
}

/** Merges as `[a, b, merged]` id triples (seed `.htok`); every id must be below `tokenCount`. */
export function buildFromIdMerges(vocab: VocabLookup, triples: Uint32Array, tokenCount: number, options: BpeOptions): BuiltModel {
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
