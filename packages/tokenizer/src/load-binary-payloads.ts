// Loaders for GGUF tokenizer.ggml.* metadata and seed .htok payloads into TokenizerParts.
import { HaloError } from "@halo/errors";
import type { AddedToken } from "./added-tokens.js";
import { buildFromIdMerges, buildFromStringMerges } from "./build-model.js";
import { TokenizerErrorCode } from "./errors.js";
import type { GgufTokenizerPayload, HtokPayload } from "./payload.js";
import { gpt2PreTokenizer, llama3PreTokenizer, seedDigitsPreTokenizer, type PreTokenizer } from "./pre-tokenizer.js";
import { StringTable } from "./string-table.js";
import type { TokenizerParts } from "./tokenizer-parts.js";

/**
 * Which pre-tokenizer to use for payloads that do not carry one (GGUF, `.htok`):
 * `llama3` (the Llama-3 split regex, the default), `gpt2` (GPT-2 regex) or `seed-digits`
 * (the seed system's digit-only splitter, for parity with its old outputs).
 *
 * @example
 * ```ts
 * Tokenizer.fromPayload(htokPayload, { preTokenizer: "seed-digits" });
 * ```
 */
export type PreTokenizerChoice = "llama3" | "gpt2" | "seed-digits";

// GGUF tokenizer.ggml.token_type values.
const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_USER_DEFINED = 4;

const LLAMA3_PRE = new Set(["llama3", "llama-bpe", "llama-v3", "default-llama3"]);
const GPT2_PRE = new Set(["gpt-2", "gpt2", "default"]);
/** Special-token surfaces of a seed `.htok` (Llama-3 style `<|name|>`). */
const SPECIAL_SURFACE = /^<\|[^|\s]+\|>$/;

function preTokenizerFor(choice: PreTokenizerChoice): PreTokenizer {
  if (choice === "gpt2") return gpt2PreTokenizer();
  if (choice === "seed-digits") return seedDigitsPreTokenizer();
  return llama3PreTokenizer();
}

function checkId(id: number | null, count: number, field: string): number | null {
  if (id === null) return null;
  if (!Number.isInteger(id) || id < 0 || id >= count) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "special token id is outside the vocabulary", {
      field,
      expected: `an id below ${count}`,
      actual: id,
    });
  }
  return id;
}

/** Builds tokenizer parts from GGUF `tokenizer.ggml.*` metadata (`model = gpt2`, byte-level BPE). */
export function partsFromGguf(payload: GgufTokenizerPayload, choice: PreTokenizerChoice | undefined): TokenizerParts {
  if (payload.model !== "gpt2") {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `GGUF tokenizer model ${payload.model} is not implemented`, {
      field: "tokenizer.ggml.model",
      expected: "gpt2 (byte-level BPE)",
      actual: payload.model,
    });
  }
  let resolved: PreTokenizerChoice;
  if (choice !== undefined) resolved = choice;
  else if (payload.pre === null || LLAMA3_PRE.has(payload.pre)) resolved = "llama3";
  else if (GPT2_PRE.has(payload.pre)) resolved = "gpt2";
  else {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `GGUF pre-tokenizer ${payload.pre} is not implemented`, {
      field: "tokenizer.ggml.pre",
      expected: "llama-bpe, llama3, gpt-2, default or none",
      actual: payload.pre,
      hint: 'Pass { preTokenizer: "llama3" } or "gpt2" to choose one explicitly',
    });
  }
  const { tokens, tokenTypes } = payload;
  if (tokenTypes !== null && tokenTypes.length !== tokens.length) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "GGUF token types and tokens differ in length", {
      field: "tokenizer.ggml.token_type",
      expected: tokens.length,
      actual: tokenTypes.length,
    });
  }
  const vocab = new StringTable(tokens.length);
  const modelTokens: (string | undefined)[] = [];
  const addedTokens: AddedToken[] = [];
  tokens.forEach((token, id) => {
    const type = tokenTypes?.[id] ?? 1;
    if (type === TOKEN_TYPE_CONTROL || type === TOKEN_TYPE_USER_DEFINED) {
      addedTokens.push({ id, content: token, special: type === TOKEN_TYPE_CONTROL, singleWord: false, lstrip: false, rstrip: false });
    } else {
      vocab.set(token, id);
      modelTokens[id] = token;
    }
  });
  const preTokenizer = preTokenizerFor(resolved);
  const built = buildFromStringMerges(
    vocab,
    payload.merges,
    { ignoreMerges: resolved === "llama3", byteLevel: true, unkId: null, byteFallback: false },
    "tokenizer.ggml.merges",
  );
  const bosTokenId = checkId(payload.bosTokenId, tokens.length, "tokenizer.ggml.bos_token_id");
  const eosTokenId = checkId(payload.eosTokenId, tokens.length, "tokenizer.ggml.eos_token_id");
  const templateVariables: Record<string, string> = {};
  if (bosTokenId !== null) templateVariables["bos_token"] = tokens[bosTokenId]!;
  if (eosTokenId !== null) templateVariables["eos_token"] = tokens[eosTokenId]!;
  return {
    ...built,
    modelTokens,
    addedTokens,
    normalizer: null,
    preTokenizer,
    decoder: "byte-level",
    wrap: { prefix: payload.addBosToken !== false && bosTokenId !== null ? [bosTokenId] : [], suffix: [] },
    bosTokenId,
    eosTokenId,
    chatTemplate: null,
    templateVariables,
  };
}

/**
 * Builds tokenizer parts from a seed `.htok` payload. Surfaces of the form `<|name|>` are special
 * tokens; BOS is prepended with `addSpecialTokens` (the seed always prepends it to prompts).
 */
export function partsFromHtok(payload: HtokPayload, choice: PreTokenizerChoice | undefined): TokenizerParts {
  const resolved = choice ?? "llama3";
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const vocab = new Map<string, number>();
  const modelTokens: (string | undefined)[] = [];
  const addedTokens: AddedToken[] = [];
  payload.tokens.forEach((bytes, id) => {
    if (bytes.length === 0) return;
    let token: string;
    try {
      token = decoder.decode(bytes);
    } catch (cause) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, ".htok token surface is not valid UTF-8", {
        field: `tokens[${id}]`,
        actual: [...bytes.subarray(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join(" "),
        cause,
      });
    }
    if (SPECIAL_SURFACE.test(token)) {
      addedTokens.push({ id, content: token, special: true, singleWord: false, lstrip: false, rstrip: false });
    } else {
      if (!vocab.has(token)) vocab.set(token, id);
      modelTokens[id] = token;
    }
  });
  const count = payload.tokens.length;
  const built = buildFromIdMerges(vocab, payload.merges, count, {
    ignoreMerges: resolved === "llama3",
    byteLevel: true,
    unkId: null,
    byteFallback: false,
  });
  const bosTokenId = checkId(payload.bosTokenId, count, "bos_id");
  const eosTokenId = checkId(payload.eosTokenId, count, "eos_id");
  const surface = (id: number | null): string | undefined => (id === null ? undefined : (modelTokens[id] ?? addedTokens.find((t) => t.id === id)?.content));
  const templateVariables: Record<string, string> = {};
  const bos = surface(bosTokenId);
  const eos = surface(eosTokenId);
  if (bos !== undefined) templateVariables["bos_token"] = bos;
  if (eos !== undefined) templateVariables["eos_token"] = eos;
  return {
    ...built,
    modelTokens,
    addedTokens,
    normalizer: null,
    preTokenizer: preTokenizerFor(resolved),
    decoder: "byte-level",
    wrap: { prefix: bosTokenId === null ? [] : [bosTokenId], suffix: [] },
    bosTokenId,
    eosTokenId,
    chatTemplate: null,
    templateVariables,
  };
}
