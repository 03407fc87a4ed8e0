// writeGguf: streams a HaloModel to a llama.cpp `bitnet` GGUF (TQ1_0 / TQ2_0) or a bitnet.cpp `bitnet-b1.58` GGUF (I2_S).
import { open, rename, rm } from "node:fs/promises";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { f16ToF32, f32ToF16 } from "../../core/half.js";
import { TERNARY_ROLES, NORM_ROLES, type FloatDType, type FloatTensor, type HaloModel, type TernaryTensor } from "../../core/model.js";
import { toGgufTokenizer, GGUF_TOKEN_TYPE } from "../../core/tokenizer-payload.js";
import { floatByteLength, floatCodec, ternaryCodec } from "../../codecs/registry.js";
import { QK_K, blockScales } from "../../codecs/ggml.js";
import { encodeGgufHeader, type GgufWriteTensorInfo, type GgufWriteValue } from "./gguf-encode.js";
import { GGML_TYPE_ID, GGUF_DEFAULT_ALIGNMENT } from "./gguf-types.js";
import { GGUF_NORM_NAMES, GGUF_TERNARY_NAMES } from "./read-gguf.js";

/** Options of {@link writeGguf}. */
export interface WriteGgufOptions {
  /**
   * Ternary weight type: `tq2_0` (2.0625 bpw, faster prefill) or `tq1_0` (1.6875 bpw, fewer bytes
   * per token) in llama.cpp's arch `bitnet`; or `i2_s` (2 bpw + one f32 scale per matrix) in
   * Microsoft bitnet.cpp's arch `bitnet-b1.58`, the layout of its official 2B-4T file (ReLU²
   * only; llama.cpp, Ollama and LM Studio cannot load it, bitnet.cpp and halo can).
   */
  readonly ternaryType: GgufTernaryType;
  /** Type of the token embedding (and untied head). Default `f16`. */
  readonly embeddingType?: "f16" | "f32" | "q8_0";
  /**
   * Accept lossy scale conversions: block scales finer than 256 weights that differ inside a
   * 256-block are replaced by their mean (counted in the report). Default false.
   */
  readonly force?: boolean;
  /** `general.name`. Default: the model's `general.name` metadata, else `"halo"`. */
  readonly name?: string;
  /** Called after each tensor with bytes written so far and the total. */
  readonly onProgress?: (written: number, total: number) => void;
}

/** What {@link writeGguf} wrote and what the conversion changed. */
export interface GgufWriteReport {
  readonly path: string;
  /** File size in bytes. */
  readonly bytes: number;
  readonly tensorCount: number;
  readonly ternaryType: GgufTernaryType;
  readonly embeddingType: "f16" | "f32" | "q8_0";
  /**
   * TQ1_0/TQ2_0 store one f16 `d` per 256 weights: the model's scales are rounded to f16.
   * Counts are in 256-weight blocks; relative error is `|f16(s) − s| / |s|` (≤ 2^-11 for normal values).
   */
  readonly scaleRounding: {
    readonly blocks: number;
    readonly changedBlocks: number;
    readonly maxRelativeError: number;
    readonly meanRelativeError: number;
  };
  /** Blocks whose finer scales were averaged under `force` (0 without force). */
  readonly averagedScaleBlocks: number;
  /** Human-readable notes on compatibility (e.g. activation support in llama.cpp). */
  readonly notes: readonly string[];
}

/** Ternary types {@link writeGguf} writes. */
export type GgufTernaryType = "tq1_0" | "tq2_0" | "i2_s";

interface PlannedTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: number;
  readonly byteLength: number;
  readonly chunks: () => Iterable<Uint8Array>;
}

const FLOAT_TYPE_ID: Readonly<Record<"f16" | "f32" | "q8_0", number>> = { f16: GGML_TYPE_ID.F16, f32: GGML_TYPE_ID.F32, q8_0: GGML_TYPE_ID.Q8_0 };
/** Rows of a float matrix converted per step, so a 2B embedding never exists twice in memory. */
const CONVERT_VALUES_PER_CHUNK = 1 << 22;

/**
 * Writes a model as a GGUF v3 file with architecture `bitnet` that llama.cpp (and
 * node-llama-cpp 3.22.1) loads: ternary matrices in TQ1_0 or TQ2_0 with the model's scale as
 * each block's f16 `d`, f32 norms, the embedding in f16/f32/q8_0, the tokenizer as gpt2-style
 * `tokenizer.ggml.*` and the chat template. Tensors are produced and written one at a time
 * (the 2B-4T shape never needs the whole model in memory). The file is written to a temporary
 * name and renamed when complete.
 *
 * ReLU² models get `bitnet.hidden_activation = "relu2"`; note that node-llama-cpp 3.22.1
 * (llama.cpp v0.5.0) ignores that key and runs SiLU, so its output for such models is wrong.
 *
 * @example
 * ```ts
 * const model = synthModel({ shape: "tiny", activation: "silu", seed: 1 });
 * const report = await writeGguf(model, "tiny-tq2.gguf", { ternaryType: "tq2_0" });
 * console.log(report.bytes, report.scaleRounding.maxRelativeError);
 * ```
 */
export async function writeGguf(model: HaloModel, path: string, options: WriteGgufOptions): Promise<GgufWriteReport> {
  const ternaryType = options.ternaryType;
  if (ternaryType !== "tq1_0" && ternaryType !== "tq2_0" && ternaryType !== "i2_s") {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "unsupported GGUF ternary type", {
      field: "ternaryType",
      expected: "tq1_0, tq2_0 or i2_s",
      actual: ternaryType,
    });
  }
  // bitnet.cpp's arch has no activation key: readers (halo's and bitnet.cpp's) run ReLU².
  const arch = ternaryType === "i2_s" ? "bitnet-b1.58" : "bitnet";
  if (arch === "bitnet-b1.58" && model.config.activation !== "relu2") {
    throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, "i2_s files (arch bitnet-b1.58) always run ReLU²; this model uses another activation", {
      path,
      field: "activation",
      expected: "relu2",
      actual: model.config.activation,
      hint: "Write tq1_0 or tq2_0 (arch bitnet records the activation)",
    });
  }
  const embeddingType = options.embeddingType ?? "f16";
  if (!(embeddingType in FLOAT_TYPE_ID)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "unsupported GGUF embedding type", {
      field: "embeddingType",
      expected: "f16, f32 or q8_0",
      actual: embeddingType,
    });
  }
  const force = options.force ?? false;
  const config = model.config;
  const codec = ternaryCodec(ternaryType);
  const notes: string[] = [];

  const metadata: Array<[string, GgufWriteValue]> = [];
  const set = (key: string, value: GgufWriteValue): void => {
    metadata.push([key, value]);
  };
  set("general.architecture", { type: "string", value: arch });
  set("general.name", { type: "string", value: options.name ?? model.metadata["general.name"] ?? "halo" });
  set("general.alignment", { type: "u32", value: GGUF_DEFAULT_ALIGNMENT });
  // llama_ftype: MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37; bitnet.cpp's MOSTLY_I2_S 40.
  set("general.file_type", { type: "u32", value: ternaryType === "tq1_0" ? 36 : ternaryType === "tq2_0" ? 37 : 40 });
  set("general.quantization_version", { type: "u32", value: 2 });
  set(`${arch}.vocab_size`, { type: "u32", value: config.vocabSize });
  set(`${arch}.context_length`, { type: "u32", value: config.maxPositionEmbeddings });
  set(`${arch}.embedding_length`, { type: "u32", value: config.hiddenSize });
  set(`${arch}.block_count`, { type: "u32", value: config.numLayers });
  set(`${arch}.feed_forward_length`, { type: "u32", value: config.intermediateSize });
  set(`${arch}.attention.head_count`, { type: "u32", value: config.numHeads });
  set(`${arch}.attention.head_count_kv`, { type: "u32", value: config.numKvHeads });
  set(`${arch}.attention.key_length`, { type: "u32", value: config.headDim });
  set(`${arch}.attention.value_length`, { type: "u32", value: config.headDim });
  set(`${arch}.attention.layer_norm_rms_epsilon`, { type: "f32", value: config.rmsNormEps });
  set(`${arch}.rope.freq_base`, { type: "f32", value: config.ropeTheta });
  set(`${arch}.rope.dimension_count`, { type: "u32", value: config.headDim });
  if (config.activation === "relu2" && arch === "bitnet") {
    set(`${arch}.hidden_activation`, { type: "string", value: "relu2" });
    notes.push(
      "bitnet.hidden_activation = relu2 written; node-llama-cpp 3.22.1 (llama.cpp v0.5.0) ignores it and runs SiLU, so its output for this model is wrong",
    );
  }
  if (ternaryType === "i2_s") {
    notes.push("I2_S (type 36, arch bitnet-b1.58) is Microsoft bitnet.cpp's layout: bitnet.cpp and halo load it; llama.cpp, Ollama and LM Studio cannot");
  }
  if (config.numHeads * config.headDim !== config.hiddenSize) {
    notes.push("numHeads × headDim ≠ hiddenSize: halo reads this file, llama.cpp's bitnet graph cannot load it");
  }
  if (!config.tiedEmbeddings) {
    notes.push("untied head written as output.weight: halo reads it; llama.cpp's bitnet architecture has no output tensor and refuses the file");
  }

  if (model.tokenizer !== null) {
    const tok = toGgufTokenizer(model.tokenizer);
    if (tok.tokens.length > config.vocabSize) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "tokenizer has more tokens than the embedding has rows", {
        field: "tokenizer.tokens",
        expected: `at most vocabSize = ${config.vocabSize}`,
        actual: tok.tokens.length,
      });
    }
    const tokens = [...tok.tokens];
    const types = tok.tokenTypes === null ? tokens.map(() => GGUF_TOKEN_TYPE.NORMAL) : [...tok.tokenTypes];
    while (types.length < tokens.length) types.push(GGUF_TOKEN_TYPE.NORMAL);
    for (let id = tokens.length; id < config.vocabSize; id++) {
      tokens.push(`[PAD${id}]`);
      types.push(GGUF_TOKEN_TYPE.UNUSED);
    }
    if (tokens.length !== tok.tokens.length) notes.push(`${tokens.length - tok.tokens.length} unused [PAD] tokens added to match vocabSize`);
    set("tokenizer.ggml.model", { type: "string", value: tok.model });
    if (tok.pre !== null) set("tokenizer.ggml.pre", { type: "string", value: tok.pre });
    set("tokenizer.ggml.tokens", { type: "string[]", value: tokens });
    set("tokenizer.ggml.token_type", { type: "i32[]", value: types });
    set("tokenizer.ggml.merges", { type: "string[]", value: tok.merges });
    const bos = tok.bosTokenId ?? config.bosTokenId;
    // The config's stop ids win over the tokenizer's eos: the first is eos, the second eot (llama.cpp stops on both).
    const eos = config.eosTokenIds[0] ?? tok.eosTokenId;
    if (bos !== null) set("tokenizer.ggml.bos_token_id", { type: "u32", value: bos });
    if (eos !== null) set("tokenizer.ggml.eos_token_id", { type: "u32", value: eos });
    const eot = config.eosTokenIds[1];
    if (eot !== undefined) set("tokenizer.ggml.eot_token_id", { type: "u32", value: eot });
    if (config.eosTokenIds.length > 2) notes.push(`only the first two of ${config.eosTokenIds.length} stop ids fit GGUF (eos, eot)`);
    set("tokenizer.ggml.add_bos_token", { type: "bool", value: tok.addBosToken ?? true });
  } else {
    notes.push("model has no tokenizer: none written (llama.cpp needs one to run the file)");
  }
  if (model.chatTemplate !== null) set("tokenizer.chat_template", { type: "string", value: model.chatTemplate });
  const written = new Set(metadata.map(([key]) => key));
  for (const [key, value] of Object.entries(model.metadata)) {
    if (written.has(key) || /^(gguf|tokenizer|llama|bitnet|bitnet-b1\.58|bitnet-25)\./.test(key)) continue;
    set(key, { type: "string", value });
  }

  const scaleStats = { blocks: 0, changed: 0, maxRel: 0, sumRel: 0, averaged: 0 };
  const plan: PlannedTensor[] = [];
  const addFloat = (name: string, tensor: FloatTensor, dtype: "f16" | "f32" | "q8_0"): void => {
    const dims = [...tensor.shape].reverse();
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    plan.push({ name, dims, type: FLOAT_TYPE_ID[dtype], byteLength: floatByteLength(dtype, count), chunks: () => convertFloat(tensor, dtype) });
  };
  addFloat("token_embd.weight", model.tokenEmbedding, embeddingType);
  addFloat("output_norm.weight", model.outputNorm, "f32");
  if (model.lmHead !== null) addFloat("output.weight", model.lmHead, embeddingType);
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) addFloat(`blk.${l}.${GGUF_NORM_NAMES[role]}.weight`, layer[role], "f32");
    for (const role of TERNARY_ROLES) {
      const tensor = layer[role];
      codec.checkShape(tensor.rows, tensor.cols, `tensor ${tensor.name}`);
      plan.push({
        name: `blk.${l}.${GGUF_TERNARY_NAMES[role]}.weight`,
        dims: [tensor.cols, tensor.rows],
        type: ternaryType === "tq1_0" ? GGML_TYPE_ID.TQ1_0 : ternaryType === "tq2_0" ? GGML_TYPE_ID.TQ2_0 : GGML_TYPE_ID.I2_S,
        byteLength: codec.byteLength(tensor.rows, tensor.cols),
        chunks: () => [ternaryType === "i2_s" ? encodeI2s(tensor, force) : encodeTernary(tensor, ternaryType, force, scaleStats)],
      });
    }
  });

  const infos: GgufWriteTensorInfo[] = [];
  let offset = 0;
  for (const t of plan) {
    infos.push({ name: t.name, dims: t.dims, type: t.type, offset });
    offset = align(offset + t.byteLength);
  }
  const header = encodeGgufHeader(metadata, infos, GGUF_DEFAULT_ALIGNMENT);
  const total = header.length + offset;

  const temporary = `${path}.tmp-${process.pid}-${Date.now()}`;
  let handle;
  try {
    handle = await open(temporary, "w");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot create the output file", {
      path,
      actual: String(cause),
      cause,
      hint: "Check the directory exists and is writable",
    });
  }
  try {
    let position = 0;
    const write = async (bytes: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    };
    await write(header);
    const padding = new Uint8Array(GGUF_DEFAULT_ALIGNMENT);
    for (let i = 0; i < plan.length; i++) {
      const t = plan[i]!;
      const start = position;
      for (const chunk of t.chunks()) await write(chunk);
      if (position - start !== t.byteLength) {
        throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${t.name} produced the wrong number of bytes`, {
          path,
          field: t.name,
          expected: t.byteLength,
          actual: position - start,
        });
      }
      await write(padding.subarray(0, align(position) - position));
      options.onProgress?.(position, total);
    }
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    if (error instanceof HaloError) throw error;
    throw new HaloError(H1bErrorCode.H1B_IO, "writing the GGUF file failed", { path, actual: String(error), cause: error });
  }

  return {
    path,
    bytes: total,
    tensorCount: plan.length,
    ternaryType,
    embeddingType,
    scaleRounding: {
      blocks: scaleStats.blocks,
      changedBlocks: scaleStats.changed,
      maxRelativeError: scaleStats.maxRel,
      meanRelativeError: scaleStats.blocks === 0 ? 0 : scaleStats.sumRel / scaleStats.blocks,
    },
    averagedScaleBlocks: scaleStats.averaged,
    notes,
  };
}

function align(n: number): number {
  return Math.ceil(n / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
}

function encodeTernary(
  tensor: TernaryTensor,
  packing: "tq1_0" | "tq2_0",
  force: boolean,
  stats: { blocks: number; changed: number; maxRel: number; sumRel: number; averaged: number },
): Uint8Array {
  const { rows, cols } = tensor;
  // Scales as one value per 256-block, before f16 rounding: measure what the rounding changes.
  let exact: Float32Array;
  try {
    exact = blockScales(tensor.scale, rows, cols, packing, false);
  } catch (error) {
    if (!force || !(error instanceof HaloError) || error.code !== H1bErrorCode.H1B_LOSSY_CONVERSION) throw error;
    exact = blockScales(tensor.scale, rows, cols, packing, true);
    stats.averaged += countAveraged(tensor, exact);
  }
  for (const s of exact) {
    const rounded = f16ToF32(f32ToF16(s));
    const rel = s === 0 ? (rounded === 0 ? 0 : Infinity) : Math.abs(rounded - s) / Math.abs(s);
    stats.blocks++;
    if (rounded !== s) stats.changed++;
    stats.maxRel = Math.max(stats.maxRel, rel);
    stats.sumRel += rel;
  }
  // Always re-encode (even TQ → same TQ): the scale may include a `.scale` tensor the bytes do not.
  const trits = new Int8Array(rows * cols);
  tensor.decodeRows(0, rows, trits);
  return ternaryCodec(packing).encode(trits, rows, cols, { scale: { kind: "block", blockSize: QK_K, values: exact } });
}

function encodeI2s(tensor: TernaryTensor, force: boolean): Uint8Array {
  // One f32 scale per matrix: exact for tensor scales and uniform row/block scales; a mean (under force) otherwise.
  const trits = new Int8Array(tensor.rows * tensor.cols);
  tensor.decodeRows(0, tensor.rows, trits);
  return ternaryCodec("i2_s").encode(trits, tensor.rows, tensor.cols, { scale: tensor.scale, force });
}

function countAveraged(tensor: TernaryTensor, averaged: Float32Array): number {
  if (tensor.scale.kind !== "block") return 0;
  const per = QK_K / tensor.scale.blockSize;
  let count = 0;
  for (let b = 0; b < averaged.length; b++) {
    for (let i = 0; i < per; i++) {
      if (tensor.scale.values[b * per + i] !== tensor.scale.values[b * per]) {
        count++;
        break;
      }
    }
  }
  return count;
}

function* convertFloat(tensor: FloatTensor, target: FloatDType): Iterable<Uint8Array> {
  if (tensor.dtype === target) {
    yield tensor.bytes();
    return;
  }
  const rows = tensor.shape.length > 1 ? tensor.shape[0]! : 1;
  const rowLength = tensor.shape.reduce((a, b) => a * b, 1) / rows;
  const sourceCodec = floatCodec(tensor.dtype);
  const targetCodec = floatCodec(target);
  if (targetCodec.encode === undefined) {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, `halo cannot encode ${target}`, { field: "embeddingType", actual: target });
  }
  const bytes = tensor.bytes();
  const rowBytes = floatByteLength(tensor.dtype, rowLength);
  floatByteLength(target, rowLength);
  const step = Math.max(1, Math.floor(CONVERT_VALUES_PER_CHUNK / rowLength));
  for (let r = 0; r < rows; r += step) {
    const n = Math.min(step, rows - r);
    const values = sourceCodec.decode(bytes.subarray(r * rowBytes, (r + n) * rowBytes), n * rowLength);
    yield targetCodec.encode(values);
  }
}
