// Conversions between the three TokenizerPayload kinds (tokenizer.json, GGUF tokenizer.ggml.*, seed .htok).
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { LLAMA3_SPLIT_PATTERN } from "../synth/bpe-trainer.js";
import { llama3TokenizerJson, type AddedTokenJson } from "./llama3-tokenizer-json.js";
import type { TokenizerPayload } from "./model.js";

/** The GGUF tokenizer payload. */
export type GgufTokenizerPayload = Extract<TokenizerPayload, { kind: "gguf" }>;
/** The Hugging Face tokenizer.json payload. */
export type HfTokenizerPayload = Extract<TokenizerPayload, { kind: "hf-json" }>;
/** The seed `.htok` payload. */
export type HtokTokenizerPayload = Extract<TokenizerPayload, { kind: "htok" }>;

/**
 * llama.cpp token types (`llama_token_type`).
 *
 * @example
 * ```ts
 * const special = payload.tokenTypes?.[id] === GGUF_TOKEN_TYPE.CONTROL;
 * ```
 */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Result of {@link toHtokTokenizer}: the payload and how many merges could not be expressed as id triples. */
export interface HtokConversion {
  readonly payload: HtokTokenizerPayload;
  /** Merges dropped because a part or the merged token is not in the vocabulary (the seed exporter's rule). */
  readonly droppedMerges: number;
}

/** Options of {@link toHfTokenizerJson}. */
export interface HfTokenizerOptions {
  /** Chat template to put in `tokenizer_config.json`. */
  readonly chatTemplate?: string | null;
}

const utf8 = new TextDecoder("utf-8");
const encoder = new TextEncoder();
const SPECIAL_NAME = /^<\|[^|\s]+\|>$/;

interface HfAddedToken {
  id: number;
  content: string;
  special?: boolean;
}

function bad(summary: string, field: string, expected: string, actual: unknown, hint?: string): HaloError {
  return new HaloError(H1bErrorCode.H1B_UNSUPPORTED, summary, hint === undefined ? { field, expected, actual } : { field, expected, actual, hint });
}

function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return null;
}

function parseJson(text: string, field: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, `${field} is not a JSON object`, {
      field,
      expected: "a JSON object",
      actual: String(cause),
      cause,
    });
  }
}

function containsByteLevel(node: unknown): boolean {
  if (node === null || typeof node !== "object") return false;
  if ((node as { type?: unknown }).type === "ByteLevel") return true;
  return Object.values(node as Record<string, unknown>).some((v) => (Array.isArray(v) ? v.some(containsByteLevel) : containsByteLevel(v)));
}

function preName(preTokenizer: unknown): string | null {
  const text = JSON.stringify(preTokenizer ?? null);
  if (text.includes(JSON.stringify(LLAMA3_SPLIT_PATTERN))) return "llama-bpe";
  const node = preTokenizer as { type?: unknown; use_regex?: unknown } | null;
  if (node?.type === "ByteLevel" && node.use_regex !== false) return "gpt-2";
  return null;
}

function fromHf(payload: HfTokenizerPayload): GgufTokenizerPayload {
  const json = parseJson(payload.tokenizerJson, "tokenizer.json");
  const config = payload.tokenizerConfigJson === null ? {} : parseJson(payload.tokenizerConfigJson, "tokenizer_config.json");
  const model = json.model as { type?: unknown; vocab?: unknown; merges?: unknown } | undefined;
  if (model?.type !== "BPE" || model.vocab === null || typeof model.vocab !== "object") {
    throw bad("only BPE tokenizer.json files convert to GGUF/.htok", "tokenizer.json model.type", "BPE", model?.type ?? "absent");
  }
  if (!containsByteLevel(json.pre_tokenizer) && !containsByteLevel(json.decoder)) {
    throw bad("only byte-level BPE (GPT-2 / Llama-3 style) converts", "tokenizer.json pre_tokenizer", "a ByteLevel step", "none");
  }
  const ids = new Map<number, string>();
  for (const [token, id] of Object.entries(model.vocab as Record<string, unknown>)) {
    if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) ids.set(id, token);
  }
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as HfAddedToken[]) : [];
  const addedTypes = new Map<number, number>();
  for (const token of added) {
    if (typeof token.id !== "number" || typeof token.content !== "string") continue;
    ids.set(token.id, token.content);
    addedTypes.set(token.id, token.special === false ? GGUF_TOKEN_TYPE.USER_DEFINED : GGUF_TOKEN_TYPE.CONTROL);
  }
  let size = 0;
  for (const id of ids.keys()) size = Math.max(size, id + 1);
  if (size > 16_777_216) throw bad("vocabulary too large", "tokenizer.json model.vocab", "at most 2^24 ids", size);
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  for (let id = 0; id < size; id++) {
    const token = ids.get(id);
    tokens.push(token ?? `[PAD${id}]`);
    tokenTypes.push(token === undefined ? GGUF_TOKEN_TYPE.UNUSED : (addedTypes.get(id) ?? GGUF_TOKEN_TYPE.NORMAL));
  }
  const rawMerges = Array.isArray(model.merges) ? (model.merges as unknown[]) : [];
  const merges = rawMerges.map((m) => (Array.isArray(m) ? `${String(m[0])} ${String(m[1])}` : String(m)));
  const idOf = (value: unknown): number | null => {
    const content = tokenContent(value);
    if (content === null) return null;
    const index = tokens.indexOf(content);
    return index >= 0 ? index : null;
  };
  const post = json.post_processor as { type?: unknown; single?: unknown[] } | null | undefined;
  const postAddsBos =
    post?.type === "TemplateProcessing" && Array.isArray(post.single) && post.single.length > 0
      ? typeof (post.single[0] as { SpecialToken?: unknown }).SpecialToken === "object"
      : null;
  const addBos = typeof config.add_bos_token === "boolean" ? config.add_bos_token : postAddsBos;
  return {
    kind: "gguf",
    model: "gpt2",
    pre: preName(json.pre_tokenizer),
    tokens,
    merges,
    tokenTypes,
    bosTokenId: idOf(config.bos_token),
    eosTokenId: idOf(config.eos_token),
    addBosToken: addBos,
  };
}

function fromHtok(payload: HtokTokenizerPayload): GgufTokenizerPayload {
  const tokens = payload.tokens.map((t) => utf8.decode(t));
  const merges: string[] = [];
  for (let i = 0; i + 2 < payload.merges.length; i += 3) {
    const a = tokens[payload.merges[i]!];
    const b = tokens[payload.merges[i + 1]!];
    if (a === undefined || b === undefined) {
      throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "htok merge refers to a token id outside the vocabulary", {
        field: `merges[${i / 3}]`,
        expected: `ids below ${tokens.length}`,
        actual: [payload.merges[i], payload.merges[i + 1]],
      });
    }
    merges.push(`${a} ${b}`);
  }
  return {
    kind: "gguf",
    model: "gpt2",
    // .htok files carry the Llama-3 vocabulary (BitNet 2B-4T); its pre-tokenizer is Llama-3's.
    pre: "llama-bpe",
    tokens,
    merges,
    // .htok stores no token types; `<|name|>` surfaces are the special (control) tokens.
    tokenTypes: tokens.map((t) => (SPECIAL_NAME.test(t) ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.NORMAL)),
    bosTokenId: payload.bosTokenId,
    eosTokenId: payload.eosTokenId,
    addBosToken: true,
  };
}

/**
 * The GGUF `tokenizer.ggml.*` form of any payload. From tokenizer.json: byte-level BPE only
 * (`model: gpt2`); ids missing from the vocabulary become `[PAD<id>]` with type UNUSED; added
 * tokens are CONTROL (special) or USER_DEFINED; `pre` is `llama-bpe` when the Llama-3 split
 * regex is present. From `.htok`: `<|name|>` tokens are marked CONTROL, `pre` is `llama-bpe`.
 *
 * @example
 * ```ts
 * const gguf = toGgufTokenizer(model.tokenizer!);
 * console.log(gguf.tokens.length, gguf.merges.length);
 * ```
 */
export function toGgufTokenizer(payload: TokenizerPayload): GgufTokenizerPayload {
  switch (payload.kind) {
    case "gguf":
      return payload;
    case "hf-json":
      return fromHf(payload);
    case "htok":
      return fromHtok(payload);
  }
}

/**
 * A Llama-3-style `tokenizer.json` (byte-level BPE, the Llama-3 split regex, ByteLevel decoder,
 * BOS post-processor when the payload adds BOS) plus a `tokenizer_config.json`. GGUF payloads
 * must be `gpt2` (byte-level BPE); CONTROL and USER_DEFINED tokens become `added_tokens`.
 *
 * @example
 * ```ts
 * const hf = toHfTokenizerJson(readGguf("m.gguf").tokenizer!, { chatTemplate });
 * writeFileSync("tokenizer.json", hf.tokenizerJson);
 * ```
 */
export function toHfTokenizerJson(payload: TokenizerPayload, options: HfTokenizerOptions = {}): HfTokenizerPayload {
  if (payload.kind === "hf-json") return payload;
  const gguf = toGgufTokenizer(payload);
  if (gguf.model !== "gpt2") {
    throw bad("only gpt2 (byte-level BPE) GGUF tokenizers convert to tokenizer.json", "tokenizer.ggml.model", "gpt2", gguf.model);
  }
  const vocab: Record<string, number> = {};
  const added: AddedTokenJson[] = [];
  gguf.tokens.forEach((token, id) => {
    if (!Object.prototype.hasOwnProperty.call(vocab, token)) vocab[token] = id;
    const type = gguf.tokenTypes?.[id] ?? GGUF_TOKEN_TYPE.NORMAL;
    if (type === GGUF_TOKEN_TYPE.CONTROL || type === GGUF_TOKEN_TYPE.USER_DEFINED) {
      added.push({
        id,
        content: token,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: type === GGUF_TOKEN_TYPE.USER_DEFINED,
        special: type === GGUF_TOKEN_TYPE.CONTROL,
      });
    }
  });
  const bos = gguf.bosTokenId === null ? undefined : gguf.tokens[gguf.bosTokenId];
  const eos = gguf.eosTokenId === null ? undefined : gguf.tokens[gguf.eosTokenId];
  const addBos = bos !== undefined && gguf.addBosToken !== false;
  const tokenizer = llama3TokenizerJson({
    added,
    vocab,
    merges: gguf.merges,
    bos: addBos ? { content: bos, id: gguf.bosTokenId! } : null,
  });
  const config: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: false,
    ...(bos === undefined ? {} : { bos_token: bos }),
    ...(eos === undefined ? {} : { eos_token: eos }),
    clean_up_tokenization_spaces: true,
    model_max_length: 1_000_000_000,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  if (options.chatTemplate !== undefined && options.chatTemplate !== null) config.chat_template = options.chatTemplate;
  return { kind: "hf-json", tokenizerJson: JSON.stringify(tokenizer), tokenizerConfigJson: JSON.stringify(config, null, 2) };
}

/**
 * The seed `.htok` form: byte-mapped surfaces and `[a, b, merged]` id triples. Merges whose
 * parts or merged token are not in the vocabulary are dropped and counted, as the seed's GGUF
 * exporter did. BOS and EOS ids are required (`.htok` has no "unknown").
 *
 * @example
 * ```ts
 * const { payload, droppedMerges } = toHtokTokenizer(model.tokenizer!);
 * if (droppedMerges > 0) console.warn(`${droppedMerges} merges not representable in .htok`);
 * ```
 */
export function toHtokTokenizer(payload: TokenizerPayload): HtokConversion {
  if (payload.kind === "htok") return { payload, droppedMerges: 0 };
  const gguf = toGgufTokenizer(payload);
  if (gguf.bosTokenId === null || gguf.eosTokenId === null) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, ".htok needs BOS and EOS token ids", {
      field: gguf.bosTokenId === null ? "bosTokenId" : "eosTokenId",
      expected: "a token id",
      actual: null,
      hint: "Set bos_token / eos_token in tokenizer_config.json (or the GGUF tokenizer keys)",
    });
  }
  const ids = new Map<string, number>();
  gguf.tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const triples: number[] = [];
  let dropped = 0;
  for (const merge of gguf.merges) {
    const space = merge.indexOf(" ", 1);
    if (space < 0) {
      dropped++;
      continue;
    }
    const left = merge.slice(0, space);
    const right = merge.slice(space + 1);
    const a = ids.get(left);
    const b = ids.get(right);
    const merged = ids.get(left + right);
    if (a === undefined || b === undefined || merged === undefined) {
      dropped++;
      continue;
    }
    triples.push(a, b, merged);
  }
  return {
    payload: {
      kind: "htok",
      tokens: gguf.tokens.map((t) => encoder.encode(t)),
      merges: Uint32Array.from(triples),
      bosTokenId: gguf.bosTokenId,
      eosTokenId: gguf.eosTokenId,
    },
    droppedMerges: dropped,
  };
}
