// Translates the Oniguruma patterns of tokenizer.json (what Hugging Face tokenizers runs) into equivalent JS RegExps.
import { HaloError } from "@halo/errors";
import { TokenizerErrorCode } from "./errors.js";

/**
 * The Llama-3 pre-tokenizer split pattern, as its tokenizer.json writes it (Oniguruma syntax).
 *
 * @example
 * ```ts
 * "Hello world 12345".match(onigToJsRegExp(LLAMA3_SPLIT_PATTERN)); // ["Hello", " world", " ", "123", "45"]
 * ```
 */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * The GPT-2 pattern used by the ByteLevel pre-tokenizer when `use_regex` is true.
 *
 * @example
 * ```ts
 * "Hello 12345".match(onigToJsRegExp(GPT2_SPLIT_PATTERN)); // ["Hello", " 12345"]
 * ```
 */
export const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Oniguruma's Unicode case folding adds these to ASCII letters (simple folds only).
const EXTRA_FOLDS: Readonly<Record<string, string>> = { s: "\u017f", k: "\u212a" };

function foldClass(ch: string): string {
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  if (lower === upper) return ch;
  return `[${lower}${upper}${EXTRA_FOLDS[lower] ?? ""}]`;
}

/**
 * Rewrites an Oniguruma pattern into JS `u`-mode syntax with the same meaning:
 * `\s`/`\S` become `\p{White_Space}`/`\P{White_Space}` (JS `\s` also matches U+FEFF and misses
 * U+0085), `\d` becomes `\p{Nd}`, `\w` the Unicode word class, and `(?i:…)` groups (not in
 * Node 20's RegExp) have their letters expanded to case classes.
 *
 * @example
 * ```ts
 * const re = onigToJsRegExp(LLAMA3_SPLIT_PATTERN); // /…/gu
 * "Hello world".match(re); // ["Hello", " world"]
 * ```
 */
export function onigToJsRegExp(pattern: string): RegExp {
  let out = "";
  let inClass = false;
  const caseStack: boolean[] = [];
  let ignoreCase = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) throw badPattern(pattern, "a trailing backslash");
      i++;
      if (next === "s") out += "\\p{White_Space}";
      else if (next === "S") out += inClass ? "\\P{White_Space}" : "\\P{White_Space}";
      else if (next === "d") out += "\\p{Nd}";
      else if (next === "D") out += "\\P{Nd}";
      else if (next === "w") out += inClass ? "\\p{L}\\p{M}\\p{Nd}\\p{Pc}" : "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]";
      else if (next === "p" || next === "P") {
        const close = pattern.indexOf("}", i);
        if (pattern[i + 1] !== "{" || close < 0) throw badPattern(pattern, "a \\p without {…}");
        out += pattern.slice(i - 1, close + 1);
        i = close;
      } else out += `\\${next}`;
      continue;
    }
    if (inClass) {
      if (ch === "]") inClass = false;
      out += ch;
      continue;
    }
    if (ch === "[") {
      inClass = true;
      out += ch;
      if (pattern[i + 1] === "^") {
        out += "^";
        i++;
      }
      if (pattern[i + 1] === "]") {
        out += "\\]";
        i++;
      }
      continue;
    }
    if (ch === "(") {
      if (pattern.startsWith("(?i:", i)) {
        caseStack.push(ignoreCase);
        ignoreCase = true;
        out += "(?:";
        i += 3;
        continue;
      }
      caseStack.push(ignoreCase);
      out += ch;
      continue;
    }
    if (ch === ")") {
      ignoreCase = caseStack.pop() ?? false;
      out += ch;
      continue;
    }
    out += ignoreCase && /\p{L}/u.test(ch) ? foldClass(ch) : ch;
  }
  try {
    return new RegExp(out, "gu");
  } catch (cause) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, "pre-tokenizer regex cannot be translated to a JS RegExp", {
      field: "pattern.Regex",
      expected: "an Oniguruma pattern using features JS supports",
      actual: pattern,
      cause,
    });
  }
}

function badPattern(pattern: string, what: string): HaloError {
  return new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, `pre-tokenizer regex has ${what}`, {
    field: "pattern.Regex",
    actual: pattern,
  });
}

/** Escapes a literal string for use inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
