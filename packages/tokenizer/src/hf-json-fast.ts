// Fast path for loading a large tokenizer.json: scans model.vocab and model.merges in place, JSON.parse for the rest.
import { FNV_OFFSET, FNV_PRIME, StringTable } from "./string-table.js";

type Json = Record<string, unknown>;

/** Merges found in the text, as ranges of the text (or of decoded strings for escaped ones). @internal */
export interface ScannedMerges {
  /** Per merge: start of the quoted content, its one space (-1: none or several), the end (exclusive); -1 start for escaped. */
  readonly starts: Int32Array;
  readonly spaces: Int32Array;
  readonly ends: Int32Array;
  /** Per merge: FNV-1a hashes of the left part, the right part and both joined. */
  readonly hashes: Int32Array;
  /** Decoded text of merges whose JSON string had escapes or that used the `[a, b]` form (`a b`). */
  readonly decoded: ReadonlyMap<number, string>;
  readonly count: number;
  readonly source: string;
}

/** @internal */
export interface ScannedTokenizerJson {
  /** The document with `model.vocab` = {} and `model.merges` = []. */
  readonly json: Json;
  readonly vocab: StringTable;
  readonly modelTokens: (string | undefined)[];
  readonly merges: ScannedMerges;
}

const SPACE = 0x20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function skipWs(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

function valueAfterKey(text: string, key: string, from: number): number {
  const at = text.indexOf(key, from);
  if (at < 0) return -1;
  let i = skipWs(text, at + key.length);
  if (text.charCodeAt(i) !== 0x3a) return -1;
  i = skipWs(text, i + 1);
  return i;
}

/**
 * Scans the vocabulary and merges of a Hugging Face tokenizer.json without building them as JS
 * objects. Returns null when the text is not laid out as expected (the caller then falls back
 * to `JSON.parse`), so it never changes what is accepted.
 */
export function scanTokenizerJson(text: string): ScannedTokenizerJson | null {
  const modelAt = valueAfterKey(text, '"model"', 0);
  if (modelAt < 0 || text.charCodeAt(modelAt) !== 0x7b) return null;
  const vocabStart = valueAfterKey(text, '"vocab"', modelAt);
  if (vocabStart < 0 || text.charCodeAt(vocabStart) !== 0x7b) return null;

  const vocab = new StringTable(1 << 17, text);
  const modelTokens: (string | undefined)[] = [];
  let i = skipWs(text, vocabStart + 1);
  if (text.charCodeAt(i) === 0x7d) i++;
  else {
    for (;;) {
      if (text.charCodeAt(i) !== QUOTE) return null;
      const i0 = i + 1;
      let hash = FNV_OFFSET;
      let close = i + 1;
      let escaped = false;
      for (; close < text.length; close++) {
        const c = text.charCodeAt(close);
        if (c === QUOTE) break;
        if (c === BACKSLASH) {
          escaped = true;
          close++;
        } else hash = Math.imul(hash ^ c, FNV_PRIME);
      }
      if (close >= text.length) return null;
      let key: string;
      if (!escaped) key = text.slice(i + 1, close);
      else {
        try {
          key = JSON.parse(text.slice(i, close + 1)) as string;
        } catch {
          return null;
        }
      }
      i = skipWs(text, close + 1);
      if (text.charCodeAt(i) !== 0x3a) return null;
      i = skipWs(text, i + 1);
      let id = 0;
      let digits = 0;
      for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) {
        id = id * 10 + (c - 0x30);
        digits++;
      }
      if (digits === 0 || digits > 9) return null;
      const previous = escaped ? vocab.set(key, id) : vocab.setFromText(key, hash, i0, id);
      if (previous >= 0 && modelTokens[previous] === key) modelTokens[previous] = undefined;
      modelTokens[id] = key;
      i = skipWs(text, i);
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i = skipWs(text, i + 1);
        continue;
      }
      if (c === 0x7d) {
        i++;
        break;
      }
      return null;
    }
  }
  const vocabEnd = i;

  const mergesStart = valueAfterKey(text, '"merges"', vocabEnd);
  if (mergesStart < 0 || text.charCodeAt(mergesStart) !== 0x5b) return null;
  let capacity = 1 << 16;
  let starts = new Int32Array(capacity);
  let spaces = new Int32Array(capacity);
  let ends = new Int32Array(capacity);
  let hashes = new Int32Array(capacity * 3);
  const decoded = new Map<number, string>();
  let count = 0;
  i = skipWs(text, mergesStart + 1);
  if (text.charCodeAt(i) === 0x5d) i++;
  else {
    for (;;) {
      if (count === capacity) {
        capacity *= 2;
        const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
          const b = new Int32Array(capacity);
          b.set(a);
          return b;
        };
        starts = grow(starts);
        spaces = grow(spaces);
        ends = grow(ends);
        const more = new Int32Array(capacity * 3);
        more.set(hashes);
        hashes = more;
      }
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        let close = i + 1;
        let space = -1;
        let escaped = false;
        let twoSpaces = false;
        let hashA = FNV_OFFSET;
        let hashB = FNV_OFFSET;
        let hashAB = FNV_OFFSET;
        for (; close < text.length; close++) {
          const ch = text.charCodeAt(close);
          if (ch === QUOTE) break;
          if (ch === BACKSLASH) {
            escaped = true;
            close++;
          } else if (ch === SPACE && space < 0) {
            space = close;
            hashA = hashAB;
          } else if (ch === SPACE) {
            twoSpaces = true;
          } else {
            hashAB = Math.imul(hashAB ^ ch, FNV_PRIME);
            if (space >= 0) hashB = Math.imul(hashB ^ ch, FNV_PRIME);
          }
        }
        if (close >= text.length) return null;
        if (!escaped) {
          starts[count] = i + 1;
          ends[count] = close;
          // -1 sends a merge without exactly one space to the general path, which reports it.
          spaces[count] = twoSpaces ? -1 : space;
          hashes[3 * count] = hashA;
          hashes[3 * count + 1] = hashB;
          hashes[3 * count + 2] = hashAB;
        } else {
          try {
            decoded.set(count, JSON.parse(text.slice(i, close + 1)) as string);
          } catch {
            return null;
          }
          starts[count] = -1;
        }
        i = close + 1;
      } else if (c === 0x5b) {
        // ["a", "b"] form: decode the pair with JSON.parse (rare in files this fast path targets).
        const close = text.indexOf("]", i);
        if (close < 0) return null;
        let pair: unknown;
        try {
          pair = JSON.parse(text.slice(i, close + 1));
        } catch {
          return null;
        }
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") return null;
        if (pair[0].includes(" ") || pair[1].includes(" ")) return null;
        decoded.set(count, `${pair[0]} ${pair[1]}`);
        starts[count] = -1;
        i = close + 1;
      } else return null;
      count++;
      i = skipWs(text, i);
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i = skipWs(text, i + 1);
        continue;
      }
      if (d === 0x5d) {
        i++;
        break;
      }
      return null;
    }
  }
  const mergesEnd = i;

  let json: Json;
  try {
    json = JSON.parse(`${text.slice(0, vocabStart)}{}${text.slice(vocabEnd, mergesStart)}[]${text.slice(mergesEnd)}`) as Json;
  } catch {
    return null;
  }
  const model = json["model"] as Json | undefined;
  const vocabJson = model?.["vocab"];
  const mergesJson = model?.["merges"];
  if (typeof vocabJson !== "object" || vocabJson === null || Object.keys(vocabJson).length !== 0) return null;
  if (!Array.isArray(mergesJson) || mergesJson.length !== 0) return null;
  return { json, vocab, modelTokens, merges: { starts, spaces, ends, hashes, decoded, count, source: text } };
}
