// The Tokenizer: Hugging Face-identical byte-level BPE encode/decode, special tokens, chat templates, .htok export.
import { HaloError } from "@halo/errors";
import { AddedTokenMatcher, type AddedToken } from "./added-tokens.js";
import { byteLevelTokenBytes, utf8 } from "./byte-level.js";
import { BUILTIN_CHAT_TEMPLATES, renderChatTemplate, type BuiltinChatTemplate, type ChatMessage } from "./chat-template.js";
import { TokenizerErrorCode } from "./errors.js";
import { partsFromGguf, partsFromHtok, type PreTokenizerChoice } from "./load-binary-payloads.js";
import { partsFromHfJson } from "./load-hf-json.js";
import type { HtokPayload, TokenizerPayload } from "./payload.js";
import { StreamDecoder, type StreamDecoderOptions } from "./stream-decoder.js";
import type { TokenizerParts } from "./tokenizer-parts.js";

/** Options of {@link Tokenizer.fromPayload}. */
export interface TokenizerLoadOptions {
  /**
   * Pre-tokenizer for GGUF and `.htok` payloads, which do not carry one. Default `llama3` (the
   * Llama-3 split regex with `ignore_merges`, identical to Hugging Face). `seed-digits` reproduces
   * the seed system's digit-only splitter for parity with its old outputs. Ignored for `hf-json`.
   */
  readonly preTokenizer?: PreTokenizerChoice;
  /** Override whether `addSpecialTokens` prepends BOS (default: what the file's post-processor says). */
  readonly addBosToken?: boolean;
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the ids the post-processor adds (BOS for Llama-3 style files). Default true. */
  readonly addSpecialTokens?: boolean;
  /**
   * Recognise special-token strings such as `<|eot_id|>` in the text as their ids. Default false:
   * they are encoded as plain text, so user input cannot inject control tokens. Non-special
   * added tokens are always recognised.
   */
  readonly allowSpecial?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave special tokens (BOS, `<|eot_id|>`, …) out of the text. Default false. */
  readonly skipSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the assistant's turn opener. Default true. */
  readonly addGenerationPrompt?: boolean;
  /** A built-in template name (`bitnet`, `llama3`, `plain`) or Jinja source. Default: the file's own template, else an error. */
  readonly template?: BuiltinChatTemplate | (string & {});
  /** Extra template variables. */
  readonly variables?: Readonly<Record<string, unknown>>;
}

// Tokens that end a turn or the text; those present in the vocabulary are stop ids.
const END_TOKENS = ["<|eot_id|>", "<|end_of_text|>", "<|im_end|>", "<|end|>", "<|endoftext|>"];

/**
 * How {@link Tokenizer.encodeChat} encodes rendered chat text: special-token text (`<|eot_id|>`)
 * recognised, no BOS or EOS added ({@link Tokenizer.addChatBos} adds BOS where needed).
 *
 * @example
 * ```ts
 * tokenizer.encode(rendered, CHAT_ENCODE_OPTIONS);
 * ```
 */
export const CHAT_ENCODE_OPTIONS: Readonly<EncodeOptions> = Object.freeze({ allowSpecial: true, addSpecialTokens: false });

/**
 * A byte-level BPE tokenizer whose ids and text are identical to Hugging Face `tokenizers` for
 * the same `tokenizer.json` (Llama-3 split regex, `ignore_merges`, added tokens, TemplateProcessing,
 * ByteLevel decoder). Any JavaScript string encodes: lone surrogates become U+FFFD first, as
 * they do on their way into Hugging Face's Node binding.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * const tokenizer = Tokenizer.fromJson(readFileSync("tokenizer.json", "utf8"), readFileSync("tokenizer_config.json", "utf8"));
 * const ids = tokenizer.encode("Hello world"); // [9906, 1917]
 * tokenizer.decode(ids); // "Hello world"
 * ```
 */
export class Tokenizer {
  private readonly parts: TokenizerParts;
  private readonly allMatcher: AddedTokenMatcher;
  private readonly plainMatcher: AddedTokenMatcher;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly specialIds = new Set<number>();
  private readonly prefix: readonly number[];
  private readonly suffix: readonly number[];
  private byteCache: (Uint8Array | undefined)[] = [];
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  /** Number of ids: one more than the largest id of the vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** Id of the beginning-of-text token, or null. */
  readonly bosTokenId: number | null;
  /** Id of the end-of-text token named by the file, or null. */
  readonly eosTokenId: number | null;
  /** The chat template the file carries, or null. */
  readonly chatTemplate: string | null;

  private constructor(parts: TokenizerParts, options: TokenizerLoadOptions) {
    this.parts = parts;
    for (const token of parts.addedTokens) {
      this.addedById.set(token.id, token);
      if (!this.addedByContent.has(token.content)) this.addedByContent.set(token.content, token);
      if (token.special) this.specialIds.add(token.id);
    }
    this.allMatcher = new AddedTokenMatcher(parts.addedTokens);
    this.plainMatcher = new AddedTokenMatcher(parts.addedTokens.filter((t) => !t.special));
    let prefix = parts.wrap.prefix;
    if (options.addBosToken === false) prefix = prefix.filter((id) => id !== parts.bosTokenId);
    else if (options.addBosToken === true && parts.bosTokenId !== null && prefix[0] !== parts.bosTokenId) prefix = [parts.bosTokenId, ...prefix];
    this.prefix = prefix;
    this.suffix = parts.wrap.suffix;
    let size = parts.modelTokens.length;
    for (const token of parts.addedTokens) size = Math.max(size, token.id + 1);
    this.vocabSize = size;
    this.bosTokenId = parts.bosTokenId;
    this.eosTokenId = parts.eosTokenId;
    this.chatTemplate = parts.chatTemplate;
  }

  /**
   * Builds a tokenizer from any payload a model file carries (`hf-json`, `gguf`, `htok`); the
   * `tokenizer` field of an `@halo/h1b-format` model fits as is.
   *
   * @example
   * ```ts
   * const tokenizer = Tokenizer.fromPayload(model.tokenizer!);
   * const seedCompatible = Tokenizer.fromPayload(htokPayload, { preTokenizer: "seed-digits" });
   * ```
   */
  static fromPayload(payload: TokenizerPayload, options: TokenizerLoadOptions = {}): Tokenizer {
    switch (payload?.kind) {
      case "hf-json":
        return new Tokenizer(partsFromHfJson(payload.tokenizerJson, payload.tokenizerConfigJson), options);
      case "gguf":
        return new Tokenizer(partsFromGguf(payload, options.preTokenizer), options);
      case "htok":
        return new Tokenizer(partsFromHtok(payload, options.preTokenizer), options);
      default:
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, "unknown tokenizer payload kind", {
          field: "kind",
          expected: "hf-json | gguf | htok",
          actual: (payload as { kind?: unknown } | null)?.kind ?? payload,
        });
    }
  }

  /**
   * Builds a tokenizer from `tokenizer.json` text (or its parsed object) and, optionally,
   * `tokenizer_config.json` (BOS/EOS names, chat template).
   *
   * @example
   * ```ts
   * const tokenizer = Tokenizer.fromJson(tokenizerJsonText, configText);
   * ```
   */
  static fromJson(tokenizerJson: string | object, tokenizerConfigJson?: string | object | null, options: TokenizerLoadOptions = {}): Tokenizer {
    return new Tokenizer(partsFromHfJson(tokenizerJson, tokenizerConfigJson ?? null), options);
  }

  /**
   * Text → ids. Never throws on a string: lone surrogates are encoded as U+FFFD.
   *
   * @example
   * ```ts
   * tokenizer.encode("<|eot_id|>", { allowSpecial: true, addSpecialTokens: false }); // [128009]
   * tokenizer.encode("<|eot_id|>", { addSpecialTokens: false }); // plain text: [27, 91, 68, 354, 851, 91, 29]
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, "encode needs a string", { field: "text", actual: typeof text });
    }
    const out: number[] = options.addSpecialTokens === false ? [] : [...this.prefix];
    const wellFormed = (text as unknown as { toWellFormed(): string }).toWellFormed();
    const matcher = options.allowSpecial === true ? this.allMatcher : this.plainMatcher;
    if (matcher.empty) this.encodeText(wellFormed, out);
    else {
      matcher.split(wellFormed, (segment) => {
        if (segment.id !== undefined) out.push(segment.id);
        else this.encodeText(segment.text, out);
      });
    }
    if (options.addSpecialTokens !== false) for (const id of this.suffix) out.push(id);
    return out;
  }

  private encodeText(text: string, out: number[]): void {
    const { normalizer, preTokenizer, model } = this.parts;
    const normalized = normalizer === null ? text : normalizer(text);
    preTokenizer.split(normalized, (piece) => model.encodePiece(piece, out));
  }

  /** Bytes of one id as the decoder sees them (throws for ids outside the vocabulary). */
  private bytesOf(id: number): Uint8Array {
    const cached = this.byteCache[id];
    if (cached !== undefined) return cached;
    const token = this.tokenOrThrow(id);
    const bytes = this.parts.decoder === "byte-level" ? byteLevelTokenBytes(token) : utf8(token);
    this.byteCache[id] = bytes;
    return bytes;
  }

  private tokenOrThrow(id: number): string {
    const token = Number.isInteger(id) ? (this.addedById.get(id)?.content ?? this.parts.modelTokens[id]) : undefined;
    if (token === undefined) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_TOKEN_ID, "token id is not in the vocabulary", {
        field: "ids",
        expected: `an integer id below ${this.vocabSize} that names a token`,
        actual: id,
      });
    }
    return token;
  }

  /**
   * Ids → text, exactly as Hugging Face's ByteLevel decoder (invalid UTF-8 → U+FFFD).
   * Throws `TOKENIZER_BAD_TOKEN_ID` for an id outside the vocabulary.
   *
   * @example
   * ```ts
   * tokenizer.decode([128000, 9906], { skipSpecialTokens: true }); // "Hello"
   * ```
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens === true;
    if (this.parts.decoder === "join") {
      const tokens: string[] = [];
      for (const id of ids) {
        const token = this.tokenOrThrow(id);
        if (!(skip && this.specialIds.has(id))) tokens.push(token);
      }
      return tokens.join(" ");
    }
    const chunks: Uint8Array[] = [];
    let length = 0;
    for (const id of ids) {
      const bytes = this.bytesOf(id);
      if (skip && this.specialIds.has(id)) continue;
      chunks.push(bytes);
      length += bytes.length;
    }
    const all = new Uint8Array(length);
    let at = 0;
    for (const chunk of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return this.decoder.decode(all);
  }

  /**
   * A decoder for streamed generation: holds partial UTF-8 characters and text that may begin a
   * stop string. See {@link StreamDecoder}.
   *
   * @example
   * ```ts
   * const stream = tokenizer.createStreamDecoder({ stopStrings: ["</answer>"] });
   * const piece = stream.push(id);
   * ```
   */
  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const skip = options.skipSpecialTokens === true;
    return new StreamDecoder((id) => {
      const bytes = this.parts.decoder === "join" ? utf8(`${this.tokenOrThrow(id)} `) : this.bytesOf(id);
      return skip && this.specialIds.has(id) ? null : bytes;
    }, options);
  }

  /**
   * Renders chat messages with the file's Jinja chat template (or a built-in one, or the given
   * source). The template sees `bos_token`/`eos_token` from the tokenizer config.
   *
   * @example
   * ```ts
   * tokenizer.applyChatTemplate([{ role: "user", content: "Hi" }], { template: "bitnet" });
   * // "User: Hi<|eot_id|>Assistant: "
   * ```
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const source = this.templateSource(options.template);
    return renderChatTemplate(source, messages, options.addGenerationPrompt ?? true, {
      ...this.parts.templateVariables,
      ...options.variables,
    });
  }

  /**
   * Renders the chat template and encodes it with special tokens recognised; BOS is added
   * unless the rendered text already starts with it.
   *
   * @example
   * ```ts
   * const ids = tokenizer.encodeChat([{ role: "user", content: "Hi" }], { template: "bitnet" });
   * ```
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.addChatBos(this.encode(this.applyChatTemplate(messages, options), CHAT_ENCODE_OPTIONS));
  }

  /**
   * The last step of {@link encodeChat}, for callers that encode the rendered text themselves
   * (in slices, say) with {@link CHAT_ENCODE_OPTIONS}: prepends BOS when this tokenizer adds one
   * and the template did not render it. Changes and returns `ids`.
   *
   * @example
   * ```ts
   * const text = tokenizer.applyChatTemplate(messages, { template: "plain" });
   * const ids = tokenizer.addChatBos(tokenizer.encode(text, CHAT_ENCODE_OPTIONS)); // = tokenizer.encodeChat(messages, { template: "plain" })
   * ```
   */
  addChatBos(ids: number[]): number[] {
    if (this.bosTokenId !== null && ids[0] !== this.bosTokenId && this.prefix.includes(this.bosTokenId)) ids.unshift(this.bosTokenId);
    return ids;
  }

  private templateSource(template: string | undefined): string {
    if (template === undefined) {
      if (this.chatTemplate !== null) return this.chatTemplate;
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_TEMPLATE, "the tokenizer has no chat template", {
        hint: 'Pass { template: "bitnet" }, { template: "llama3" } or { template: "plain" }, or Jinja source (@halo/engine picks one for every model it loads)',
      });
    }
    return (BUILTIN_CHAT_TEMPLATES as Record<string, string>)[template] ?? template;
  }

  /**
   * Ids that end generation: the EOS id plus the end-of-turn tokens present in the vocabulary
   * (`<|eot_id|>`, `<|end_of_text|>`, …), and `<|eom_id|>` when the chat template uses it.
   * Sorted ascending. For Llama-3 and BitNet-2B-4T: `[128001, 128009]`.
   */
  get stopTokenIds(): readonly number[] {
    const ids = new Set<number>();
    if (this.eosTokenId !== null) ids.add(this.eosTokenId);
    const names = [...END_TOKENS];
    if (this.chatTemplate?.includes("<|eom_id|>") === true) names.push("<|eom_id|>");
    for (const name of names) {
      const token = this.addedByContent.get(name);
      if (token !== undefined && token.special) ids.add(token.id);
    }
    return [...ids].sort((a, b) => a - b);
  }

  /** True for special added tokens (BOS, EOS, `<|eot_id|>`, reserved ones). */
  isSpecialToken(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * Id of a token string (byte-mapped form for vocabulary tokens, e.g. `"Ġworld"`), or null.
   *
   * @example
   * ```ts
   * tokenizer.tokenToId("<|eot_id|>"); // 128009
   * ```
   */
  tokenToId(token: string): number | null {
    return this.addedByContent.get(token)?.id ?? this.parts.model.vocab.get(token) ?? null;
  }

  /**
   * The token string of an id (byte-mapped form), or null when no token has that id.
   *
   * @example
   * ```ts
   * tokenizer.idToToken(1917); // "Ġworld"
   * ```
   */
  idToToken(id: number): string | null {
    if (!Number.isInteger(id)) return null;
    return this.addedById.get(id)?.content ?? this.parts.modelTokens[id] ?? null;
  }

  /**
   * The tokenizer as a seed `.htok` payload: every id's byte-mapped surface (UTF-8; empty for
   * ids without a token) and every merge as an `[a, b, merged]` id triple in rank order. Write it
   * with `@halo/h1b-format`'s `.htok` writer; loading it back encodes identically with the
   * default `llama3` pre-tokenizer.
   *
   * @example
   * ```ts
   * const htok = tokenizer.toHtok();
   * Tokenizer.fromPayload(htok).encode("Hello"); // same ids
   * ```
   */
  toHtok(): HtokPayload {
    if (this.bosTokenId === null || this.eosTokenId === null) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, ".htok needs BOS and EOS ids", {
        expected: "a tokenizer with bos and eos tokens",
        actual: { bos: this.bosTokenId, eos: this.eosTokenId },
      });
    }
    const tokens: Uint8Array[] = [];
    const empty = new Uint8Array(0);
    for (let id = 0; id < this.vocabSize; id++) {
      const token = this.idToToken(id);
      tokens.push(token === null ? empty : utf8(token));
    }
    const { mergeLeft, mergeRight, model } = this.parts;
    const merges = new Uint32Array(mergeLeft.length * 3);
    for (let rank = 0; rank < mergeLeft.length; rank++) {
      merges[rank * 3] = mergeLeft[rank]!;
      merges[rank * 3 + 1] = mergeRight[rank]!;
      merges[rank * 3 + 2] = model.merges.merged[rank]!;
    }
    return { kind: "htok", tokens, merges, bosTokenId: this.bosTokenId, eosTokenId: this.eosTokenId };
  }
}
