// Reads a seed `.h1b` (v1–v4, every flag) into a HaloModel of lazy tensors over a ByteSource.
import { existsSync } from "node:fs";
import { extname } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { fileSource, type ByteSource } from "../../core/byte-source.js";
import { validateConfig } from "../../core/config.js";
import {
  TERNARY_ROLES,
  type FloatTensor,
  type HaloModel,
  type LayerTensors,
  type ModelConfig,
  type TernaryScale,
  type TernaryTensor,
} from "../../core/model.js";
import { floatTensor, lazyTernaryTensor } from "../../core/tensors.js";
import { f32Codec } from "../../codecs/plain.js";
import { ternaryCodec } from "../../codecs/registry.js";
import { bonsaiScales } from "../../codecs/seed.js";
import {
  CFG_FIELDS,
  DEFAULT_MAX_SEQ_LEN,
  DEFAULT_RMS_NORM_EPS,
  DEFAULT_ROPE_THETA,
  H1B_HEADER_V1,
  H1B_HEADER_V2,
  H1B_MAGIC,
  H1bFlag,
  cfgOffset,
  checkFlags,
  f32Decimal,
  h1bLayout,
  h1bTernaryShape,
  h1bWeightFormat,
  hasRowScales,
  packingOf,
  slotAt,
  type H1bDims,
  type H1bLayout,
  type H1bWeightFormat,
} from "./h1b-layout.js";
import { htokToTokenizerPayload, readHtok, type HtokData } from "./htok.js";
import { LazyBytesMap } from "./lazy-bytes-map.js";
import { registerRangeReader } from "./range-reader.js";

/** Options of {@link readH1b}. */
export interface ReadH1bOptions {
  /**
   * The tokenizer sidecar: a path, or `false` for none. Default: `<stem>.htok` next to the file
   * when it exists (never for in-memory sources).
   */
  readonly htok?: string | false;
}

/** The parsed header of an `.h1b` file. */
export interface H1bHeader {
  readonly version: 1 | 2 | 3 | 4;
  /** cfg[0..8] as stored. */
  readonly cfg: Int32Array;
  readonly flags: number;
  readonly weightFormat: H1bWeightFormat;
  /** Stored rope_theta / rms_norm_eps (NaN for v1, where the fields do not exist). */
  readonly ropeThetaRaw: number;
  readonly rmsNormEpsRaw: number;
  /** The header bytes exactly as stored (44 or 52). */
  readonly bytes: Uint8Array;
}

function bad(code: string, summary: string, path: string, offset: number, field: string, expected: unknown, actual: unknown, hint?: string): HaloError {
  return new HaloError(code, summary, hint === undefined ? { path, offset, field, expected, actual } : { path, offset, field, expected, actual, hint });
}

/**
 * Parses and validates the header (magic, version, config ints, flags, rope/eps) of a source.
 * Throws `H1B_TRUNCATED`, `H1B_BAD_MAGIC`, `H1B_BAD_VERSION`, `H1B_BAD_DIMENSION`, `H1B_BAD_FLAGS`.
 *
 * @example
 * ```ts
 * const header = readH1bHeader(fileSource("model.h1b"));
 * console.log(header.version, header.weightFormat);
 * ```
 */
export function readH1bHeader(source: ByteSource): H1bHeader {
  const path = source.path;
  const size = source.byteLength;
  if (size < 8) {
    throw bad(H1bErrorCode.H1B_TRUNCATED, "file ends inside the .h1b magic/version", path, size, "header", "at least 8 bytes", `${size} bytes`);
  }
  const head = source.read(0, 8);
  if (head[0] !== H1B_MAGIC[0] || head[1] !== H1B_MAGIC[1] || head[2] !== H1B_MAGIC[2]) {
    throw bad(
      H1bErrorCode.H1B_BAD_MAGIC,
      "not an .h1b file",
      path,
      0,
      "magic",
      "48 31 42 (H1B)",
      Buffer.from(head.subarray(0, 4)).toString("hex"),
      "Pass a seed .h1b model, or use the reader of the file's real format",
    );
  }
  const version = new DataView(head.buffer, head.byteOffset, 8).getInt32(4, true);
  if (version < 1 || version > 4) {
    throw bad(
      H1bErrorCode.H1B_BAD_VERSION,
      "unsupported .h1b version",
      path,
      4,
      "version",
      "1, 2, 3 or 4",
      version,
      version === 5 ? "Version 5 (WMMA_I8) postdates the seed format; convert it with the tool that wrote it" : undefined,
    );
  }
  const headerBytes = version === 1 ? H1B_HEADER_V1 : H1B_HEADER_V2;
  if (size < headerBytes) {
    throw bad(H1bErrorCode.H1B_TRUNCATED, "file ends inside the .h1b header", path, size, "header", `${headerBytes} bytes (v${version})`, `${size} bytes`);
  }
  const bytes = source.read(0, headerBytes).slice();
  const dv = new DataView(bytes.buffer);
  const cfg = new Int32Array(9);
  for (let i = 0; i < 9; i++) cfg[i] = dv.getInt32(cfgOffset(i), true);
  const flags = cfg[8]!;
  checkFlags(flags, path, cfgOffset(8));
  const ropeThetaRaw = version >= 2 ? dv.getFloat32(0x2c, true) : NaN;
  const rmsNormEpsRaw = version >= 2 ? dv.getFloat32(0x30, true) : NaN;
  if (version >= 2) {
    for (const [field, value, offset] of [
      ["rope_theta", ropeThetaRaw, 0x2c],
      ["rms_norm_eps", rmsNormEpsRaw, 0x30],
    ] as const) {
      if (!Number.isFinite(value)) {
        throw bad(
          H1bErrorCode.H1B_BAD_DIMENSION,
          `${field} is not a finite number`,
          path,
          offset,
          field,
          "a finite f32 (≤ 0 selects the default)",
          String(value),
        );
      }
    }
  }
  return {
    version: version as 1 | 2 | 3 | 4,
    cfg,
    flags,
    weightFormat: h1bWeightFormat(version, flags),
    ropeThetaRaw,
    rmsNormEpsRaw,
    bytes,
  };
}

/** Checks the six layout dimensions; returns them. */
function checkDims(cfg: Int32Array, path: string): H1bDims {
  const positive = (index: number): number => {
    const value = cfg[index]!;
    if (value <= 0) {
      throw bad(
        H1bErrorCode.H1B_BAD_DIMENSION,
        `${CFG_FIELDS[index]} must be positive`,
        path,
        cfgOffset(index),
        `cfg[${index}].${CFG_FIELDS[index]}`,
        "> 0",
        value,
        index === 2 ? "The seed accepts an empty layer stack; halo cannot run one" : undefined,
      );
    }
    return value;
  };
  const hiddenSize = positive(0);
  const intermediateSize = positive(1);
  const numLayers = positive(2);
  const numHeads = positive(3);
  const numKvHeads = positive(4);
  const vocabSize = positive(5);
  if (hiddenSize % numHeads !== 0) {
    throw bad(
      H1bErrorCode.H1B_BAD_DIMENSION,
      "num_heads must divide hidden_size (head_dim = hidden_size / num_heads)",
      path,
      cfgOffset(3),
      "cfg[3].num_heads",
      `a divisor of hidden_size ${hiddenSize}`,
      numHeads,
    );
  }
  if (numHeads % numKvHeads !== 0) {
    throw bad(
      H1bErrorCode.H1B_BAD_DIMENSION,
      "num_kv_heads must divide num_heads",
      path,
      cfgOffset(4),
      "cfg[4].num_kv_heads",
      `a divisor of num_heads ${numHeads}`,
      numKvHeads,
    );
  }
  if ((hiddenSize / numHeads) % 2 !== 0) {
    throw bad(
      H1bErrorCode.H1B_BAD_DIMENSION,
      "head_dim must be even for RoPE",
      path,
      cfgOffset(3),
      "cfg[3].num_heads",
      "hidden_size / num_heads even",
      hiddenSize / numHeads,
    );
  }
  return { hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, vocabSize };
}

/** Checks the file holds the whole payload; names the slot where it ends. */
function checkSize(layout: H1bLayout, source: ByteSource): void {
  const size = source.byteLength;
  if (layout.totalBytes <= BigInt(size)) return;
  if (layout.totalBytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new HaloError(H1bErrorCode.H1B_TOO_LARGE, "the header's dimensions describe a payload larger than any file", {
      path: source.path,
      offset: cfgOffset(0),
      field: "cfg[0..5]",
      expected: `a payload of at most ${size} bytes (the file size)`,
      actual: `${layout.totalBytes} bytes`,
      hint: "The header is corrupt",
    });
  }
  throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `file ends inside ${slotAt(layout, size)}`, {
    path: source.path,
    offset: size,
    field: slotAt(layout, size),
    expected: `${layout.totalBytes} bytes for the declared dimensions`,
    actual: `${size} bytes`,
    hint: "The file is truncated, or its header's dimensions are wrong; download or convert it again",
  });
}

/**
 * Refuses a file with at least one f32 embedding row (4 · hidden_size bytes) after the last layer.
 * The format has no size field, so a header whose dimensions were changed downwards (fewer KV
 * heads, a smaller FFN, fewer layers or tokens) still "fits" and would run as garbage; the seed
 * writers never leave more than a few bytes of padding.
 */
function checkTrailing(layout: H1bLayout, dims: H1bDims, source: ByteSource): void {
  const trailing = source.byteLength - Number(layout.totalBytes);
  const limit = 4 * dims.hiddenSize;
  if (trailing < limit) return;
  throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "the file is larger than its header's dimensions describe", {
    path: source.path,
    offset: Number(layout.totalBytes),
    field: "cfg[0..5]",
    expected: `${layout.totalBytes} bytes for the declared dimensions (plus fewer than ${limit} trailing bytes)`,
    actual: `${source.byteLength} bytes (${trailing} after the last layer)`,
    hint: "The header's dimensions (intermediate_size, num_kv_heads, num_layers, vocab_size) do not match the weights; download or convert the model again",
  });
}

/** @internal The `.htok` a `.h1b` is read with: the option's, else `<stem>.htok` when it exists. */
export function sidecarPath(path: string, option: string | false | undefined): string | null {
  if (option === false) return null;
  if (option !== undefined) return option;
  if (path.startsWith("<")) return null;
  const stem = path.slice(0, path.length - extname(path).length);
  const candidate = `${stem}.htok`;
  return existsSync(candidate) ? candidate : null;
}

/** The id of `<|eot_id|>` when present (the seed stops on it as well as on eos_id). */
function eotId(htok: HtokData): number | null {
  const want = Buffer.from("<|eot_id|>");
  const index = htok.tokens.findIndex((t) => t.byteLength === want.byteLength && want.equals(t));
  return index < 0 ? null : index;
}

function lazyRowScales(source: ByteSource, offset: number, rows: number): TernaryScale {
  let values: Float32Array | null = null;
  return {
    kind: "row",
    get values(): Float32Array {
      values ??= f32Codec.decode(source.read(offset, 4 * rows), rows);
      return values;
    },
  };
}

/**
 * Opens a seed `.h1b` model. Only the header is read up front; tensors read their bytes from the
 * source when used. Every §1.7 check of the seed loaders is applied, plus halo's own (positive
 * layer count, KV heads dividing heads, even head width), each as a `HaloError` naming the file,
 * field, offset, expected and actual value.
 *
 * Mapping (docs/formats/h1b.md): v1 gets rope_theta 500000 and eps 1e-5, as do stored values ≤ 0;
 * flag 0x1 → `config.hadamardRotated`; the weight format (HaloV2, Sherry, Sherry-fp16, TQ1V4,
 * Bonsai TQ2/Q1) → tensor packings, with per-row f32 scales (`row`) or Bonsai's inline fp16 block
 * scales (`block`, 128). The format has no LM head: `config.tiedEmbeddings` is always true and a
 * stored `tie_embeddings = 0` is reported in `metadata["h1b.tie_embeddings"]`. The format has no
 * activation field: `relu2` (BitNet b1.58-2B-4T). BOS/EOS come from the `.htok` sidecar (EOS plus
 * `<|eot_id|>` when the vocabulary has it). Legacy norm slots, the raw header and trailing bytes
 * go to `model.extras` (`h1b.legacy.<layer>`, `h1b.header`, `h1b.trailing`) so
 * {@link writeH1b} reproduces the file byte for byte.
 *
 * @example
 * ```ts
 * const model = readH1b("bitnet-2b.h1b");
 * console.log(model.config.hiddenSize, model.metadata["h1b.weight_format"]);
 * model.close();
 * ```
 */
export function readH1b(input: string | ByteSource, options: ReadH1bOptions = {}): HaloModel {
  const owned = typeof input === "string";
  const source = owned ? fileSource(input) : input;
  try {
    return openModel(source, options);
  } catch (error) {
    if (owned) source.close();
    throw error;
  }
}

function openModel(source: ByteSource, options: ReadH1bOptions): HaloModel {
  const path = source.path;
  const header = readH1bHeader(source);
  const dims = checkDims(header.cfg, path);
  const format = header.weightFormat;
  const packing = packingOf(format);
  const layout = h1bLayout(dims, header.version, format, path);
  checkSize(layout, source);
  checkTrailing(layout, dims, source);

  const hs = dims.hiddenSize;
  const headDim = hs / dims.numHeads;
  const sidecar = sidecarPath(path, options.htok);
  const htok = sidecar === null ? null : readHtok(sidecar);
  if (htok !== null && htok.tokens.length !== dims.vocabSize) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "the .htok sidecar's vocabulary does not match the model", {
      path: sidecar ?? path,
      offset: 4,
      field: "vocab_size",
      expected: dims.vocabSize,
      actual: htok.tokens.length,
      hint: "Use the .htok that was exported with this model",
    });
  }
  const eot = htok === null ? null : eotId(htok);
  const maxSeqRaw = header.cfg[6]!;
  const theta = header.version >= 2 && header.ropeThetaRaw > 0 ? f32Decimal(header.ropeThetaRaw) : DEFAULT_ROPE_THETA;
  const eps = header.version >= 2 && header.rmsNormEpsRaw > 0 ? f32Decimal(header.rmsNormEpsRaw) : DEFAULT_RMS_NORM_EPS;
  const config: ModelConfig = validateConfig(
    {
      architecture: "bitnet",
      hiddenSize: hs,
      intermediateSize: dims.intermediateSize,
      numLayers: dims.numLayers,
      numHeads: dims.numHeads,
      numKvHeads: dims.numKvHeads,
      headDim,
      vocabSize: dims.vocabSize,
      maxPositionEmbeddings: maxSeqRaw > 0 ? maxSeqRaw : DEFAULT_MAX_SEQ_LEN,
      ropeTheta: theta,
      rmsNormEps: eps,
      activation: "relu2",
      tiedEmbeddings: true,
      bosTokenId: htok?.bosTokenId ?? null,
      eosTokenIds: htok === null ? [] : eot !== null && eot !== htok.eosTokenId ? [htok.eosTokenId, eot] : [htok.eosTokenId],
      hadamardRotated: (header.flags & H1bFlag.HADAMARD_ROTATED) !== 0,
    },
    path,
  );

  const norm = (name: string, offset: number, length: number): FloatTensor => floatTensor(name, "f32", [length], { source, offset });
  const layers: LayerTensors[] = [];
  const extras: Array<[string, () => Uint8Array]> = [["h1b.header", () => header.bytes.slice()]];
  for (let l = 0; l < dims.numLayers; l++) {
    const base = layout.firstLayerOffset + l * layout.layerBytes;
    const at = (name: string): number => base + layout.slots.find((s) => s.name === name)!.offset;
    const legacyOffset = at("legacy");
    extras.push([`h1b.legacy.${l}`, () => source.read(legacyOffset, 20 * hs).slice()]);
    const entries: Record<string, FloatTensor | TernaryTensor> = {
      attnNorm: norm(`blk.${l}.attn_norm`, at("input_norm"), hs),
      ffnNorm: norm(`blk.${l}.ffn_norm`, at("post_attn_norm"), hs),
      attnSubNorm: norm(`blk.${l}.attn_sub_norm`, at("attn_sub_norm"), hs),
      ffnSubNorm: norm(`blk.${l}.ffn_sub_norm`, at("ffn_sub_norm"), dims.intermediateSize),
    };
    for (const role of TERNARY_ROLES) {
      const [rows, cols] = h1bTernaryShape(dims, role);
      const offset = at(role);
      let scale: TernaryScale;
      if (hasRowScales(format)) {
        scale = lazyRowScales(source, at(`${role}.scales`), rows);
      } else {
        const blockBytes = format === "bonsai-tq2" ? 34 : 18;
        const byteLength = ternaryCodec(packing).byteLength(rows, cols);
        let values: Float32Array | null = null;
        scale = {
          kind: "block",
          blockSize: 128,
          get values(): Float32Array {
            values ??= bonsaiScales(source.read(offset, byteLength), rows, cols, blockBytes);
            return values;
          },
        };
      }
      // Every seed packing stores rows independently: decodeRows reads only the rows asked for.
      entries[role] = lazyTernaryTensor(`blk.${l}.${role}`, packing, rows, cols, scale, { source, offset });
    }
    layers.push(entries as unknown as LayerTensors);
  }
  const payloadEnd = Number(layout.totalBytes);
  const trailing = source.byteLength - payloadEnd;
  if (trailing > 0) extras.push(["h1b.trailing", () => source.read(payloadEnd, trailing).slice()]);

  const tie = header.cfg[7]!;
  const metadata: Record<string, string> = {
    "h1b.version": String(header.version),
    "h1b.flags": String(header.flags),
    "h1b.weight_format": format,
    "h1b.tie_embeddings": String(tie),
    "h1b.max_seq_len": String(maxSeqRaw),
    "h1b.trailing_bytes": String(trailing),
  };
  if (tie !== 1) {
    metadata["h1b.warning"] = `tie_embeddings is ${tie}, but the format has no LM head; the embedding is used as the head (as the seed runtimes do)`;
  }
  return {
    config,
    tokenEmbedding: registerRangeReader(floatTensor("token_embd", "f32", [dims.vocabSize, hs], { source, offset: layout.embeddingOffset }), (offset, length) =>
      source.read(layout.embeddingOffset + offset, length),
    ),
    outputNorm: norm("output_norm", layout.finalNormOffset, hs),
    lmHead: null,
    layers,
    tokenizer: htok === null ? null : htokToTokenizerPayload(htok),
    chatTemplate: null,
    metadata,
    source: { format: "h1b", version: header.version, path },
    extras: new LazyBytesMap(extras),
    close(): void {
      source.close();
    },
  };
}
