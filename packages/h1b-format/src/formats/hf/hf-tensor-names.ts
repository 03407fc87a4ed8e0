// Hugging Face BitNet tensor names (transformers BitNetForCausalLM) for halo's tensor roles.
import type { NormRole, TernaryRole } from "../../core/model.js";

/** `model.embed_tokens.weight`: `[vocab, hidden]`. */
export const HF_EMBEDDING = "model.embed_tokens.weight";
/** `model.norm.weight`: final RMSNorm `[hidden]`. */
export const HF_OUTPUT_NORM = "model.norm.weight";
/** `lm_head.weight`: untied head `[vocab, hidden]` (absent when tied). */
export const HF_LM_HEAD = "lm_head.weight";

/** Module path inside `model.layers.N.` of each ternary projection. */
export const HF_TERNARY_MODULES: Readonly<Record<TernaryRole, string>> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};

/** Module path inside `model.layers.N.` of each norm. */
export const HF_NORM_MODULES: Readonly<Record<NormRole, string>> = {
  attnNorm: "input_layernorm",
  attnSubNorm: "self_attn.attn_sub_norm",
  ffnNorm: "post_attention_layernorm",
  ffnSubNorm: "mlp.ffn_sub_norm",
};

/**
 * The safetensors name of a layer tensor, e.g. `hfLayerTensor(3, "q")` is
 * `model.layers.3.self_attn.q_proj.weight`; `suffix` `weight_scale` names the packed scale.
 *
 * @example
 * ```ts
 * hfLayerTensor(0, "down", "weight_scale"); // "model.layers.0.mlp.down_proj.weight_scale"
 * ```
 */
export function hfLayerTensor(layer: number, role: TernaryRole | NormRole, suffix: "weight" | "weight_scale" = "weight"): string {
  const module = role in HF_TERNARY_MODULES ? HF_TERNARY_MODULES[role as TernaryRole] : HF_NORM_MODULES[role as NormRole];
  return `model.layers.${layer}.${module}.${suffix}`;
}
