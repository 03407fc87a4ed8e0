// Checks a backend runs before taking weights: config, tensor shapes and load options, with typed errors.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { BackendCapabilities, LoadOptions } from "./backend.js";
import type { ResolvedLoadOptions } from "./loaded-model.js";
import type { ModelWeights, WeightsConfig, WeightsFloatTensor, WeightsTernaryTensor } from "./weights.js";

const TERNARY_ROLES = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const NORM_ROLES = ["attnNorm", "attnSubNorm", "ffnNorm", "ffnSubNorm"] as const;

function unsupported(field: string, summary: string, expected: unknown, actual: unknown, hint?: string): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, summary, {
    field,
    expected,
    actual,
    ...(hint === undefined ? {} : { hint }),
  });
}

function badWeights(field: string, summary: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, summary, {
    field,
    expected,
    actual,
    hint: "The weights do not match their config; re-read or re-convert the model file",
  });
}

function badOption(field: string, summary: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, summary, { field, expected, actual });
}

/**
 * Validates weights and options against a backend's capabilities and resolves option defaults.
 * Checks the architecture, activation, head layout (heads divide, even head width), every
 * tensor's shape and scale count, the head dtype, and `contextLength` / `maxSequences` /
 * `kvDtype` / `activationQuant`. Throws `KERNELS_UNSUPPORTED_CONFIG`, `KERNELS_BAD_WEIGHTS` or
 * `KERNELS_BAD_OPTION`; backends call it first so they all refuse the same things the same way.
 *
 * @example
 * ```ts
 * const resolved = validateLoad(weights, options, this.capabilities());
 * ```
 */
export function validateLoad(weights: ModelWeights, options: LoadOptions, capabilities: BackendCapabilities): ResolvedLoadOptions {
  const c = weights.config;
  if (!capabilities.architectures.includes(c.architecture)) {
    throw unsupported("architecture", "unsupported architecture", capabilities.architectures.join(" or "), c.architecture);
  }
  if (!capabilities.activations.includes(c.activation)) {
    throw unsupported("activation", "unsupported FFN activation", capabilities.activations.join(" or "), c.activation);
  }
  if (c.hadamardRotated === true) {
    throw unsupported("hadamardRotated", "Hadamard-rotated (BitNet v2) weights are not supported", false, true);
  }
  const dims: Array<[string, number]> = [
    ["hiddenSize", c.hiddenSize],
    ["intermediateSize", c.intermediateSize],
    ["numLayers", c.numLayers],
    ["numHeads", c.numHeads],
    ["numKvHeads", c.numKvHeads],
    ["headDim", c.headDim],
    ["vocabSize", c.vocabSize],
    ["maxPositionEmbeddings", c.maxPositionEmbeddings],
  ];
  for (const [field, value] of dims) {
    if (!Number.isSafeInteger(value) || value <= 0) throw unsupported(field, "model dimension must be a positive whole number", "> 0", value);
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw unsupported("numKvHeads", "query heads must be a multiple of key/value heads", `a divisor of numHeads=${c.numHeads}`, c.numKvHeads);
  }
  if (c.headDim % 2 !== 0) throw unsupported("headDim", "RoPE needs an even head width", "an even number", c.headDim);
  if (c.headDim > capabilities.maxHeadDim) {
    throw unsupported("headDim", "head width exceeds what the attention kernels handle", `≤ ${capabilities.maxHeadDim}`, c.headDim);
  }
  if (!(c.ropeTheta > 0) || !Number.isFinite(c.ropeTheta)) throw unsupported("ropeTheta", "RoPE θ must be positive", "> 0", c.ropeTheta);
  if (!(c.rmsNormEps > 0) || !Number.isFinite(c.rmsNormEps)) throw unsupported("rmsNormEps", "RMSNorm epsilon must be positive", "> 0", c.rmsNormEps);

  const resolved = resolveLoadOptions(c, options, capabilities);
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  if (resolved.activationQuant === "q8k-block") {
    for (const [field, width] of [
      ["hiddenSize", c.hiddenSize],
      ["numHeads·headDim", qDim],
      ["intermediateSize", c.intermediateSize],
    ] as const) {
      if (width % 256 !== 0) {
        throw unsupported(
          field,
          "q8k-block activations need every matmul width to be a multiple of 256",
          "a multiple of 256",
          width,
          "Load with activationQuant 'per-token'",
        );
      }
    }
  }

  if (weights.layers.length !== c.numLayers) throw badWeights("layers", "layer count differs from config.numLayers", c.numLayers, weights.layers.length);
  const floatShape = (field: string, tensor: WeightsFloatTensor, shape: readonly number[]): void => {
    if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
      throw badWeights(field, "tensor has the wrong shape", shape, tensor.shape);
    }
    if (capabilities.floatDtypes !== "any" && !capabilities.floatDtypes.includes(tensor.dtype)) {
      throw unsupported(field, "unsupported float tensor dtype", capabilities.floatDtypes.join(" or "), tensor.dtype);
    }
  };
  const ternaryShape = (field: string, tensor: WeightsTernaryTensor, rows: number, cols: number): void => {
    if (tensor.rows !== rows || tensor.cols !== cols) throw badWeights(field, "ternary tensor has the wrong shape", [rows, cols], [tensor.rows, tensor.cols]);
    const packings = capabilities.repackedPackings;
    if (!capabilities.nativePackings.includes(tensor.packing) && packings !== "any" && !packings.includes(tensor.packing)) {
      throw unsupported(field, "unsupported ternary packing", [...capabilities.nativePackings, ...packings].join(", "), tensor.packing);
    }
    const s = tensor.scale;
    if (s.kind === "tensor") {
      if (!Number.isFinite(s.value)) throw badWeights(`${field}.scale`, "weight scale must be finite", "a finite number", s.value);
      return;
    }
    if (s.kind === "block" && (!Number.isSafeInteger(s.blockSize) || s.blockSize <= 0 || cols % s.blockSize !== 0)) {
      throw badWeights(`${field}.scale.blockSize`, "block scale size must divide the row width", `a divisor of ${cols}`, s.blockSize);
    }
    const expected = s.kind === "row" ? rows : (rows * cols) / s.blockSize;
    if (s.values.length !== expected) throw badWeights(`${field}.scale`, "wrong number of weight scales", expected, s.values.length);
  };
  floatShape("tokenEmbedding", weights.tokenEmbedding, [c.vocabSize, c.hiddenSize]);
  floatShape("outputNorm", weights.outputNorm, [c.hiddenSize]);
  if (!c.tiedEmbeddings) {
    if (weights.lmHead === null) throw badWeights("lmHead", "untied model without an LM head tensor", "a [vocab, hidden] tensor", null);
    floatShape("lmHead", weights.lmHead, [c.vocabSize, c.hiddenSize]);
  }
  const normLengths = { attnNorm: c.hiddenSize, attnSubNorm: qDim, ffnNorm: c.hiddenSize, ffnSubNorm: c.intermediateSize };
  const shapes = {
    q: [qDim, c.hiddenSize],
    k: [kvDim, c.hiddenSize],
    v: [kvDim, c.hiddenSize],
    o: [c.hiddenSize, qDim],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    down: [c.hiddenSize, c.intermediateSize],
  } as const;
  weights.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) floatShape(`layers[${l}].${role}`, layer[role], [normLengths[role]]);
    for (const role of TERNARY_ROLES) ternaryShape(`layers[${l}].${role}`, layer[role], shapes[role][0], shapes[role][1]);
  });
  return resolved;
}

/**
 * Resolves load options to their defaults and checks them against a model config and a backend's
 * capabilities: `contextLength` in `[1, maxPositionEmbeddings]`, `maxSequences` in
 * `[1, capabilities.maxSequences]`, a `kvDtype` and `activationQuant` the backend lists. Throws
 * `KERNELS_BAD_OPTION`. {@link validateLoad} calls it; `estimateMemory` implementations call it to
 * refuse the same options a load would.
 *
 * @example
 * ```ts
 * const { contextLength, maxSequences, kvDtype } = resolveLoadOptions(config, options, backend.capabilities());
 * ```
 */
export function resolveLoadOptions(c: WeightsConfig, options: LoadOptions, capabilities: BackendCapabilities): ResolvedLoadOptions {
  const resolved: ResolvedLoadOptions = {
    contextLength: options.contextLength,
    maxSequences: options.maxSequences ?? 1,
    kvDtype: options.kvDtype ?? "f32",
    activationQuant: options.activationQuant ?? "per-token",
  };
  if (!Number.isSafeInteger(resolved.contextLength) || resolved.contextLength < 1 || resolved.contextLength > c.maxPositionEmbeddings) {
    throw badOption("contextLength", "contextLength out of range", `a whole number in [1, ${c.maxPositionEmbeddings}]`, resolved.contextLength);
  }
  if (!Number.isSafeInteger(resolved.maxSequences) || resolved.maxSequences < 1 || resolved.maxSequences > capabilities.maxSequences) {
    throw badOption("maxSequences", "maxSequences out of range", `a whole number in [1, ${capabilities.maxSequences}]`, resolved.maxSequences);
  }
  if (!capabilities.kvDtypes.includes(resolved.kvDtype)) {
    throw badOption("kvDtype", "unsupported KV cache dtype", capabilities.kvDtypes.join(" or "), resolved.kvDtype);
  }
  if (!capabilities.activationQuants.includes(resolved.activationQuant)) {
    throw badOption("activationQuant", "unsupported activation quantisation", capabilities.activationQuants.join(" or "), resolved.activationQuant);
  }
  return resolved;
}
