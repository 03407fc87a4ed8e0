// Writes a HaloModel as a Hugging Face BitNet snapshot (packed uint8 or bf16 master weights), streaming tensors.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { NORM_ROLES, TERNARY_ROLES, type FloatTensor, type HaloModel, type TernaryTensor } from "../../core/model.js";
import { f32ToBf16 } from "../../core/half.js";
import { floatCodec } from "../../codecs/registry.js";
import { hfPackedCodec } from "../../codecs/hf-packed.js";
import type { SafetensorsDType } from "../safetensors/safetensors-dtype.js";
import type { SafetensorsWriteEntry } from "../safetensors/write-safetensors.js";
import { writeSafetensorsModel } from "../safetensors/write-safetensors-sharded.js";
import { toHfConfig, toHfGenerationConfig, type HfVariant } from "./hf-config.js";
import { HF_EMBEDDING, HF_LM_HEAD, HF_OUTPUT_NORM, hfLayerTensor } from "./hf-tensor-names.js";
import { masterMagnitude } from "./absmean-ternarize.js";
import { toHfTokenizerJson } from "../../core/tokenizer-payload.js";

/** Options of {@link writeHfSnapshot}. */
export interface WriteHfOptions {
  /**
   * `packed` (default): uint8 `[out/4, in]` + `weight_scale`, like microsoft/bitnet-b1.58-2B-4T.
   * `bf16`: master weights `trit × m` in bf16 (like the `-bf16` repo) chosen so that absmean
   * ternarisation gives back the same trits and a scale within {@link HF_SCALE_REL_TOLERANCE}.
   */
  readonly variant?: HfVariant;
  /** Split weights into shards of at most this many tensor bytes, plus an index. Default: one file. */
  readonly maxShardBytes?: number;
  /** Storage dtype of `weight_scale` (packed variant). Default `bf16`, as Microsoft ships it; `f32` keeps scales exact. */
  readonly scaleDtype?: "bf16" | "f32";
  /**
   * Storage dtype of embedding, head and norms. `keep` (default) stores f32/f16/bf16 tensors
   * byte for byte and decodes block-quantised ones (q8_0, q6_k, q4_k) to f32.
   */
  readonly floatDtype?: "keep" | "f32" | "f16" | "bf16";
}

/** What {@link writeHfSnapshot} wrote. */
export interface HfWriteResult {
  /** File names written into the directory. */
  readonly files: readonly string[];
}

/** Elements produced per chunk while streaming (1 Mi). */
const CHUNK_ELEMENTS = 1 << 20;

const SAFETENSORS_FLOAT: Record<"f32" | "f16" | "bf16", SafetensorsDType> = { f32: "F32", f16: "F16", bf16: "BF16" };

function floatEntry(name: string, tensor: FloatTensor, option: NonNullable<WriteHfOptions["floatDtype"]>): SafetensorsWriteEntry {
  const native = tensor.dtype === "f32" || tensor.dtype === "f16" || tensor.dtype === "bf16";
  const target = option === "keep" ? (native ? (tensor.dtype as "f32" | "f16" | "bf16") : "f32") : option;
  return {
    name,
    dtype: SAFETENSORS_FLOAT[target],
    shape: tensor.shape,
    chunks: function* () {
      if (target === tensor.dtype) {
        yield tensor.bytes();
        return;
      }
      const values = tensor.toFloat32();
      const codec = floatCodec(target);
      for (let i = 0; i < values.length; i += CHUNK_ELEMENTS) yield codec.encode!(values.subarray(i, i + CHUNK_ELEMENTS));
    },
  };
}

function tensorScale(tensor: TernaryTensor): number {
  if (tensor.scale.kind !== "tensor") {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, `tensor ${tensor.name}: Hugging Face BitNet stores one scale per matrix`, {
      field: tensor.name,
      expected: "scale kind tensor",
      actual: `scale kind ${tensor.scale.kind}`,
      hint: "Write this model as GGUF or the halo container instead",
    });
  }
  return tensor.scale.value;
}

function packedEntry(name: string, tensor: TernaryTensor): SafetensorsWriteEntry {
  const { rows, cols } = tensor;
  hfPackedCodec.checkShape(rows, cols, `tensor ${tensor.name}`);
  const quarter = rows / 4;
  return {
    name,
    dtype: "U8",
    shape: [quarter, cols],
    chunks: function* () {
      if (tensor.packing === "hf-packed") {
        yield tensor.bytes();
        return;
      }
      // Byte row r packs output rows r, r+R, r+2R, r+3R: decode the four quarter slices of a chunk.
      const chunkRows = Math.max(1, Math.floor(CHUNK_ELEMENTS / (4 * cols)));
      for (let r = 0; r < quarter; r += chunkRows) {
        const n = Math.min(chunkRows, quarter - r);
        const trits = new Int8Array(4 * n * cols);
        for (let i = 0; i < 4; i++) tensor.decodeRows(i * quarter + r, n, trits.subarray(i * n * cols, (i + 1) * n * cols));
        yield hfPackedCodec.encode(trits, 4 * n, cols);
      }
    },
  };
}

function scaleEntry(name: string, tensor: TernaryTensor, dtype: "bf16" | "f32"): SafetensorsWriteEntry {
  const value = tensorScale(tensor);
  return {
    name,
    dtype: SAFETENSORS_FLOAT[dtype],
    shape: [1],
    chunks: () => [floatCodec(dtype).encode!(Float32Array.of(value))],
  };
}

function masterEntry(name: string, tensor: TernaryTensor): SafetensorsWriteEntry {
  const { rows, cols } = tensor;
  const scale = tensorScale(tensor);
  return {
    name,
    dtype: "BF16",
    shape: [rows, cols],
    chunks: function* () {
      // One matrix of trits at a time (17.7 MB for the 2B FFN): the magnitude depends on its zero count.
      const trits = new Int8Array(rows * cols);
      tensor.decodeRows(0, rows, trits);
      let nonzero = 0;
      for (let i = 0; i < trits.length; i++) if (trits[i] !== 0) nonzero++;
      const bits = f32ToBf16(masterMagnitude(scale, nonzero, trits.length, tensor.name));
      for (let i = 0; i < trits.length; i += CHUNK_ELEMENTS) {
        const n = Math.min(CHUNK_ELEMENTS, trits.length - i);
        const out = new Uint16Array(n);
        for (let j = 0; j < n; j++) {
          const t = trits[i + j]!;
          out[j] = t === 0 ? 0 : t > 0 ? bits : bits | 0x8000;
        }
        yield new Uint8Array(out.buffer);
      }
    },
  };
}

function tokenizerConfigText(model: HaloModel, base: string | null): string | null {
  if (base === null) return model.chatTemplate === null ? null : `${JSON.stringify({ chat_template: model.chatTemplate }, null, 2)}\n`;
  if (model.chatTemplate === null) return base;
  let parsed: unknown;
  try {
    parsed = JSON.parse(base);
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "the model's tokenizer_config.json is not valid JSON", {
      field: "tokenizer.tokenizerConfigJson",
      cause,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "the model's tokenizer_config.json is not a JSON object", { field: "tokenizer.tokenizerConfigJson" });
  }
  const config = parsed as Record<string, unknown>;
  if (config["chat_template"] === model.chatTemplate) return base;
  return `${JSON.stringify({ ...config, chat_template: model.chatTemplate }, null, 2)}\n`;
}

/**
 * Writes `model` into `dir` as a Hugging Face BitNet snapshot that transformers and halo read:
 * config.json, generation_config.json, model.safetensors (or shards + index with
 * `maxShardBytes`), tokenizer.json and tokenizer_config.json.
 *
 * Tensors stream to disk one at a time (the largest in memory at once is the embedding, or one
 * ternary matrix's trits for the bf16 variant), so the 2B-4T shape never needs the whole model.
 * An `hf-json` tokenizer is written as it is; GGUF (gpt2) and `.htok` payloads are converted with
 * `toHfTokenizerJson` (other GGUF tokenizer models throw). Models with per-row/per-block scales or a Hadamard
 * rotation cannot be expressed (`H1B_UNSUPPORTED`); row counts not divisible by 4 cannot be
 * packed (`H1B_BAD_DIMENSION`).
 *
 * @example
 * ```ts
 * const model = synthModel({ shape: "tiny" });
 * await writeHfSnapshot(model, "./tiny-hf", { variant: "packed", maxShardBytes: 1 << 20 });
 * ```
 */
export async function writeHfSnapshot(model: HaloModel, dir: string, options: WriteHfOptions = {}): Promise<HfWriteResult> {
  return writeHfSnapshotSync(model, dir, options);
}

/**
 * Synchronous {@link writeHfSnapshot}.
 *
 * @example
 * ```ts
 * writeHfSnapshotSync(synthModel(), "./tiny-hf-bf16", { variant: "bf16" });
 * ```
 */
export function writeHfSnapshotSync(model: HaloModel, dir: string, options: WriteHfOptions = {}): HfWriteResult {
  const variant = options.variant ?? "packed";
  if (variant !== "packed" && variant !== "bf16") {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "unknown Hugging Face variant", { field: "variant", expected: "packed or bf16", actual: variant });
  }
  const { config } = model;
  if (config.hadamardRotated) {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "Hugging Face BitNet has no Hadamard-rotated weights", {
      field: "config.hadamardRotated",
      expected: false,
      actual: true,
      hint: "Write this model as the halo container instead",
    });
  }
  // GGUF and .htok payloads become a Llama-3-style tokenizer.json (gpt2 byte-level BPE only).
  const tokenizer = model.tokenizer === null ? null : toHfTokenizerJson(model.tokenizer, { chatTemplate: model.chatTemplate });
  const floatDtype = options.floatDtype ?? "keep";
  const scaleDtype = options.scaleDtype ?? "bf16";
  const entries: SafetensorsWriteEntry[] = [floatEntry(HF_EMBEDDING, model.tokenEmbedding, floatDtype)];
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) entries.push(floatEntry(hfLayerTensor(l, role), layer[role], floatDtype));
    for (const role of TERNARY_ROLES) {
      const tensor = layer[role];
      tensorScale(tensor);
      if (variant === "packed") {
        entries.push(packedEntry(hfLayerTensor(l, role), tensor));
        entries.push(scaleEntry(hfLayerTensor(l, role, "weight_scale"), tensor, scaleDtype));
      } else {
        entries.push(masterEntry(hfLayerTensor(l, role), tensor));
      }
    }
  });
  entries.push(floatEntry(HF_OUTPUT_NORM, model.outputNorm, floatDtype));
  if (!config.tiedEmbeddings) {
    if (model.lmHead === null) {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, "untied model has no LM head", { field: "lmHead", expected: "a tensor", actual: null });
    }
    entries.push(floatEntry(HF_LM_HEAD, model.lmHead, floatDtype));
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot create the snapshot directory", { path: dir, actual: (cause as NodeJS.ErrnoException).code, cause });
  }
  const files = writeSafetensorsModel(dir, entries, {
    metadata: { format: "pt" },
    ...(options.maxShardBytes === undefined ? {} : { maxShardBytes: options.maxShardBytes }),
  });
  const json = (name: string, value: unknown): void => {
    writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
    files.push(name);
  };
  json("config.json", toHfConfig(config, variant));
  json("generation_config.json", toHfGenerationConfig(config));
  if (tokenizer !== null) {
    writeFileSync(join(dir, "tokenizer.json"), tokenizer.tokenizerJson);
    files.push("tokenizer.json");
    const tokenizerConfig = tokenizerConfigText(model, tokenizer.tokenizerConfigJson);
    if (tokenizerConfig !== null) {
      writeFileSync(join(dir, "tokenizer_config.json"), tokenizerConfig);
      files.push("tokenizer_config.json");
    }
  }
  return { files };
}
