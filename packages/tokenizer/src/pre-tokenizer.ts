// Pre-tokenizers of tokenizer.json (Sequence, Split, ByteLevel, Digits, …) as functions that emit pieces.
import { HaloError } from "@halo/errors";
import { TokenizerErrorCode } from "./errors.js";
import { GPT2_SPLIT_PATTERN, LLAMA3_SPLIT_PATTERN, escapeRegExp, onigToJsRegExp } from "./onig-regex.js";

/** Splits a string into pieces, calling `emit` for each non-empty piece in order. */
export type PreTokenizeFn = (text: string, emit: (piece: string) => void) => void;

/** How a Split keeps its matches (Hugging Face `SplitDelimiterBehavior`). */
export type SplitBehavior = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous";

/** A pre-tokenizer ready to run, and whether it maps bytes (ByteLevel) for the model. */
export interface PreTokenizer {
  readonly split: PreTokenizeFn;
  /** True when a ByteLevel step is present: pieces are encoded as UTF-8 bytes. */
  readonly byteLevel: boolean;
}

const identity: PreTokenizeFn = (text, emit) => {
  if (text.length > 0) emit(text);
};

/**
 * Splits `text` around the matches of a global regex, keeping matches as `behavior` says.
 * With `invert`, the matches are the pieces and the gaps the delimiters.
 */
export function regexSplit(regex: RegExp, behavior: SplitBehavior, invert: boolean): PreTokenizeFn {
  if (!invert && behavior === "Isolated") {
    return (text, emit) => {
      regex.lastIndex = 0;
      let last = 0;
      for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
        const start = m.index;
        const piece = m[0];
        if (piece.length === 0) {
          regex.lastIndex++;
          continue;
        }
        if (start > last) emit(text.slice(last, start));
        emit(piece);
        last = start + piece.length;
      }
      if (last < text.length) emit(text.slice(last));
    };
  }
  return (text, emit) => {
    // (start, end, isMatch) segments covering the text.
    const spans: Array<[number, number, boolean]> = [];
    regex.lastIndex = 0;
    let last = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      if (m[0].length === 0) {
        regex.lastIndex++;
        continue;
      }
      if (m.index > last) spans.push([last, m.index, invert]);
      spans.push([m.index, m.index + m[0].length, !invert]);
      last = m.index + m[0].length;
    }
    if (last < text.length) spans.push([last, text.length, invert]);
    applyBehavior(text, spans, behavior, emit);
  };
}

function applyBehavior(text: string, spans: Array<[number, number, boolean]>, behavior: SplitBehavior, emit: (p: string) => void): void {
  const out: Array<[number, number]> = [];
  let previousMatch = false;
  for (const [start, end, isMatch] of spans) {
    switch (behavior) {
      case "Isolated":
        out.push([start, end]);
        break;
      case "Removed":
        if (!isMatch) out.push([start, end]);
        break;
      case "MergedWithPrevious": {
        const prev = out[out.length - 1];
        if (isMatch && prev !== undefined && !previousMatch) prev[1] = end;
        else out.push([start, end]);
        break;
      }
      case "MergedWithNext": {
        const prev = out[out.length - 1];
        if (!isMatch && prev !== undefined && previousMatch) prev[1] = end;
        else out.push([start, end]);
        break;
      }
      case "Contiguous": {
        const prev = out[out.length - 1];
        if (isMatch && previousMatch && prev !== undefined) prev[1] = end;
        else out.push([start, end]);
        break;
      }
    }
    previousMatch = isMatch;
  }
  for (const [start, end] of out) if (end > start) emit(text.slice(start, end));
}

/** Chains steps: every piece of one step is split again by the next. */
export function sequence(steps: readonly PreTokenizeFn[]): PreTokenizeFn {
  const active = steps.filter((s) => s !== identity);
  if (active.length === 0) return identity;
  if (active.length === 1) return active[0]!;
  let composed = active[active.length - 1]!;
  for (let i = active.length - 2; i >= 0; i--) {
    const step = active[i]!;
    const inner = composed;
    composed = (text, emit) => step(text, (piece) => inner(piece, emit));
  }
  return composed;
}

/** The Llama-3 pre-tokenizer: the Llama-3 split regex (Isolated), then byte-level mapping. */
export function llama3PreTokenizer(): PreTokenizer {
  return { split: regexSplit(onigToJsRegExp(LLAMA3_SPLIT_PATTERN), "Isolated", false), byteLevel: true };
}

/** The GPT-2 pre-tokenizer: ByteLevel with `use_regex` (llama.cpp `gpt-2`). */
export function gpt2PreTokenizer(): PreTokenizer {
  return { split: regexSplit(onigToJsRegExp(GPT2_SPLIT_PATTERN), "Isolated", false), byteLevel: true };
}

/**
 * The seed's pre-tokenizer (`research/seed-system.md` §2): ASCII digit runs cut into chunks of at
 * most three digits from the left; everything between digit runs is one piece. Only for parity
 * with outputs of the seed system — it lets merges span words and spaces.
 */
export function seedDigitsPreTokenizer(): PreTokenizer {
  return { split: regexSplit(/[0-9]{1,3}/g, "Isolated", false), byteLevel: true };
}

type Json = Record<string, unknown>;

function field<T>(node: Json, name: string, check: (v: unknown) => v is T, what: string, path: string): T {
  const value = node[name];
  if (!check(value)) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, `pre-tokenizer field has the wrong type`, {
      field: `${path}.${name}`,
      expected: what,
      actual: value === undefined ? "nothing" : value,
    });
  }
  return value;
}
const isString = (v: unknown): v is string => typeof v === "string";

const BEHAVIORS = new Set(["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]);

/** Builds a pre-tokenizer from the `pre_tokenizer` node of tokenizer.json (null → whole text). */
export function preTokenizerFromJson(node: unknown, path = "pre_tokenizer"): PreTokenizer {
  if (node === null || node === undefined) return { split: identity, byteLevel: false };
  if (typeof node !== "object" || Array.isArray(node)) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "pre-tokenizer is not an object", { field: path, actual: node });
  }
  const json = node as Json;
  const type = field(json, "type", isString, "a type name", path);
  switch (type) {
    case "Sequence": {
      const list = json["pretokenizers"];
      if (!Array.isArray(list)) {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "Sequence pre-tokenizer has no list", {
          field: `${path}.pretokenizers`,
          expected: "an array",
          actual: list,
        });
      }
      const parts = list.map((p, i) => preTokenizerFromJson(p, `${path}.pretokenizers[${i}]`));
      return { split: sequence(parts.map((p) => p.split)), byteLevel: parts.some((p) => p.byteLevel) };
    }
    case "Split": {
      const pattern = json["pattern"] as Json | undefined;
      const behavior = field(json, "behavior", isString, "a split behaviour", path);
      if (!BEHAVIORS.has(behavior)) {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, "unknown Split behaviour", {
          field: `${path}.behavior`,
          expected: [...BEHAVIORS].join(" | "),
          actual: behavior,
        });
      }
      const invert = json["invert"] === true;
      let regex: RegExp;
      if (pattern !== undefined && pattern !== null && typeof pattern["Regex"] === "string") regex = onigToJsRegExp(pattern["Regex"]);
      else if (pattern !== undefined && pattern !== null && typeof pattern["String"] === "string") regex = new RegExp(escapeRegExp(pattern["String"]), "gu");
      else {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "Split pre-tokenizer has no pattern", {
          field: `${path}.pattern`,
          expected: '{"Regex": …} or {"String": …}',
          actual: pattern ?? "nothing",
        });
      }
      return { split: regexSplit(regex, behavior as SplitBehavior, invert), byteLevel: false };
    }
    case "ByteLevel": {
      const addPrefixSpace = json["add_prefix_space"] === true;
      const useRegex = json["use_regex"] !== false;
      const steps: PreTokenizeFn[] = [];
      if (addPrefixSpace) steps.push((text, emit) => emit(text.startsWith(" ") ? text : ` ${text}`));
      if (useRegex) steps.push(regexSplit(onigToJsRegExp(GPT2_SPLIT_PATTERN), "Isolated", false));
      return { split: sequence(steps), byteLevel: true };
    }
    case "Digits": {
      const individual = json["individual_digits"] === true;
      return { split: regexSplit(individual ? /\p{N}/gu : /\p{N}+/gu, individual ? "Isolated" : "Contiguous", false), byteLevel: false };
    }
    case "Whitespace":
      return { split: regexSplit(/[\p{L}\p{M}\p{Nd}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Pc}\p{White_Space}]+/gu, "Removed", true), byteLevel: false };
    case "WhitespaceSplit":
      return { split: regexSplit(/\p{White_Space}+/gu, "Removed", false), byteLevel: false };
    case "Punctuation": {
      const behavior = typeof json["behavior"] === "string" ? json["behavior"] : "Isolated";
      return { split: regexSplit(/\p{P}/gu, behavior as SplitBehavior, false), byteLevel: false };
    }
    default:
      throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `pre-tokenizer type ${type} is not implemented`, {
        field: `${path}.type`,
        expected: "Sequence | Split | ByteLevel | Digits | Whitespace | WhitespaceSplit | Punctuation",
        actual: type,
        hint: "Open an issue with the tokenizer.json that uses it",
      });
  }
}
