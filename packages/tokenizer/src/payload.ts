// The structural tokenizer payload shapes (mirrors h1b-format's TokenizerPayload; this package is a leaf).

/**
 * The tokenizer exactly as a model file carries it. Structurally identical to
 * `TokenizerPayload` of `@halo/h1b-format`, so a loaded model's `tokenizer` field can be passed
 * straight to {@link Tokenizer.fromPayload} without this package depending on the format package.
 *
 * @example
 * ```ts
 * const payload: TokenizerPayload = { kind: "hf-json", tokenizerJson, tokenizerConfigJson: null };
 * const tokenizer = Tokenizer.fromPayload(payload);
 * ```
 */
export type TokenizerPayload = HfJsonPayload | GgufTokenizerPayload | HtokPayload;

/** Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) text. */
export interface HfJsonPayload {
  readonly kind: "hf-json";
  readonly tokenizerJson: string;
  readonly tokenizerConfigJson: string | null;
}

/** GGUF `tokenizer.ggml.*` metadata. */
export interface GgufTokenizerPayload {
  readonly kind: "gguf";
  /** `tokenizer.ggml.model`, e.g. `gpt2`. */
  readonly model: string;
  /** `tokenizer.ggml.pre`, or null when absent (Microsoft's 2B-4T GGUF has none). */
  readonly pre: string | null;
  readonly tokens: readonly string[];
  readonly merges: readonly string[];
  readonly tokenTypes: readonly number[] | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly addBosToken: boolean | null;
}

/** Seed `.htok`: byte-mapped surfaces and id-triple merges. */
export interface HtokPayload {
  readonly kind: "htok";
  /** UTF-8 bytes of each token's byte-mapped surface; id = index. */
  readonly tokens: readonly Uint8Array[];
  /** `[a, b, merged]` ids; rank = index. */
  readonly merges: Uint32Array;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}
