// Loader for Hugging Face tokenizer.json (+ tokenizer_config.json) into TokenizerParts.
import { HaloError } from "@halo/errors";
import type { AddedToken } from "./added-tokens.js";
import { buildFromStringMerges } from "./build-model.js";
import { TokenizerErrorCode } from "./errors.js";
import { normalizerFromJson } from "./normalizer.js";
import { scanTokenizerJson } from "./hf-json-fast.js";
import { postProcessorFromJson } from "./post-processor.js";
import { StringTable } from "./string-table.js";
import { preTokenizerFromJson } from "./pre-tokenizer.js";
import type { TokenizerParts } from "./tokenizer-parts.js";

type Json = Record<string, unknown>;

/** Parses JSON text or passes an already-parsed object through, with a HaloError on bad input. */
export function parseJsonObject(text: string | object, what: string): Json {
  if (typeof text === "object") {
    if (text === null || Array.isArray(text)) throw notObject(what, text);
    return text as Json;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_JSON, `${what} is not valid JSON`, {
      path: what,
      expected: "a complete JSON object",
      actual: `${text.length} characters ending in ${JSON.stringify(text.slice(-24))}`,
      hint: "The file may be truncated or not a tokenizer file; download it again",
      cause,
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw notObject(what, value);
  return value as Json;
}

function notObject(what: string, value: unknown): HaloError {
  return new HaloError(TokenizerErrorCode.TOKENIZER_BAD_JSON, `${what} is not a JSON object`, {
    path: what,
    expected: "an object",
    actual: Array.isArray(value) ? "an array" : typeof value,
  });
}

/** `"<s>"` or `{ "content": "<s>" }` (transformers' AddedToken form) → the content string. */
function tokenString(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as Json)["content"] === "string") return (value as Json)["content"] as string;
  return null;
}

/** The chat template of tokenizer_config.json: a string, or the `default` of a named list. */
function chatTemplateOf(config: Json): string | null {
  const value = config["chat_template"];
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t: Json) => t?.["name"] === "default") ?? value[0];
    if (named && typeof named["template"] === "string") return named["template"];
  }
  return null;
}

// Conventional names used when tokenizer_config.json does not name BOS/EOS.
const BOS_NAMES = ["<|begin_of_text|>", "<s>", "<bos>"];
const EOS_NAMES = ["<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>"];

function firstKnown(idOf: (token: string) => number | null, names: readonly string[]): number | null {
  for (const name of names) {
    const id = idOf(name);
    if (id !== null) return id;
  }
  return null;
}

/** Builds the parts of a tokenizer from tokenizer.json and optional tokenizer_config.json. */
export function partsFromHfJson(tokenizerJson: string | object, tokenizerConfigJson: string | object | null | undefined): TokenizerParts {
  const scanned = typeof tokenizerJson === "string" ? scanTokenizerJson(tokenizerJson) : null;
  const json = scanned?.json ?? parseJsonObject(tokenizerJson, "tokenizer.json");
  const config = tokenizerConfigJson === null || tokenizerConfigJson === undefined ? {} : parseJsonObject(tokenizerConfigJson, "tokenizer_config.json");
  const model = json["model"] as Json | undefined;
  if (!model || typeof model !== "object") {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "tokenizer.json has no model", {
      field: "model",
      expected: "an object with type BPE",
      actual: model ?? "nothing",
    });
  }
  const type = model["type"] ?? (model["merges"] !== undefined ? "BPE" : undefined);
  if (type !== "BPE") {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `tokenizer model type ${String(type)} is not implemented`, {
      field: "model.type",
      expected: "BPE",
      actual: type ?? "nothing",
      hint: "halo implements byte-level BPE (Llama-3, GPT-2 style); WordPiece and Unigram are not supported",
    });
  }
  const vocabJson = model["vocab"];
  if (!vocabJson || typeof vocabJson !== "object" || Array.isArray(vocabJson)) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "BPE model has no vocabulary", { field: "model.vocab", expected: "an object of token → id" });
  }
  const merges = model["merges"];
  if (!Array.isArray(merges)) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "BPE model has no merges list", { field: "model.merges", expected: "an array" });
  }
  for (const name of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    const value = model[name];
    if (value !== null && value !== undefined && value !== "") {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `BPE ${name} is not implemented`, { field: `model.${name}`, actual: value });
    }
  }
  if (typeof model["dropout"] === "number" && model["dropout"] > 0) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, "BPE dropout is not implemented (it makes encoding random)", {
      field: "model.dropout",
      actual: model["dropout"],
    });
  }
  let vocab: StringTable;
  let modelTokens: (string | undefined)[];
  if (scanned !== null) {
    vocab = scanned.vocab;
    modelTokens = scanned.modelTokens;
  } else {
    vocab = new StringTable(1024);
    modelTokens = [];
    for (const token in vocabJson as Json) {
      const id = (vocabJson as Json)[token];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "vocabulary id is not a non-negative integer", {
          field: `model.vocab[${JSON.stringify(token)}]`,
          actual: id,
        });
      }
      vocab.set(token, id);
      modelTokens[id] = token;
    }
  }
  const addedTokens: AddedToken[] = [];
  const addedJson = json["added_tokens"] ?? [];
  if (!Array.isArray(addedJson)) throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "added_tokens is not an array", { field: "added_tokens" });
  addedJson.forEach((t: Json, i) => {
    if (!t || typeof t["content"] !== "string" || typeof t["id"] !== "number" || !Number.isInteger(t["id"]) || t["id"] < 0) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "added token needs a string content and an integer id", {
        field: `added_tokens[${i}]`,
        actual: t,
      });
    }
    addedTokens.push({
      id: t["id"],
      content: t["content"],
      special: t["special"] === true,
      singleWord: t["single_word"] === true,
      lstrip: t["lstrip"] === true,
      rstrip: t["rstrip"] === true,
    });
  });
  const unkToken = typeof model["unk_token"] === "string" ? model["unk_token"] : null;
  const preTokenizer = preTokenizerFromJson(json["pre_tokenizer"]);
  const built = buildFromStringMerges(
    vocab,
    scanned?.merges ?? merges,
    {
      ignoreMerges: model["ignore_merges"] === true,
      byteLevel: preTokenizer.byteLevel,
      unkId: unkToken === null ? null : (vocab.get(unkToken) ?? null),
      byteFallback: model["byte_fallback"] === true,
    },
    "model.merges",
  );
  const decoderType = (json["decoder"] as Json | null | undefined)?.["type"];
  if (decoderType !== undefined && decoderType !== "ByteLevel") {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `decoder type ${String(decoderType)} is not implemented`, {
      field: "decoder.type",
      expected: "ByteLevel (or no decoder)",
      actual: decoderType,
    });
  }
  const idOf = (token: string | null): number | null => {
    if (token === null) return null;
    return addedTokens.find((t) => t.content === token)?.id ?? vocab.get(token) ?? null;
  };
  const bosToken = tokenString(config["bos_token"]);
  const eosToken = tokenString(config["eos_token"]);
  const wrap = postProcessorFromJson(json["post_processor"]);
  const templateVariables: Record<string, string> = {};
  for (const name of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const value = tokenString(config[name]);
    if (value !== null) templateVariables[name] = value;
  }
  const bosTokenId = idOf(bosToken) ?? wrap.prefix[0] ?? firstKnown(idOf, BOS_NAMES);
  const eosTokenId = idOf(eosToken) ?? firstKnown(idOf, EOS_NAMES);
  const surface = (id: number | null): string | undefined => (id === null ? undefined : (addedTokens.find((t) => t.id === id)?.content ?? modelTokens[id]));
  if (templateVariables["bos_token"] === undefined && surface(bosTokenId) !== undefined) templateVariables["bos_token"] = surface(bosTokenId)!;
  if (templateVariables["eos_token"] === undefined && surface(eosTokenId) !== undefined) templateVariables["eos_token"] = surface(eosTokenId)!;
  return {
    ...built,
    modelTokens,
    addedTokens,
    normalizer: normalizerFromJson(json["normalizer"]),
    preTokenizer,
    decoder: decoderType === "ByteLevel" ? "byte-level" : "join",
    wrap,
    bosTokenId,
    eosTokenId,
    chatTemplate: chatTemplateOf(config),
    templateVariables,
  };
}
