// Added and special tokens: finding them in text (leftmost-longest, as Hugging Face's AddedVocabulary does).
import { escapeRegExp } from "./onig-regex.js";

/** One added token (`added_tokens` of tokenizer.json). */
export interface AddedToken {
  readonly id: number;
  readonly content: string;
  /** Special tokens (BOS, EOS, `<|eot_id|>`) are matched in text only with `allowSpecial`. */
  readonly special: boolean;
  readonly singleWord: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
}

/** A run of plain text, or an added token found in it. */
export type Segment = { readonly text: string; readonly id?: undefined } | { readonly id: number; readonly text?: undefined };

const WHITESPACE = /\p{White_Space}/u;
const WORD = /[\p{L}\p{M}\p{Nd}\p{Pc}]/u;

/**
 * Splits text around added tokens. Among tokens starting at the same place the longest wins,
 * the leftmost start wins overall; `lstrip`/`rstrip` absorb neighbouring whitespace and
 * `single_word` tokens only match between non-word characters.
 *
 * @internal
 */
export class AddedTokenMatcher {
  private readonly regex: RegExp | null;
  private readonly byContent: ReadonlyMap<string, AddedToken>;

  constructor(tokens: readonly AddedToken[]) {
    const usable = tokens.filter((t) => t.content.length > 0);
    this.byContent = new Map(usable.map((t) => [t.content, t]));
    const sorted = [...this.byContent.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    this.regex = sorted.length === 0 ? null : new RegExp(sorted.map(escapeRegExp).join("|"), "gu");
  }

  /** True when no token can match. */
  get empty(): boolean {
    return this.regex === null;
  }

  /** Calls `emit` with each plain-text run (possibly empty ones skipped) and each token found. */
  split(text: string, emit: (segment: Segment) => void): void {
    const regex = this.regex;
    if (regex === null) {
      if (text.length > 0) emit({ text });
      return;
    }
    let last = 0;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      const token = this.byContent.get(m[0])!;
      let start = m.index;
      let end = start + m[0].length;
      if (token.singleWord) {
        const before = start > 0 ? String.fromCodePoint(text.codePointAt(start - 1)!) : "";
        const after = end < text.length ? String.fromCodePoint(text.codePointAt(end)!) : "";
        if ((before !== "" && WORD.test(before)) || (after !== "" && WORD.test(after))) {
          regex.lastIndex = start + 1;
          continue;
        }
      }
      if (token.lstrip) while (start > last && WHITESPACE.test(text[start - 1]!)) start--;
      if (token.rstrip) while (end < text.length && WHITESPACE.test(text[end]!)) end++;
      if (start > last) emit({ text: text.slice(last, start) });
      emit({ id: token.id });
      last = end;
      regex.lastIndex = end;
    }
    if (last < text.length) emit({ text: text.slice(last) });
  }
}
