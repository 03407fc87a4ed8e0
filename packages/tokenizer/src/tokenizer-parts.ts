// The assembled pieces a Tokenizer runs on, produced by each loader (hf-json, gguf, htok).
import type { AddedToken } from "./added-tokens.js";
import type { BpeModel } from "./bpe-model.js";
import type { NormalizeFn } from "./normalizer.js";
import type { SpecialWrap } from "./post-processor.js";
import type { PreTokenizer } from "./pre-tokenizer.js";

/** @internal */
export interface TokenizerParts {
  readonly model: BpeModel;
  /** Merge list by rank: `[left, right]` ids (for `.htok` export). */
  readonly mergeLeft: Int32Array;
  readonly mergeRight: Int32Array;
  /** Model vocabulary by id (holes where only added tokens live). */
  readonly modelTokens: readonly (string | undefined)[];
  readonly addedTokens: readonly AddedToken[];
  readonly normalizer: NormalizeFn | null;
  readonly preTokenizer: PreTokenizer;
  /** `byte-level`: Hugging Face ByteLevel decoder; `join`: no decoder (tokens joined by spaces). */
  readonly decoder: "byte-level" | "join";
  readonly wrap: SpecialWrap;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly chatTemplate: string | null;
  /** Extra variables for chat templates (`bos_token`, `eos_token`, …). */
  readonly templateVariables: Readonly<Record<string, string>>;
}
