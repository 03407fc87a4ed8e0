// readGguf: a GGUF file (llama.cpp `bitnet` or Microsoft `bitnet-b1.58`) as a lazy HaloModel.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { fileSource, memorySource, type ByteSource } from "../../core/byte-source.js";
import { validateConfig } from "../../core/config.js";
import {
  NORM_ROLES,
  TERNARY_ROLES,
  normLength,
  ternaryShape,
  type Activation,
  type FloatTensor,
  type HaloModel,
  type LayerTensors,
  type ModelConfig,
  type NormRole,
  type TernaryRole,
  type TernaryScale,
  type TernaryTensor,
  type TokenizerPayload,
} from "../../core/model.js";
import { floatTensor, lazyTernaryTensor } from "../../core/tensors.js";
import { ternaryCodec } from "../../codecs/registry.js";
import { QK_K, tqBlockScales } from "../../codecs/ggml.js";
import { readGgufHeader, type GgufEntry, type GgufHeader, type GgufTensorInfo, type GgufValue } from "./gguf-header.js";
import { GgufValueType } from "./gguf-types.js";

/**
 * GGUF tensor base names of the ternary roles (`blk.N.<name>.weight`).
 *
 * @example
 * ```ts
 * `blk.3.${GGUF_TERNARY_NAMES.o}.weight`; // "blk.3.attn_output.weight"
 * ```
 */
export const GGUF_TERNARY_NAMES: Readonly<Record<TernaryRole, string>> = {
  q: "attn_q",
  k: "attn_k",
  v: "attn_v",
  o: "attn_output",
  gate: "ffn_gate",
  up: "ffn_up",
  down: "ffn_down",
};

/**
 * GGUF tensor base names of the norm roles.
 *
 * @example
 * ```ts
 * `blk.0.${GGUF_NORM_NAMES.ffnSubNorm}.weight`; // "blk.0.ffn_sub_norm.weight"
 * ```
 */
export const GGUF_NORM_NAMES: Readonly<Record<NormRole, string>> = {
  attnNorm: "attn_norm",
  attnSubNorm: "attn_sub_norm",
  ffnNorm: "ffn_norm",
  ffnSubNorm: "ffn_sub_norm",
};

/** Architectures `readGguf` understands, with their FFN activation when the file does not say. */
const ARCHITECTURES: Readonly<Record<string, Activation>> = {
  // llama.cpp: 1bitLLM-style SiLU; `bitnet.hidden_activation` (newer llama.cpp) overrides it.
  bitnet: "silu",
  // Microsoft bitnet.cpp's official 2B-4T file (ReLU²); `bitnet-25` is its pre-2025-04-23 name.
  "bitnet-b1.58": "relu2",
  "bitnet-25": "relu2",
};

/**
 * Opens a GGUF file as a {@link HaloModel}. Reads the header only; tensors are lazy views over
 * the file. Understands arch `bitnet` (llama.cpp; activation from `bitnet.hidden_activation`,
 * else SiLU as llama.cpp runs it) and `bitnet-b1.58` (Microsoft; ReLU²), keys falling back to
 * `llama.*`, ternary tensors in TQ1_0, TQ2_0 and I2_S (with optional per-projection `.scale`
 * tensors), norms in F32/F16/BF16, embedding/head in F32/F16/BF16/Q8_0/Q6_K/Q4_K, tied or untied
 * (`output.weight`) heads, the `tokenizer.ggml.*` tokenizer and `tokenizer.chat_template`.
 *
 * Ternary scales: TQ1_0/TQ2_0 expose `{kind: "block", blockSize: 256}` with each block's f16 `d`
 * (read from the file on first use); I2_S exposes `{kind: "tensor"}`.
 *
 * @example
 * ```ts
 * const model = readGguf("ggml-model-i2_s.gguf");
 * console.log(model.config.activation, model.layers[0]!.q.packing); // "relu2", "i2_s"
 * model.close();
 * ```
 */
export function readGguf(pathOrSource: string | ByteSource | Uint8Array): HaloModel {
  const source = typeof pathOrSource === "string" ? fileSource(pathOrSource) : pathOrSource instanceof Uint8Array ? memorySource(pathOrSource) : pathOrSource;
  try {
    return buildModel(source, readGgufHeader(source));
  } catch (error) {
    if (typeof pathOrSource === "string") source.close();
    throw error;
  }
}

function buildModel(source: ByteSource, header: GgufHeader): HaloModel {
  const path = source.path;
  const md = new Metadata(header, path);
  const arch = md.string("general.architecture", true)!;
  const defaultActivation = ARCHITECTURES[arch];
  if (defaultActivation === undefined) {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "unsupported GGUF architecture", {
      path,
      field: "general.architecture",
      expected: Object.keys(ARCHITECTURES).join(", "),
      actual: arch,
      hint: "halo runs BitNet b1.58 models; convert other architectures with their own tools",
    });
  }
  const archNumber = (key: string, required: boolean): number | null =>
    md.number(`${arch}.${key}`, false) ?? md.number(`llama.${key}`, false) ?? (required ? md.number(`${arch}.${key}`, true) : null);

  const tensors = new Map(header.tensors.map((t) => [t.name, t]));
  const tensor = (name: string, required: boolean): GgufTensorInfo | null => {
    const t = tensors.get(name);
    if (t === undefined && required) {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `tensor ${name} is missing`, {
        path,
        field: name,
        expected: `a ${arch} model with ${name}`,
        actual: "absent",
      });
    }
    return t ?? null;
  };

  const embedInfo = tensor("token_embd.weight", true)!;
  const tokens = md.stringArray("tokenizer.ggml.tokens");
  const hiddenSize = archNumber("embedding_length", true)!;
  const numHeads = archNumber("attention.head_count", true)!;
  const headDim = archNumber("attention.key_length", false) ?? hiddenSize / numHeads;
  const ropeDims = archNumber("rope.dimension_count", false);
  if (ropeDims !== null && ropeDims !== headDim) {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "partial rotary embeddings are not supported", {
      path,
      field: `${arch}.rope.dimension_count`,
      expected: headDim,
      actual: ropeDims,
    });
  }
  const activationName = md.string(`${arch}.hidden_activation`, false) ?? md.string("llama.hidden_activation", false);
  let activation: Activation = defaultActivation;
  if (activationName !== null) {
    if (activationName === "relu2" || activationName === "relu_sqr" || activationName === "relu_squared") activation = "relu2";
    else if (activationName === "silu" || activationName === "swiglu") activation = "silu";
    else {
      throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "unsupported FFN activation", {
        path,
        field: `${arch}.hidden_activation`,
        expected: "relu2 or silu",
        actual: activationName,
      });
    }
  }
  const bos = md.number("tokenizer.ggml.bos_token_id", false);
  const eos = md.number("tokenizer.ggml.eos_token_id", false);
  const eot = md.number("tokenizer.ggml.eot_token_id", false);
  const eosTokenIds: number[] = [];
  for (const id of [eos, eot, tokens === null ? -1 : tokens.indexOf("<|eot_id|>")]) {
    if (id !== null && id >= 0 && !eosTokenIds.includes(id)) eosTokenIds.push(id);
  }
  const outputInfo = tensor("output.weight", false);
  const config: ModelConfig = validateConfig(
    {
      architecture: "bitnet",
      hiddenSize,
      intermediateSize: archNumber("feed_forward_length", true)!,
      numLayers: archNumber("block_count", true)!,
      numHeads,
      numKvHeads: archNumber("attention.head_count_kv", false) ?? numHeads,
      headDim,
      vocabSize: archNumber("vocab_size", false) ?? tokens?.length ?? embedInfo.dims[1] ?? 0,
      maxPositionEmbeddings: archNumber("context_length", false) ?? 4096,
      ropeTheta: archNumber("rope.freq_base", false) ?? 500000,
      rmsNormEps: archNumber("attention.layer_norm_rms_epsilon", false) ?? 1e-5,
      activation,
      tiedEmbeddings: outputInfo === null,
      bosTokenId: bos,
      eosTokenIds,
      hadamardRotated: false,
    },
    path,
  );

  const float = (info: GgufTensorInfo, shape: readonly number[], logical: string): FloatTensor => {
    if (info.type.halo.kind !== "float") {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${info.name} must be a float type`, {
        path,
        offset: info.offset,
        field: info.name,
        expected: "F32, F16, BF16, Q8_0, Q6_K or Q4_K",
        actual: info.type.name,
      });
    }
    expectDims(path, info, [...shape].reverse());
    return floatTensor(logical, info.type.halo.dtype, shape, { source, offset: info.offset });
  };

  const layers: LayerTensors[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const entries: Record<string, FloatTensor | TernaryTensor> = {};
    for (const role of NORM_ROLES) {
      const name = `blk.${l}.${GGUF_NORM_NAMES[role]}`;
      entries[role] = float(tensor(`${name}.weight`, true)!, [normLength(config, role)], name);
    }
    for (const role of TERNARY_ROLES) {
      const name = `blk.${l}.${GGUF_TERNARY_NAMES[role]}`;
      const [rows, cols] = ternaryShape(config, role);
      entries[role] = ternary(source, path, name, tensor(`${name}.weight`, true)!, tensor(`${name}.scale`, false), rows, cols);
    }
    layers.push(entries as unknown as LayerTensors);
  }

  const extraLayer = tensors.get(`blk.${config.numLayers}.attn_norm.weight`);
  if (extraLayer !== undefined) {
    throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "file has more layers than its block_count", {
      path,
      field: extraLayer.name,
      expected: `${config.numLayers} layers`,
      actual: `a tensor of layer ${config.numLayers}`,
    });
  }

  const tokenizer = readTokenizer(md, tokens, bos, eos);
  const metadata: Record<string, string> = { "gguf.version": String(header.version) };
  for (const [key, entry] of header.metadata) {
    if (entry.type === GgufValueType.ARRAY || key === "tokenizer.chat_template") continue;
    metadata[key] = String(entry.value);
  }
  return {
    config,
    tokenEmbedding: float(embedInfo, [config.vocabSize, config.hiddenSize], "token_embd"),
    outputNorm: float(tensor("output_norm.weight", true)!, [config.hiddenSize], "output_norm"),
    lmHead: outputInfo === null ? null : float(outputInfo, [config.vocabSize, config.hiddenSize], "output"),
    layers,
    tokenizer,
    chatTemplate: md.string("tokenizer.chat_template", false),
    metadata,
    source: { format: "gguf", version: header.version, path },
    close: () => source.close(),
  };
}

function expectDims(path: string, info: GgufTensorInfo, dims: readonly number[]): void {
  if (info.dims.length !== dims.length || info.dims.some((d, i) => d !== dims[i])) {
    throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${info.name} has the wrong shape`, {
      path,
      offset: info.offset,
      field: info.name,
      expected: `ggml dims [${dims.join(", ")}]`,
      actual: `[${info.dims.join(", ")}]`,
    });
  }
}

function ternary(
  source: ByteSource,
  path: string,
  name: string,
  info: GgufTensorInfo,
  scaleInfo: GgufTensorInfo | null,
  rows: number,
  cols: number,
): TernaryTensor {
  if (info.type.halo.kind !== "ternary") {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, `tensor ${info.name} is not ternary-packed`, {
      path,
      offset: info.offset,
      field: info.name,
      expected: "TQ1_0, TQ2_0 or I2_S",
      actual: info.type.name,
      hint: "Quantize the model to TQ1_0 or TQ2_0 with llama-quantize first",
    });
  }
  expectDims(path, info, [cols, rows]);
  const packing = info.type.halo.packing;
  const codec = ternaryCodec(packing);
  codec.checkShape(rows, cols, `tensor ${info.name}`);
  const byteLength = codec.byteLength(rows, cols);
  const offset = info.offset;
  let extra: Float32Array | null = null;
  if (scaleInfo !== null) {
    const count = scaleInfo.dims.reduce((a, b) => a * b, 1);
    if (scaleInfo.type.halo.kind !== "float" || (count !== 1 && count !== rows)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `scale tensor ${scaleInfo.name} has the wrong type or size`, {
        path,
        offset: scaleInfo.offset,
        field: scaleInfo.name,
        expected: `a float tensor of 1 or ${rows} values`,
        actual: `${scaleInfo.type.name} [${scaleInfo.dims.join(", ")}]`,
      });
    }
    extra = floatTensor(`${name}.scale`, scaleInfo.type.halo.dtype, [count], { source, offset: scaleInfo.offset }).toFloat32();
  }
  const perRow = (values: Float32Array, blocksPerRow: number): Float32Array => {
    if (extra === null) return values;
    for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i]! * (extra.length === 1 ? extra[0]! : extra[Math.floor(i / blocksPerRow)]!));
    return values;
  };
  let scale: TernaryScale;
  if (packing === "i2_s") {
    // Only the 4 scale bytes after the codes: opening must not read the tensor.
    const tail = source.read(offset + (rows * cols) / 4, 4);
    const value = new DataView(tail.buffer, tail.byteOffset, 4).getFloat32(0, true);
    scale =
      extra === null || extra.length === 1
        ? { kind: "tensor", value: extra === null ? value : Math.fround(value * extra[0]!) }
        : { kind: "row", values: perRow(new Float32Array(rows).fill(value), 1) };
  } else {
    let cached: Float32Array | null = null;
    const tq = packing as "tq1_0" | "tq2_0";
    // Read on first use: the d's are spread over the whole tensor, so opening the file stays cheap.
    scale = {
      kind: "block",
      blockSize: QK_K,
      get values(): Float32Array {
        cached ??= perRow(tqBlockScales(source.read(offset, byteLength), tq, rows, cols), cols / QK_K);
        return cached;
      },
    };
  }
  // TQ rows are whole 256-blocks and I2_S rows whole 128-blocks: decodeRows reads just the rows asked for.
  return lazyTernaryTensor(name, packing, rows, cols, scale, { source, offset });
}

function readTokenizer(md: Metadata, tokens: string[] | null, bos: number | null, eos: number | null): TokenizerPayload | null {
  const model = md.string("tokenizer.ggml.model", false);
  if (model === null || tokens === null) return null;
  const types = md.numberArray("tokenizer.ggml.token_type");
  return {
    kind: "gguf",
    model,
    pre: md.string("tokenizer.ggml.pre", false),
    tokens,
    merges: md.stringArray("tokenizer.ggml.merges") ?? [],
    tokenTypes: types,
    bosTokenId: bos,
    eosTokenId: eos,
    addBosToken: md.bool("tokenizer.ggml.add_bos_token"),
  };
}

/** Typed access to metadata with HaloErrors naming the key. */
class Metadata {
  constructor(
    private readonly header: GgufHeader,
    private readonly path: string,
  ) {}

  private entry(key: string, required: boolean): GgufEntry | undefined {
    const entry = this.header.metadata.get(key);
    if (entry === undefined && required) {
      throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, `metadata key ${key} is missing`, {
        path: this.path,
        field: key,
        expected: "present",
        actual: "absent",
      });
    }
    return entry;
  }

  private wrong(key: string, entry: GgufEntry, expected: string): HaloError {
    return new HaloError(H1bErrorCode.H1B_BAD_METADATA, `metadata key ${key} has the wrong type`, {
      path: this.path,
      offset: entry.offset,
      field: key,
      expected,
      actual: `type ${entry.type}`,
    });
  }

  string(key: string, required: boolean): string | null {
    const entry = this.entry(key, required);
    if (entry === undefined) return null;
    if (typeof entry.value !== "string") throw this.wrong(key, entry, "a string");
    return entry.value;
  }

  number(key: string, required: boolean): number | null {
    const entry = this.entry(key, required);
    if (entry === undefined) return null;
    if (typeof entry.value !== "number") throw this.wrong(key, entry, "a number below 2^53");
    return entry.value;
  }

  bool(key: string): boolean | null {
    const entry = this.entry(key, false);
    if (entry === undefined) return null;
    if (typeof entry.value !== "boolean") throw this.wrong(key, entry, "a bool");
    return entry.value;
  }

  stringArray(key: string): string[] | null {
    const entry = this.entry(key, false);
    if (entry === undefined) return null;
    if (entry.itemType !== GgufValueType.STRING || !Array.isArray(entry.value)) throw this.wrong(key, entry, "an array of strings");
    return entry.value as string[];
  }

  numberArray(key: string): number[] | null {
    const entry = this.entry(key, false);
    if (entry === undefined) return null;
    const value: GgufValue = entry.value;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "number")) throw this.wrong(key, entry, "an array of integers");
    return value as number[];
  }
}
