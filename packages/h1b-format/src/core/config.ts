// Config validation and the named shapes (2B-4T and tiny test shapes).
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { Activation, ModelConfig } from "./model.js";

/**
 * Checks a config is one halo can run: positive whole dimensions, heads dividing the width,
 * query heads a multiple of KV heads, even head width for RoPE. Throws `H1B_BAD_DIMENSION`.
 */
export function validateConfig(config: ModelConfig, path = "<config>"): ModelConfig {
  const positive: Array<[string, number]> = [
    ["hiddenSize", config.hiddenSize],
    ["intermediateSize", config.intermediateSize],
    ["numLayers", config.numLayers],
    ["numHeads", config.numHeads],
    ["numKvHeads", config.numKvHeads],
    ["headDim", config.headDim],
    ["vocabSize", config.vocabSize],
    ["maxPositionEmbeddings", config.maxPositionEmbeddings],
  ];
  for (const [field, value] of positive) {
    if (!Number.isSafeInteger(value) || value <= 0 || value > 2 ** 31) {
      throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "model dimension out of range", {
        path,
        field,
        expected: "a whole number in [1, 2^31]",
        actual: value,
      });
    }
  }
  if (config.numHeads % config.numKvHeads !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "query heads must be a multiple of key/value heads", {
      path,
      field: "numKvHeads",
      expected: `a divisor of numHeads=${config.numHeads}`,
      actual: config.numKvHeads,
    });
  }
  if (config.headDim % 2 !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "RoPE needs an even head width", {
      path,
      field: "headDim",
      expected: "an even number",
      actual: config.headDim,
    });
  }
  if (!(config.ropeTheta > 0) || !Number.isFinite(config.ropeTheta)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "rope theta must be positive", {
      path,
      field: "ropeTheta",
      expected: "> 0",
      actual: config.ropeTheta,
    });
  }
  if (!(config.rmsNormEps > 0) || !Number.isFinite(config.rmsNormEps)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "RMSNorm epsilon must be positive", {
      path,
      field: "rmsNormEps",
      expected: "> 0",
      actual: config.rmsNormEps,
    });
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
