// The Llama-3-style tokenizer.json object (byte-level BPE, Llama-3 split regex) that halo writes.
import { LLAMA3_SPLIT_PATTERN } from "../synth/bpe-trainer.js";

/** An `added_tokens` entry of tokenizer.json. */
export interface AddedTokenJson {
  readonly id: number;
  readonly content: string;
  readonly single_word: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly normalized: boolean;
  readonly special: boolean;
}

/**
 * Builds a tokenizer.json object for a byte-level BPE vocabulary with the Llama-3 pre-tokenizer
 * (the layout Hugging Face `tokenizers` and halo's tokenizer read). With `bos`, the post-processor
 * prepends it (TemplateProcessing); without, it is ByteLevel. Synthetic models and
 * `packages/model-tiny/train/tokenizer.mjs` (the trained tiny model's tokenizer) write it.
 *
 * @example
 * ```ts
 * const json = llama3TokenizerJson({ added: [], vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"], bos: null });
 * writeFileSync("tokenizer.json", JSON.stringify(json));
 * ```
 */
export function llama3TokenizerJson(parts: {
  readonly added: readonly AddedTokenJson[];
  readonly vocab: Readonly<Record<string, number>>;
  readonly merges: readonly string[];
  readonly bos: { readonly content: string; readonly id: number } | null;
}): Record<string, unknown> {
  const { bos } = parts;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: parts.added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor:
      bos !== null
        ? {
            type: "TemplateProcessing",
            single: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos.content, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: bos.content, type_id: 1 } },
              { Sequence: { id: "B", type_id: 1 } },
            ],
            special_tokens: { [bos.content]: { id: bos.content, ids: [bos.id], tokens: [bos.content] } },
          }
        : { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab: parts.vocab,
      merges: [...parts.merges],
    },
  };
}
