// Shared loader step: a vocabulary plus merges (as token pairs or id triples) into a BpeModel.
import { HaloError } from "@halo/errors";
import { BpeModel, type BpeOptions } from "./bpe-model.js";
import { TokenizerErrorCode } from "./errors.js";
import { MergeTable } from "./merge-table.js";

/** @internal */
export interface BuiltModel {
  readonly model: BpeModel;
  readonly mergeLeft: Int32Array;
  readonly mergeRight: Int32Array;
}

/** Merges given as `"a b"` strings or `[a, b]` pairs of token strings; results must be in the vocabulary. */
export function buildFromStringMerges(
  vocab: ReadonlyMap<string, number>,
  merges: readonly unknown[],
  options: BpeOptions,
  path: string,
): BuiltModel {
  const n = merges.length;
  const table = new MergeTable(n);
  const mergeLeft = new Int32Array(n);
  const mergeRight = new Int32Array(n);
  for (let rank = 0; rank < n; rank++) {
    const merge = merges[rank];
    let a: string | undefined;
    let b: string | undefined;
    if (typeof merge === "string") {
      const space = merge.indexOf(" ", 1);
      if (space > 0) {
        a = merge.slice(0, space);
        b = merge.slice(space + 1);
      }
    } else if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === "string" && typeof merge[1] === "string") {
      a = merge[0];
      b = merge[1];
    }
    if (a === undefined || b === undefined) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, "merge is not two tokens", {
        field: `${path}[${rank}]`,
        expected: '"left right" or ["left", "right"]',
        actual: merge,
      });
    }
    const left = vocab.get(a);
    const right = vocab.get(b);
    const result = vocab.get(a + b);
    if (left === undefined || right === undefined || result === undefined) {
      const missing = left === undefined ? a : right === undefined ? b : a + b;
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_MERGE, "merge names a token that is not in the vocabulary", {
        field: `${path}[${rank}]`,
        expected: "both parts and their concatenation in the vocabulary",
        actual: missing,
        hint: "The tokenizer file is damaged or its merges belong to another vocabulary",
      });
    }
    table.set(left, right, rank, result);
    mergeLeft[rank] = left;
    mergeRight[rank] = right;
  }
  return { model: new BpeModel(vocab, table, options), mergeLeft, mergeRight };
}

/** Merges as `[a, b, merged]` id triples (seed `.htok`); every id must be below `tokenCount`. */
export function buildFromIdMerges(
  vocab: ReadonlyMap<string, number>,
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
