// Writes a HaloModel as a seed `.h1b` (v1–v4, any flag), tensor by tensor, from any packing and scale.
import { open, rename, rm, writeFile } from "node:fs/promises";
import { extname } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { TERNARY_ROLES, type FloatTensor, type HaloModel, type TernaryScale, type TernaryTensor } from "../../core/model.js";
import { floatCodec, ternaryCodec } from "../../codecs/registry.js";
import { BONSAI_BLOCK } from "../../codecs/seed.js";
import {
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
  packingOf,
  type H1bDims,
} from "./h1b-layout.js";
import { writeHtok } from "./htok.js";
import { rangeReader } from "./range-reader.js";
import { toHtokTokenizer } from "../../core/tokenizer-payload.js";

/** Options of {@link writeH1b} and {@link encodeH1b}. */
export interface WriteH1bOptions {
  /**
   * Format version: 1/2 HaloV2, 3 Sherry, 4 TQ1V4 (Bonsai flags override the packing).
   * Default: the source's version for a model read from `.h1b`, else 2.
   */
  readonly version?: 1 | 2 | 3 | 4;
  /**
   * The flag word (cfg[8]). Bit 0x1 must match `config.hadamardRotated`. Default: the source's
   * flags when the model was read from `.h1b` and the version is unchanged, else just 0x1 when rotated.
   */
  readonly flags?: number;
  /**
   * Accept lossy conversions: Sherry's 3:4 sparsity, Bonsai Q1's missing zero, per-block scales
   * that differ within a row (averaged), fp16 rounding of Bonsai scales, dropping an untied LM
   * head, non-default rope/eps in v1, a SiLU model. Default false (throws `H1B_LOSSY_CONVERSION`).
   */
  readonly force?: boolean;
  /**
   * Write the tokenizer as `<stem>.htok` next to the file (converted from tokenizer.json or GGUF
   * metadata when needed; merges `.htok` cannot express are dropped and counted, as the seed's
   * exporter did). Default true when the model has a tokenizer.
   */
  readonly htokSidecar?: boolean;
}

/** What a write did. */
export interface WriteH1bSummary {
  readonly bytes: number;
  readonly version: 1 | 2 | 3 | 4;
  readonly flags: number;
  /** Ternary weights the packing changed (Sherry, Bonsai Q1), with `force`. */
  readonly changedWeights: number;
  /** Scale groups that could not be stored exactly (averaged or rounded), with `force`. */
  readonly inexactScales: number;
  /** The `.htok` sidecar written, or null. */
  readonly htokPath: string | null;
  /** Tokenizer merges the `.htok` could not express (0 when none or no sidecar). */
  readonly droppedMerges: number;
}

interface Plan {
  readonly path: string;
  readonly version: 1 | 2 | 3 | 4;
  readonly flags: number;
  readonly dims: H1bDims;
  readonly header: Uint8Array;
  readonly totalBytes: number;
  readonly force: boolean;
  changedWeights: number;
  inexactScales: number;
}

function lossy(path: string, summary: string, field: string, expected: unknown, actual: unknown, hint = "Pass force: true to accept the change"): HaloError {
  return new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, summary, { path, field, expected, actual, hint });
}

function badArgument(path: string, summary: string, field: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, summary, { path, field, expected, actual });
}

function badTensor(path: string, summary: string, field: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_TENSOR, summary, { path, field, expected, actual });
}

/** Resolves version and flags, checks the model fits the format, builds the header. */
function plan(model: HaloModel, options: WriteH1bOptions, path: string): Plan {
  const config = model.config;
  const force = options.force ?? false;
  const fromH1b = model.source.format === "h1b";
  const sourceVersion =
    fromH1b && model.source.version !== null && model.source.version >= 1 && model.source.version <= 4 ? (model.source.version as 1 | 2 | 3 | 4) : null;
  const version = options.version ?? sourceVersion ?? 2;
  if (![1, 2, 3, 4].includes(version)) throw badArgument(path, "unsupported .h1b version", "version", "1, 2, 3 or 4", version);
  const hadamard = config.hadamardRotated ? H1bFlag.HADAMARD_ROTATED : 0;
  let flags: number;
  if (options.flags !== undefined) {
    flags = options.flags;
  } else {
    const stored = Number(model.metadata["h1b.flags"]);
    flags = fromH1b && version === sourceVersion && Number.isInteger(stored) ? (stored & ~H1bFlag.HADAMARD_ROTATED) | hadamard : hadamard;
  }
  checkFlags(flags, path, undefined);
  if ((flags & H1bFlag.HADAMARD_ROTATED) !== hadamard) {
    throw badArgument(
      path,
      "flag 0x1 (HADAMARD_ROTATED) must match config.hadamardRotated",
      "flags",
      `0x1 ${config.hadamardRotated ? "set" : "clear"}`,
      `0x${flags.toString(16)}`,
    );
  }
  if (config.headDim * config.numHeads !== config.hiddenSize) {
    throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, ".h1b derives head_dim as hidden_size / num_heads", {
      path,
      field: "headDim",
      expected: config.hiddenSize / config.numHeads,
      actual: config.headDim,
      hint: "Write this model to GGUF or the halo container instead",
    });
  }
  if (config.activation !== "relu2" && !force) {
    throw lossy(
      path,
      ".h1b has no activation field and seed runtimes assume ReLU²; writing a SiLU model would change it",
      "activation",
      "relu2",
      config.activation,
    );
  }
  if (model.lmHead !== null && !force) {
    throw lossy(path, ".h1b has no LM head slot; the untied head would be dropped", "lmHead", "a tied model (lmHead null)", model.lmHead.name);
  }
  if (version === 1 && !force && (config.ropeTheta !== DEFAULT_ROPE_THETA || config.rmsNormEps !== DEFAULT_RMS_NORM_EPS)) {
    throw lossy(
      path,
      ".h1b v1 cannot store rope_theta / rms_norm_eps (readers assume 500000 / 1e-5)",
      "version",
      "rope_theta 500000 and rms_norm_eps 1e-5 for v1",
      `${config.ropeTheta} / ${config.rmsNormEps}`,
      "Write version 2 or later, or pass force",
    );
  }
  for (const [field, value] of [
    ["hiddenSize", config.hiddenSize],
    ["intermediateSize", config.intermediateSize],
    ["numLayers", config.numLayers],
    ["numHeads", config.numHeads],
    ["numKvHeads", config.numKvHeads],
    ["vocabSize", config.vocabSize],
    ["maxPositionEmbeddings", config.maxPositionEmbeddings],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0 || value > 0x7fffffff)
      throw badArgument(path, "dimension does not fit an i32 config field", field, "1 … 2^31 - 1", value);
  }
  const dims: H1bDims = config;
  const format = h1bWeightFormat(version, flags);
  const layout = h1bLayout(dims, version, format, path);

  const headerBytes = version === 1 ? H1B_HEADER_V1 : H1B_HEADER_V2;
  const header = new Uint8Array(headerBytes);
  const dv = new DataView(header.buffer);
  header.set(H1B_MAGIC, 0);
  dv.setInt32(4, version, true);
  const ints = [
    config.hiddenSize,
    config.intermediateSize,
    config.numLayers,
    config.numHeads,
    config.numKvHeads,
    config.vocabSize,
    config.maxPositionEmbeddings,
    model.lmHead === null ? 1 : 0,
    flags,
  ];
  ints.forEach((v, i) => dv.setInt32(cfgOffset(i), v, true));
  if (version >= 2) {
    dv.setFloat32(0x2c, config.ropeTheta, true);
    dv.setFloat32(0x30, config.rmsNormEps, true);
  }
  // Restore header fields that carry no meaning beyond what the config holds (magic byte 3, raw
  // max_seq_len / tie / ≤ 0 rope and eps) when they still map to the model's config.
  const raw = model.extras?.get("h1b.header");
  if (raw !== undefined && raw.byteLength >= H1B_HEADER_V1) {
    const rv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    header[3] = raw[3]!;
    const maxSeq = rv.getInt32(cfgOffset(6), true);
    if ((maxSeq > 0 ? maxSeq : DEFAULT_MAX_SEQ_LEN) === config.maxPositionEmbeddings) dv.setInt32(cfgOffset(6), maxSeq, true);
    if (model.lmHead === null) dv.setInt32(cfgOffset(7), rv.getInt32(cfgOffset(7), true), true);
    if (version >= 2 && raw.byteLength >= H1B_HEADER_V2) {
      for (const [offset, value, fallback] of [
        [0x2c, config.ropeTheta, DEFAULT_ROPE_THETA],
        [0x30, config.rmsNormEps, DEFAULT_RMS_NORM_EPS],
      ] as const) {
        const stored = rv.getFloat32(offset, true);
        if ((stored > 0 ? f32Decimal(stored) : fallback) === value) header.set(raw.subarray(offset, offset + 4), offset);
      }
    }
  }
  const trailing = model.extras?.get("h1b.trailing")?.byteLength ?? 0;
  const totalBytes = Number(layout.totalBytes) + trailing;
  if (!Number.isSafeInteger(totalBytes)) throw badArgument(path, "model too large for .h1b", "config", "a payload below 2^53 bytes", String(layout.totalBytes));
  return { path, version, flags, dims, header, totalBytes, force, changedWeights: 0, inexactScales: 0 };
}

/** Rows per chunk: about 1 MiB of trits. */
function chunkRows(cols: number, rows: number): number {
  return Math.max(1, Math.min(rows, Math.floor((1 << 20) / cols)));
}

/** f32 bytes of a float tensor of `count` elements, in chunks. */
function* floatAsF32(tensor: FloatTensor, shape: readonly number[], path: string): Generator<Uint8Array> {
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
    throw badTensor(path, `tensor ${tensor.name} has the wrong shape for .h1b`, tensor.name, shape, tensor.shape);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const ranged = tensor.dtype === "f32" ? rangeReader(tensor) : null;
  if (ranged !== null) {
    // A tensor of a seed file: stream it in 4 MiB reads instead of loading it whole.
    for (let at = 0; at < tensor.byteLength; at += 1 << 22) yield ranged(at, Math.min(1 << 22, tensor.byteLength - at));
    return;
  }
  const bytes = tensor.bytes();
  if (tensor.dtype === "f32") {
    for (let at = 0; at < bytes.byteLength; at += 1 << 22) yield bytes.subarray(at, Math.min(bytes.byteLength, at + (1 << 22)));
    return;
  }
  const codec = floatCodec(tensor.dtype);
  const blocksPerChunk = Math.max(1, Math.floor((1 << 20) / codec.blockSize));
  for (let block = 0; block * codec.blockSize < count; block += blocksPerChunk) {
    const blocks = Math.min(blocksPerChunk, count / codec.blockSize - block);
    const values = codec.decode(bytes.subarray(block * codec.blockBytes, (block + blocks) * codec.blockBytes), blocks * codec.blockSize);
    yield new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  }
}

/**
 * Scales regrouped to `group` consecutive weights of a row (group divides cols): exact when every
 * source scale inside a group is the same, else the mean, counted as inexact.
 */
function regroupScale(scale: TernaryScale, rows: number, cols: number, group: number): { values: Float32Array; inexact: number } {
  const perRow = cols / group;
  const values = new Float32Array(rows * perRow);
  let inexact = 0;
  switch (scale.kind) {
    case "tensor":
      values.fill(scale.value);
      break;
    case "row":
      for (let r = 0; r < rows; r++) values.fill(scale.values[r]!, r * perRow, (r + 1) * perRow);
      break;
    case "block": {
      const source = scale.values;
      const size = scale.blockSize;
      for (let g = 0; g < values.length; g++) {
        const first = Math.floor((g * group) / size);
        const last = Math.floor(((g + 1) * group - 1) / size);
        let sum = 0;
        let same = true;
        for (let b = first; b <= last; b++) {
          sum += source[b]!;
          if (!Object.is(source[b], source[first])) same = false;
        }
        if (same) values[g] = source[first]!;
        else {
          values[g] = sum / (last - first + 1);
          inexact++;
        }
      }
      break;
    }
  }
  return { values, inexact };
}

function* ternaryBytes(tensor: TernaryTensor, rows: number, cols: number, packing: string, state: Plan): Generator<Uint8Array> {
  const path = state.path;
  if (tensor.rows !== rows || tensor.cols !== cols) {
    throw badTensor(path, `tensor ${tensor.name} has the wrong shape for .h1b`, tensor.name, [rows, cols], [tensor.rows, tensor.cols]);
  }
  const codec = ternaryCodec(packing);
  const bonsai = packing === "bonsai-tq2" || packing === "bonsai-q1";
  const group = bonsai ? BONSAI_BLOCK : cols;
  const { values, inexact } =
    bonsai && tensor.packing === packing ? { values: new Float32Array(0), inexact: 0 } : regroupScale(tensor.scale, rows, cols, group);
  if (inexact > 0) {
    if (!state.force) {
      throw lossy(
        path,
        `tensor ${tensor.name}: its scales differ inside ${bonsai ? "128-weight blocks" : "rows"}, and .h1b stores one per ${bonsai ? "block" : "row"}`,
        tensor.name,
        `one scale per ${bonsai ? "128-weight block" : "row"}`,
        `${inexact} groups with differing scales`,
        "Pass force: true to average them",
      );
    }
    state.inexactScales += inexact;
  }
  if (tensor.packing === packing) {
    // Same packing: copy the bytes verbatim (keeps even non-canonical codes byte-identical).
    const bytes = tensor.bytes();
    if (bytes.byteLength !== codec.byteLength(rows, cols)) {
      throw badTensor(path, `tensor ${tensor.name} has the wrong byte length`, tensor.name, codec.byteLength(rows, cols), bytes.byteLength);
    }
    yield bytes;
  } else {
    const step = chunkRows(cols, rows);
    const trits = new Int8Array(step * cols);
    const perRow = cols / group;
    for (let r = 0; r < rows; r += step) {
      const n = Math.min(step, rows - r);
      const chunk = trits.subarray(0, n * cols);
      tensor.decodeRows(r, n, chunk);
      try {
        yield codec.encode(chunk, n, cols, {
          force: state.force,
          report: (changed) => (state.changedWeights += changed),
          scale: { kind: "block", blockSize: group, values: values.subarray(r * perRow, (r + n) * perRow) },
        });
      } catch (error) {
        if (error instanceof HaloError && error.code === H1bErrorCode.H1B_LOSSY_CONVERSION) {
          throw new HaloError(error.code, `tensor ${tensor.name} (rows ${r}…${r + n - 1}): the ${packing} packing would change it`, {
            path,
            field: tensor.name,
            expected: error.expected,
            actual: error.actual,
            hint: "Pass force: true to accept the change",
            cause: error,
          });
        }
        throw error;
      }
    }
  }
  if (!bonsai) {
    // Row scales go out as stored (bit patterns, NaN payloads included); others as regrouped.
    const scale = tensor.scale;
    const scales = scale.kind === "row" && scale.values.length === rows ? scale.values : values;
    yield new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength);
  }
}

function legacySlots(model: HaloModel, layer: number, hs: number): Uint8Array {
  const kept = model.extras?.get(`h1b.legacy.${layer}`);
  if (kept !== undefined && kept.byteLength === 20 * hs) return kept;
  // A fresh writer fills 3 copies of attn_sub_norm and 2 of the first hs values of ffn_sub_norm.
  const out = new Float32Array(5 * hs);
  const attnSub = model.layers[layer]!.attnSubNorm.toFloat32();
  const ffnSub = model.layers[layer]!.ffnSubNorm.toFloat32();
  for (let i = 0; i < 3; i++) out.set(attnSub.subarray(0, hs), i * hs);
  for (let i = 3; i < 5; i++) out.set(ffnSub.subarray(0, hs), i * hs);
  return new Uint8Array(out.buffer);
}

/** The file as a sequence of chunks, in order. */
function* chunks(model: HaloModel, state: Plan): Generator<Uint8Array> {
  const { dims } = state;
  const hs = dims.hiddenSize;
  const packing = packingOf(h1bWeightFormat(state.version, state.flags));
  if (model.layers.length !== dims.numLayers) {
    throw badTensor(state.path, "model has a different number of layers than its config", "layers", dims.numLayers, model.layers.length);
  }
  yield state.header;
  yield* floatAsF32(model.tokenEmbedding, [dims.vocabSize, hs], state.path);
  yield* floatAsF32(model.outputNorm, [hs], state.path);
  for (let l = 0; l < dims.numLayers; l++) {
    const layer = model.layers[l]!;
    yield* floatAsF32(layer.attnNorm, [hs], state.path);
    yield* floatAsF32(layer.ffnNorm, [hs], state.path);
    yield* floatAsF32(layer.attnSubNorm, [hs], state.path);
    yield legacySlots(model, l, hs);
    yield* floatAsF32(layer.ffnSubNorm, [dims.intermediateSize], state.path);
    for (const role of TERNARY_ROLES) {
      const [rows, cols] = h1bTernaryShape(dims, role);
      yield* ternaryBytes(layer[role], rows, cols, packing, state);
    }
  }
  const trailing = model.extras?.get("h1b.trailing");
  if (trailing !== undefined && trailing.byteLength > 0) yield trailing;
}

/**
 * Encodes a model as `.h1b` bytes in memory (for tests and small models; use {@link writeH1b}
 * for real ones). Same conversion rules as {@link writeH1b}.
 *
 * @example
 * ```ts
 * const bytes = encodeH1b(synthModel({ shape: "tiny" }), { version: 2 });
 * const again = readH1b(memorySource(bytes));
 * ```
 */
export function encodeH1b(model: HaloModel, options: WriteH1bOptions = {}): Uint8Array {
  const state = plan(model, options, "<memory>");
  const out = new Uint8Array(state.totalBytes);
  let at = 0;
  for (const chunk of chunks(model, state)) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  if (at !== out.byteLength) throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "internal: .h1b size mismatch", { expected: out.byteLength, actual: at });
  return out;
}

/**
 * Writes a model as a seed `.h1b`, streaming tensor by tensor (a 2B model never sits in memory
 * whole): to `<path>.tmp`, renamed over `path` when complete. Ternary tensors in any registered
 * packing are decoded row-chunk by row-chunk and re-encoded (or copied verbatim when the packing
 * already matches). Tensor scales are replicated per row (exact); block scales that are equal
 * within each row (or Bonsai block) are exact; anything else throws `H1B_LOSSY_CONVERSION` unless
 * `force`. Writes the tokenizer as `<stem>.htok` next to the file (see `htokSidecar`).
 *
 * @example
 * ```ts
 * const model = readH1b("bitnet-2b.h1b");
 * await writeH1b(model, "bitnet-2b-tq1.h1b", { version: 4 });
 * ```
 */
export async function writeH1b(model: HaloModel, path: string, options: WriteH1bOptions = {}): Promise<WriteH1bSummary> {
  const state = plan(model, options, path);
  // Convert the tokenizer first, so a tokenizer .htok cannot hold fails before anything is written.
  const htok = (options.htokSidecar ?? true) && model.tokenizer !== null ? toHtokTokenizer(model.tokenizer) : null;
  // BOS/EOS from the config (the seed's .htok holds end_of_text as EOS; readH1b adds <|eot_id|>).
  const htokBytes =
    htok === null
      ? null
      : writeHtok({
          ...htok.payload,
          bosTokenId: model.config.bosTokenId ?? htok.payload.bosTokenId,
          eosTokenId: model.config.eosTokenIds[0] ?? htok.payload.eosTokenId,
        });
  const temp = `${path}.tmp`;
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  let written = 0;
  try {
    handle = await open(temp, "w");
    for (const chunk of chunks(model, state)) {
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
        done += bytesWritten;
      }
      written += chunk.byteLength;
    }
    await handle.close();
    handle = null;
    await rename(temp, path);
  } catch (error) {
    if (handle !== null) await handle.close().catch(() => undefined);
    await rm(temp, { force: true }).catch(() => undefined);
    if (error instanceof HaloError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new HaloError(H1bErrorCode.H1B_IO, "writing the .h1b failed", {
      path,
      actual: code ?? String(error),
      hint: "Check free disk space and permissions",
      cause: error,
    });
  }
  let htokPath: string | null = null;
  if (htokBytes !== null) {
    htokPath = `${path.slice(0, path.length - extname(path).length)}.htok`;
    try {
      await writeFile(htokPath, htokBytes);
    } catch (error) {
      throw new HaloError(H1bErrorCode.H1B_IO, "writing the .htok sidecar failed", { path: htokPath, actual: String(error), cause: error });
    }
  }
  return {
    bytes: written,
    version: state.version,
    flags: state.flags,
    changedWeights: state.changedWeights,
    inexactScales: state.inexactScales,
    htokPath,
    droppedMerges: htok?.droppedMerges ?? 0,
  };
}
