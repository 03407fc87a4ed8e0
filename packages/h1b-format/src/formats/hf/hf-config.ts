// config.json / generation_config.json of a Hugging Face BitNet snapshot <-> ModelConfig.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { validateConfig } from "../../core/config.js";
import type { Activation, ModelConfig } from "../../core/model.js";

/** Which weights a snapshot holds: packed uint8 + weight_scale, or bf16 master weights. */
export type HfVariant = "packed" | "bf16";

type Json = Record<string, unknown>;

function bad(path: string, field: string, expected: string, actual: unknown): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_METADATA, `config field ${field} has the wrong type`, {
    path,
    field,
    expected,
    actual: actual === undefined ? "missing" : actual,
    hint: "Fix config.json or download the snapshot again",
  });
}

function unsupported(path: string, field: string, summary: string, expected: string, actual: unknown, hint: string): HaloError {
  return new HaloError(H1bErrorCode.H1B_UNSUPPORTED, summary, { path, field, expected, actual, hint });
}

function integer(json: Json, key: string, path: string, fallback?: number): number {
  const value = json[key];
  if ((value === undefined || value === null) && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw bad(path, key, "a whole number", value);
  return value;
}

function real(json: Json, key: string, path: string, fallback: number): number {
  const value = json[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) throw bad(path, key, "a number", value);
  return value;
}

function tokenIds(value: unknown, path: string, field: string): number[] | null {
  if (value === undefined || value === null) return null;
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) throw bad(path, field, "a token id or a list of token ids", value);
  }
  return list as number[];
}

/**
 * Maps a BitNet `config.json` (and optional `generation_config.json`) to a {@link ModelConfig}.
 *
 * Defaults follow transformers' `BitNetConfig` for optional keys (`num_key_value_heads` =
 * `num_attention_heads`, `max_position_embeddings` 2048, `rope_theta` 500000, `rms_norm_eps`
 * 1e-5, `hidden_act` relu2, `tie_word_embeddings` false); `head_dim` is derived as
 * `hidden_size / num_attention_heads` when absent. BOS/EOS come from generation_config.json
 * when it has them (EOS may be a list), else from config.json; missing ids stay unknown
 * (null / empty) rather than defaulting to Llama-3's.
 *
 * Throws `H1B_UNSUPPORTED` for another `model_type`, `rope_scaling`, biases, an activation other
 * than relu2/silu, or a quantisation config whose linear class divides by `weight_scale`;
 * `H1B_BAD_METADATA` for wrong types; `H1B_BAD_DIMENSION` for inconsistent sizes.
 *
 * @example
 * ```ts
 * const config = parseHfConfig(JSON.parse(configText), null, "config.json");
 * config.activation; // "relu2"
 * ```
 */
export function parseHfConfig(json: Json, generation: Json | null, path: string): ModelConfig {
  const modelType = json["model_type"];
  if (modelType !== "bitnet") {
    throw unsupported(
      path,
      "model_type",
      "not a BitNet checkpoint",
      "bitnet",
      modelType ?? "missing",
      "halo reads BitNet b1.58 snapshots (model_type bitnet) only",
    );
  }
  const ropeScaling = json["rope_scaling"];
  if (ropeScaling !== undefined && ropeScaling !== null) {
    throw unsupported(path, "rope_scaling", "RoPE scaling is not supported", "null or absent", ropeScaling, "halo runs plain RoPE only");
  }
  let ropeTheta = real(json, "rope_theta", path, 500000);
  const ropeParameters = json["rope_parameters"];
  if (ropeParameters !== undefined && ropeParameters !== null) {
    if (typeof ropeParameters !== "object" || Array.isArray(ropeParameters)) throw bad(path, "rope_parameters", "an object", ropeParameters);
    const type = (ropeParameters as Json)["rope_type"];
    if (type !== undefined && type !== "default") {
      throw unsupported(path, "rope_parameters.rope_type", "RoPE scaling is not supported", "default", type, "halo runs plain RoPE only");
    }
    ropeTheta = real(ropeParameters as Json, "rope_theta", path, ropeTheta);
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (json[key] === true) {
      throw unsupported(path, key, "linear biases are not supported", "false", true, "BitNet b1.58 has no biases; this checkpoint is a different architecture");
    }
  }
  const act = json["hidden_act"] ?? "relu2";
  let activation: Activation;
  if (act === "relu2") activation = "relu2";
  else if (act === "silu" || act === "swish") activation = "silu";
  else throw unsupported(path, "hidden_act", "unsupported FFN activation", "relu2 or silu", act, "halo runs ReLU² (2B-4T) and SiLU (1bitLLM) FFNs");
  const quantization = json["quantization_config"];
  if (quantization !== undefined && quantization !== null) {
    if (typeof quantization !== "object" || Array.isArray(quantization)) throw bad(path, "quantization_config", "an object", quantization);
    const { quant_method: method, linear_class: linearClass } = quantization as Json;
    if (method !== undefined && method !== "bitnet") {
      throw unsupported(path, "quantization_config.quant_method", "unsupported quantisation method", "bitnet", method, "halo reads BitNet ternary checkpoints");
    }
    if (linearClass !== undefined && linearClass !== "autobitlinear") {
      throw unsupported(
        path,
        "quantization_config.linear_class",
        "this linear class divides by weight_scale",
        "autobitlinear (weights multiply by weight_scale)",
        linearClass,
        "Only the AutoBitLinear convention of bitnet-b1.58-2B-4T is supported",
      );
    }
  }
  const tie = json["tie_word_embeddings"] ?? false;
  if (typeof tie !== "boolean") throw bad(path, "tie_word_embeddings", "true or false", tie);
  const hiddenSize = integer(json, "hidden_size", path);
  const numHeads = integer(json, "num_attention_heads", path);
  const headDimValue = json["head_dim"];
  let headDim: number;
  if (headDimValue === undefined || headDimValue === null) {
    if (numHeads <= 0 || hiddenSize % numHeads !== 0) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "hidden_size is not a multiple of num_attention_heads", {
        path,
        field: "num_attention_heads",
        expected: `a divisor of hidden_size=${hiddenSize} (or an explicit head_dim)`,
        actual: numHeads,
      });
    }
    headDim = hiddenSize / numHeads;
  } else {
    headDim = integer(json, "head_dim", path);
  }
  const genBos = generation === null ? null : tokenIds(generation["bos_token_id"], path, "generation_config.bos_token_id");
  const genEos = generation === null ? null : tokenIds(generation["eos_token_id"], path, "generation_config.eos_token_id");
  const bos = genBos ?? tokenIds(json["bos_token_id"], path, "bos_token_id");
  const eos = genEos ?? tokenIds(json["eos_token_id"], path, "eos_token_id") ?? [];
  if (bos !== null && bos.length !== 1) throw bad(path, "bos_token_id", "one token id", bos);
  const config: ModelConfig = {
    architecture: "bitnet",
    hiddenSize,
    intermediateSize: integer(json, "intermediate_size", path),
    numLayers: integer(json, "num_hidden_layers", path),
    numHeads,
    numKvHeads: integer(json, "num_key_value_heads", path, numHeads),
    headDim,
    vocabSize: integer(json, "vocab_size", path),
    maxPositionEmbeddings: integer(json, "max_position_embeddings", path, 2048),
    ropeTheta,
    rmsNormEps: real(json, "rms_norm_eps", path, 1e-5),
    activation,
    tiedEmbeddings: tie,
    bosTokenId: bos === null ? null : bos[0]!,
    eosTokenIds: [...new Set(eos)],
    hadamardRotated: false,
  };
  return validateConfig(config, path);
}

/**
 * The `config.json` object halo writes for a model: the keys of microsoft/bitnet-b1.58-2B-4T,
 * `quantization_config` in offline mode for the packed variant and online mode (ternarise at
 * load) for bf16 master weights. `head_dim` is written only when it is not
 * `hidden_size / num_attention_heads`. EOS is the first id; the full list goes to
 * generation_config.json.
 *
 * @example
 * ```ts
 * writeFileSync("config.json", JSON.stringify(toHfConfig(model.config, "packed"), null, 2));
 * ```
 */
export function toHfConfig(config: ModelConfig, variant: HfVariant): Json {
  const json: Json = {
    architectures: ["BitNetForCausalLM"],
    model_type: "bitnet",
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
  };
  if (config.headDim * config.numHeads !== config.hiddenSize) json["head_dim"] = config.headDim;
  Object.assign(json, {
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    rms_norm_eps: config.rmsNormEps,
    hidden_act: config.activation,
    tie_word_embeddings: config.tiedEmbeddings,
    attention_bias: false,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds[0] ?? null,
    torch_dtype: "bfloat16",
    quantization_config: {
      quant_method: "bitnet",
      linear_class: "autobitlinear",
      quantization_mode: variant === "packed" ? "offline" : "online",
    },
  });
  return json;
}

/**
 * The `generation_config.json` object: BOS and the full EOS list (an int when there is one).
 *
 * @example
 * ```ts
 * toHfGenerationConfig(shapeConfig("bitnet-2b-4t")).eos_token_id; // [128001, 128009]
 * ```
 */
export function toHfGenerationConfig(config: ModelConfig): Json {
  const eos = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : [...config.eosTokenIds];
  return { _from_model_config: true, bos_token_id: config.bosTokenId, eos_token_id: eos ?? null };
}
