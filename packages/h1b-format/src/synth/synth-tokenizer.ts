// Builds a Llama-3-style tokenizer.json (byte-level BPE, Llama-3 split regex, special tokens) for synthetic models.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { llama3TokenizerJson, type AddedTokenJson } from "../core/llama3-tokenizer-json.js";
import { byteToUnicode, trainByteLevelBpe } from "./bpe-trainer.js";

/** Special tokens of a synthetic vocabulary, placed at its top like Llama-3's. */
export const SYNTH_SPECIAL_TOKENS = [
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|eot_id|>",
  "<|reserved_special_token_0|>",
] as const;

/** The BitNet-b1.58-2B-4T chat template (`Role: content<|eot_id|>` turns, then `Assistant: `). */
export const BITNET_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] | trim }}<|eot_id|>{% endfor %}" +
  "{% if add_generation_prompt %}Assistant: {% endif %}";

/**
 * The `added_tokens` entries of the {@link SYNTH_SPECIAL_TOKENS} for a vocabulary, at {@link synthSpecialIds}
 * (special, not normalized): what synthetic models and the trained tiny model's tokenizer.json list.
 *
 * @example
 * ```ts
 * synthAddedTokens(4096)[4]; // { id: 4094, content: "<|eot_id|>", special: true, … }
 * ```
 */
export function synthAddedTokens(vocabSize: number): AddedTokenJson[] {
  const ids = synthSpecialIds(vocabSize);
  return SYNTH_SPECIAL_TOKENS.map((content, i) => ({
    id: ids[i]!,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

/** Result of {@link synthTokenizerJson}. */
export interface SynthTokenizer {
  /** tokenizer.json text. */
  readonly tokenizerJson: string;
  /** tokenizer_config.json text (bos/eos, chat template). */
  readonly tokenizerConfigJson: string;
}

/**
 * Ids of the {@link SYNTH_SPECIAL_TOKENS} for a vocabulary: Llama-3's (128000, 128001, 128006,
 * 128007, 128009, 128002) when the vocabulary is Llama-3 sized, else the last six ids in order.
 */
export function synthSpecialIds(vocabSize: number): readonly number[] {
  if (vocabSize >= 128256) return [128000, 128001, 128006, 128007, 128009, 128002];
  return SYNTH_SPECIAL_TOKENS.map((_, i) => vocabSize - SYNTH_SPECIAL_TOKENS.length + i);
}

/**
 * A working byte-level BPE tokenizer of exactly `vocabSize` ids: 256 byte tokens, merges trained
 * on a fixed sample, unreachable `<|filler_N|>` tokens where the sample runs out of pairs, and the
 * six {@link SYNTH_SPECIAL_TOKENS} at {@link synthSpecialIds}. The post-processor prepends
 * `<|begin_of_text|>`.
 */
export function synthTokenizerJson(vocabSize: number): SynthTokenizer {
  const specials = SYNTH_SPECIAL_TOKENS.length;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 256 + specials) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "synthetic tokenizer needs room for 256 byte tokens and 6 specials", {
      field: "vocabSize",
      expected: `≥ ${256 + specials}`,
      actual: vocabSize,
    });
  }
  const vocab: Record<string, number> = {};
  let next = 0;
  for (const symbol of byteToUnicode()) vocab[symbol] = next++;
  const specialIds = synthSpecialIds(vocabSize);
  const reserved = new Set(specialIds);
  const regular = vocabSize - specials;
  const skipReserved = (): void => {
    while (reserved.has(next)) next++;
  };
  const merges: string[] = [];
  for (const merge of trainByteLevelBpe(Math.min(regular - 256, 4000))) {
    const merged = merge.replace(" ", "");
    if (vocab[merged] !== undefined) continue;
    skipReserved();
    vocab[merged] = next++;
    merges.push(merge);
  }
  for (skipReserved(); next < vocabSize; next++, skipReserved()) {
    if (next < vocabSize) vocab[`<|filler_${next}|>`] = next;
  }
  const added = synthAddedTokens(vocabSize);
  for (const token of added) vocab[token.content] = token.id;
  const bos = added[0]!;
  const tokenizer = llama3TokenizerJson({ added, vocab, merges, bos: { content: bos.content, id: bos.id } });
  const config = {
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    add_bos_token: true,
    chat_template: BITNET_CHAT_TEMPLATE,
    model_max_length: 4096,
  };
  return { tokenizerJson: JSON.stringify(tokenizer), tokenizerConfigJson: JSON.stringify(config, null, 2) };
}
