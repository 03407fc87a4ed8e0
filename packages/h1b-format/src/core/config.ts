// Config validation and the named shapes (2B-4T and tiny test shapes).
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { Activation, ModelConfig } from "./model.js";

/**
 * The ranges {@link validateConfig} accepts for each config field, every format alike. They are
 * wide enough for every released Llama-style model (and 10–100× beyond) and narrow enough that a
 * corrupt or hostile header cannot make a loader allocate without bound or run with numerics that
 * silently produce garbage (an RMSNorm epsilon of 9.2e18 flattens every activation).
 *
 * @example
 * ```ts
 * if (eps > CONFIG_LIMITS.rmsNormEps.max) console.error("epsilon out of range");
 * ```
 */
export const CONFIG_LIMITS = {
  /** Residual width (2560 for 2B-4T; 16384 for the largest Llama). */
  hiddenSize: { min: 1, max: 65_536 },
  /** FFN width (6912 for 2B-4T; 53248 for Llama-3 405B). */
  intermediateSize: { min: 1, max: 1_048_576 },
  /** Decoder layers (30 for 2B-4T; 126 for Llama-3 405B). */
  numLayers: { min: 1, max: 1024 },
  /** Query heads (20 for 2B-4T). */
  numHeads: { min: 1, max: 1024 },
  /** Key/value heads: at most numHeads, and dividing it. */
  numKvHeads: { min: 1, max: 1024 },
  /** Per-head width, even for RoPE (128 for 2B-4T). */
  headDim: { min: 2, max: 1024 },
  /** Vocabulary (128256 for 2B-4T; 262144 for Gemma 3). */
  vocabSize: { min: 1, max: 4_194_304 },
  /** Trained context length (4096 for 2B-4T). */
  maxPositionEmbeddings: { min: 1, max: 16_777_216 },
  /** RoPE base θ (500000 for 2B-4T; 10000 for Llama 2; ≤ 1e8 in released long-context models). */
  ropeTheta: { min: 1, max: 1e10 },
  /** RMSNorm epsilon (1e-5 for 2B-4T; 1e-6 for many others). */
  rmsNormEps: { min: 1e-12, max: 0.1 },
  /** Elements of one tensor (the embedding: vocabSize × hiddenSize; 3.3e8 for 2B-4T). */
  tensorElements: { min: 1, max: 2 ** 34 },
} as const;

type LimitField = keyof typeof CONFIG_LIMITS;

const CONFIG_HINT = "The file's header is corrupt or was written by a tool that does not fill this field; convert or download the model again";

function outOfRange(path: string, field: string, expected: string, actual: unknown, summary: string): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, summary, { path, field, expected, actual, hint: CONFIG_HINT });
}

/**
 * Checks a config is one halo can run: every field inside {@link CONFIG_LIMITS} (whole numbers
 * for dimensions), heads dividing the width, query heads a multiple of KV heads, even head width
 * for RoPE, no tensor above `tensorElements`, BOS/EOS ids inside the vocabulary. Throws
 * `H1B_BAD_DIMENSION` naming the field, the range expected, the value found and what to do.
 *
 * @example
 * ```ts
 * validateConfig({ ...shapeConfig("tiny"), rmsNormEps: 9.2e18 }, "m.halo"); // throws H1B_BAD_DIMENSION (field rmsNormEps)
 * ```
 */
export function validateConfig(config: ModelConfig, path = "<config>"): ModelConfig {
  const whole: LimitField[] = ["hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "vocabSize", "maxPositionEmbeddings"];
  for (const field of whole) {
    const value = config[field as keyof ModelConfig] as number;
    const { min, max } = CONFIG_LIMITS[field];
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw outOfRange(path, field, `a whole number in [${min}, ${max}]`, value, "model dimension out of range");
    }
  }
  if (config.numHeads % config.numKvHeads !== 0) {
    throw outOfRange(path, "numKvHeads", `a divisor of numHeads=${config.numHeads}`, config.numKvHeads, "query heads must be a multiple of key/value heads");
  }
  if (config.headDim % 2 !== 0) {
    throw outOfRange(path, "headDim", "an even number", config.headDim, "RoPE needs an even head width");
  }
  for (const field of ["ropeTheta", "rmsNormEps"] as const) {
    const value = config[field];
    const { min, max } = CONFIG_LIMITS[field];
    if (typeof value !== "number" || !(value >= min && value <= max)) {
      throw outOfRange(path, field, `a number in [${min}, ${max}]`, value, field === "ropeTheta" ? "rope theta out of range" : "RMSNorm epsilon out of range");
    }
  }
  const tensors: Array<[string, number, number]> = [
    ["vocabSize × hiddenSize (embedding)", config.vocabSize, config.hiddenSize],
    ["intermediateSize × hiddenSize (FFN)", config.intermediateSize, config.hiddenSize],
    ["numHeads·headDim × hiddenSize (attention)", config.numHeads * config.headDim, config.hiddenSize],
  ];
  for (const [field, a, b] of tensors) {
    if (a * b > CONFIG_LIMITS.tensorElements.max) {
      throw outOfRange(path, field, `at most ${CONFIG_LIMITS.tensorElements.max} elements in one tensor`, a * b, "a tensor the config implies is too large");
    }
  }
  const ids: Array<[string, number | null]> = [
    ["bosTokenId", config.bosTokenId],
    ...config.eosTokenIds.map((id, i): [string, number] => [`eosTokenIds[${i}]`, id]),
  ];
  for (const [field, id] of ids) {
    if (id !== null && (!Number.isSafeInteger(id) || id < 0 || id >= config.vocabSize)) {
      throw outOfRange(path, field, `a token id in [0, ${config.vocabSize}) (vocabSize)`, id, "special token id outside the vocabulary");
    }
  }
  if (config.activation !== "relu2" && config.activation !== "silu") {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "unsupported FFN activation", {
      path,
      field: "activation",
      expected: "relu2 or silu",
      actual: config.activation,
    });
  }
  return config;
}

/** Names of the built-in shapes. */
export type ShapeName = "bitnet-2b-4t" | "tiny" | "tiny-gqa";

/** The config of a named shape, with the given activation. */
export function shapeConfig(shape: ShapeName, activation: Activation = "relu2"): ModelConfig {
  const base = {
    architecture: "bitnet" as const,
    ropeTheta: 500000,
    rmsNormEps: 1e-5,
    activation,
    tiedEmbeddings: true,
    hadamardRotated: false,
  };
  switch (shape) {
    case "bitnet-2b-4t":
      return {
        ...base,
        hiddenSize: 2560,
        intermediateSize: 6912,
        numLayers: 30,
        numHeads: 20,
        numKvHeads: 5,
        headDim: 128,
        vocabSize: 128256,
        maxPositionEmbeddings: 4096,
        bosTokenId: 128000,
        eosTokenIds: [128001, 128009],
      };
    case "tiny":
      // Multiples of 256 everywhere so every GGUF ternary type (256-blocks) and Sherry (128) can hold it.
      return {
        ...base,
        hiddenSize: 256,
        intermediateSize: 512,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 64,
        vocabSize: 512,
        maxPositionEmbeddings: 512,
        bosTokenId: 512 - 6,
        eosTokenIds: [512 - 5, 512 - 2],
      };
    case "tiny-gqa":
      return {
        ...base,
        hiddenSize: 512,
        intermediateSize: 768,
        numLayers: 3,
        numHeads: 8,
        numKvHeads: 2,
        headDim: 64,
        vocabSize: 1024,
        maxPositionEmbeddings: 1024,
        bosTokenId: 1024 - 6,
        eosTokenIds: [1024 - 5, 1024 - 2],
      };
  }
}
