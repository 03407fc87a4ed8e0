// Reads a Hugging Face BitNet snapshot directory (packed or -bf16 master weights) into a HaloModel.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import {
  NORM_ROLES,
  TERNARY_ROLES,
  normLength,
  ternaryShape,
  type FloatTensor,
  type HaloModel,
  type LayerTensors,
  type TernaryTensor,
  type TokenizerPayload,
} from "../../core/model.js";
import { floatTensor, ternaryTensor } from "../../core/tensors.js";
import { floatCodec } from "../../codecs/registry.js";
import "../../codecs/hf-packed.js";
import { openSafetensorsModel, readJsonObject, type SafetensorsModelFiles, type SafetensorsTensorRef } from "../safetensors/safetensors-index.js";
import type { SafetensorsDType } from "../safetensors/safetensors-dtype.js";
import { parseHfConfig } from "./hf-config.js";
import { HF_EMBEDDING, HF_LM_HEAD, HF_OUTPUT_NORM, hfLayerTensor } from "./hf-tensor-names.js";
import { masterTernaryTensor } from "./master-ternary-tensor.js";

const FLOAT_DTYPES: Partial<Record<SafetensorsDType, "f32" | "f16" | "bf16">> = { F32: "f32", F16: "f16", BF16: "bf16" };

/**
 * Metadata value of `hf.ternarisation` for master-weight snapshots.
 *
 * @example
 * ```ts
 * if (model.metadata["hf.ternarisation"] === HF_TERNARISATION_NOTE) console.log("ternarised on load");
 * ```
 */
export const HF_TERNARISATION_NOTE = "absmean: scale = max(mean|W|, 1e-5) summed in FP64, t = clamp(round_half_even(fround(W * fround(1/scale))), -1, 1)";

function badTensor(path: string, name: string, summary: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${name}: ${summary}`, {
    path,
    field: name,
    expected,
    actual,
    hint: "The snapshot does not match its config.json; download it again",
  });
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function floatFrom(weights: SafetensorsModelFiles, hfName: string, name: string, shape: readonly number[]): FloatTensor {
  const { file, info } = weights.tensor(hfName);
  const dtype = FLOAT_DTYPES[info.dtype];
  if (dtype === undefined) throw badTensor(file.path, hfName, "unsupported dtype", "F32, F16 or BF16", info.dtype);
  if (!sameShape(info.shape, shape)) throw badTensor(file.path, hfName, "wrong shape", shape, info.shape);
  return floatTensor(name, dtype, shape, { source: file.source, offset: info.offset });
}

function readScale(ref: SafetensorsTensorRef, hfName: string): number {
  const { file, info } = ref;
  const dtype = FLOAT_DTYPES[info.dtype];
  if (dtype === undefined) throw badTensor(file.path, hfName, "weight_scale has an unsupported dtype", "BF16, F16 or F32", info.dtype);
  if (info.shape.reduce((a, b) => a * b, 1) !== 1) throw badTensor(file.path, hfName, "weight_scale must hold one value", "[] or [1]", info.shape);
  const value = floatCodec(dtype).decode(file.source.read(info.offset, info.byteLength), 1)[0]!;
  if (!Number.isFinite(value)) throw badTensor(file.path, hfName, "weight_scale is not finite", "a finite number", value);
  return value;
}

function ternaryFrom(
  weights: SafetensorsModelFiles,
  layer: number,
  role: (typeof TERNARY_ROLES)[number],
  rows: number,
  cols: number,
): { tensor: TernaryTensor; packed: boolean } {
  const hfName = hfLayerTensor(layer, role);
  const name = `blk.${layer}.${role}`;
  const { file, info } = weights.tensor(hfName);
  if (info.dtype === "U8") {
    if (rows % 4 !== 0 || !sameShape(info.shape, [rows / 4, cols])) {
      throw badTensor(file.path, hfName, "wrong packed shape", `[${rows / 4}, ${cols}] (rows/4, cols)`, info.shape);
    }
    const scaleName = hfLayerTensor(layer, role, "weight_scale");
    const value = readScale(weights.tensor(scaleName), scaleName);
    const tensor = ternaryTensor(name, "hf-packed", rows, cols, { kind: "tensor", value }, { source: file.source, offset: info.offset });
    return { tensor, packed: true };
  }
  const dtype = FLOAT_DTYPES[info.dtype];
  if (dtype === undefined) throw badTensor(file.path, hfName, "unsupported dtype for a linear weight", "U8 (packed) or BF16, F16, F32 (master)", info.dtype);
  if (!sameShape(info.shape, [rows, cols])) throw badTensor(file.path, hfName, "wrong shape", [rows, cols], info.shape);
  return { tensor: masterTernaryTensor(name, rows, cols, dtype, file.source, info.offset), packed: false };
}

function readText(path: string): string | null {
  if (!existsSync(path)) return null;
  try {
    return readFileSync(path, "utf8");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot read file", { path, actual: (cause as NodeJS.ErrnoException).code, cause });
  }
}

/**
 * The chat template of a snapshot: `chat_template` of tokenizer_config.json (a string, or a list
 * of `{name, template}` from which `default` is taken), else `chat_template.jinja`, else null.
 */
function chatTemplateOf(dir: string, tokenizerConfig: Record<string, unknown> | null): string | null {
  const value = tokenizerConfig?.["chat_template"];
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const entries = value.filter(
      (e): e is { name: unknown; template: string } => typeof e === "object" && e !== null && typeof (e as { template?: unknown }).template === "string",
    );
    const chosen = entries.find((e) => e.name === "default") ?? entries[0];
    if (chosen !== undefined) return chosen.template;
  }
  return readText(join(dir, "chat_template.jinja"));
}

/**
 * Opens a Hugging Face BitNet b1.58 snapshot directory as a {@link HaloModel}.
 *
 * - config.json (+ generation_config.json) → config (see {@link parseHfConfig}).
 * - Weights from model.safetensors or shards + model.safetensors.index.json, opened lazily.
 * - Linear weights: packed uint8 `[out/4, in]` + `weight_scale` (BF16/F16/F32, multiplied) →
 *   packing `hf-packed`, scale kind `tensor`; or bf16/f16/f32 master weights (the `-bf16` repo)
 *   → packing `int8`, ternarised on read exactly as transformers' online `AutoBitLinear`
 *   (absmean, FP64 accumulation: see {@link AbsSum}). Each tensor is judged by its own dtype.
 * - tokenizer.json + tokenizer_config.json → tokenizer payload `hf-json`; chat template from
 *   tokenizer_config.json or chat_template.jinja.
 *
 * Throws `H1B_MISSING_FILE` (no config.json or weights, a missing shard), `H1B_UNSUPPORTED`
 * (not bitnet, rope_scaling, biases), `H1B_MISSING_TENSOR`, `H1B_BAD_TENSOR`, and every
 * safetensors validation error. Call `close()` on the model when done.
 *
 * @example
 * ```ts
 * const model = await readHfSnapshot("./bitnet-b1.58-2B-4T");
 * model.layers[0]!.q.packing; // "hf-packed"
 * model.close();
 * ```
 */
export async function readHfSnapshot(dir: string): Promise<HaloModel> {
  return readHfSnapshotSync(dir);
}

/**
 * Synchronous {@link readHfSnapshot}.
 *
 * @example
 * ```ts
 * const model = readHfSnapshotSync("./bitnet-b1.58-2B-4T-bf16");
 * model.metadata["hf.variant"]; // "bf16"
 * ```
 */
export function readHfSnapshotSync(dir: string): HaloModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, "snapshot directory does not exist", {
      path: dir,
      expected: "a directory with config.json and safetensors weights",
      actual: existsSync(dir) ? "a file" : "nothing",
      hint: "Pass the directory of a Hugging Face model snapshot",
    });
  }
  const configPath = join(dir, "config.json");
  if (!existsSync(configPath)) {
    throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, "snapshot has no config.json", {
      path: configPath,
      expected: "config.json",
      actual: "no such file",
      hint: "Download the whole snapshot, not just the weights",
    });
  }
  const configJson = readJsonObject(configPath);
  const generationPath = join(dir, "generation_config.json");
  const generationJson = existsSync(generationPath) ? readJsonObject(generationPath) : null;
  const config = parseHfConfig(configJson, generationJson, configPath);
  const tokenizerConfigPath = join(dir, "tokenizer_config.json");
  const tokenizerConfigJson = readText(tokenizerConfigPath);
  const tokenizerConfig = tokenizerConfigJson === null ? null : readJsonObject(tokenizerConfigPath);
  const tokenizerJson = readText(join(dir, "tokenizer.json"));
  const tokenizer: TokenizerPayload | null = tokenizerJson === null ? null : { kind: "hf-json", tokenizerJson, tokenizerConfigJson };
  const chatTemplate = chatTemplateOf(dir, tokenizerConfig);

  const weights = openSafetensorsModel(dir);
  try {
    for (const name of weights.tensors.keys()) {
      if (name.endsWith(".bias")) {
        throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, "linear biases are not supported", {
          path: weights.tensor(name).file.path,
          field: name,
          expected: "no bias tensors (BitNet b1.58 has none)",
          actual: name,
          hint: "This checkpoint is a different architecture",
        });
      }
    }
    let packedCount = 0;
    let masterCount = 0;
    const layers: LayerTensors[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const entries: Record<string, FloatTensor | TernaryTensor> = {};
      for (const role of NORM_ROLES) entries[role] = floatFrom(weights, hfLayerTensor(l, role), `blk.${l}.${role}`, [normLength(config, role)]);
      for (const role of TERNARY_ROLES) {
        const [rows, cols] = ternaryShape(config, role);
        const { tensor, packed } = ternaryFrom(weights, l, role, rows, cols);
        entries[role] = tensor;
        if (packed) packedCount++;
        else masterCount++;
      }
      layers.push(entries as unknown as LayerTensors);
    }
    const embeddingShape = [config.vocabSize, config.hiddenSize];
    const metadata: Record<string, string> = {
      "hf.variant": masterCount === 0 ? "packed" : packedCount === 0 ? "bf16" : "mixed",
    };
    if (masterCount > 0) metadata["hf.ternarisation"] = HF_TERNARISATION_NOTE;
    if (typeof configJson["torch_dtype"] === "string") metadata["hf.torch_dtype"] = configJson["torch_dtype"];
    for (const [key, value] of Object.entries(weights.files[0]?.metadata ?? {})) metadata[`safetensors.${key}`] = value;
    return {
      config,
      tokenEmbedding: floatFrom(weights, HF_EMBEDDING, "token_embd", embeddingShape),
      outputNorm: floatFrom(weights, HF_OUTPUT_NORM, "output_norm", [config.hiddenSize]),
      lmHead: config.tiedEmbeddings ? null : floatFrom(weights, HF_LM_HEAD, "output", embeddingShape),
      layers,
      tokenizer,
      chatTemplate,
      metadata,
      source: { format: "hf-snapshot", version: null, path: dir },
      close(): void {
        weights.close();
      },
    };
  } catch (error) {
    weights.close();
    throw error;
  }
}
