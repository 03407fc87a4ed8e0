// writeHalo: streams a HaloModel into a .halo container tensor by tensor, then seals header and preamble.
import { open, rename, rm } from "node:fs/promises";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { validateConfig } from "../../core/config.js";
import {
  NORM_ROLES,
  TERNARY_ROLES,
  normLength,
  ternaryShape,
  type FloatTensor,
  type HaloModel,
  type TernaryTensor,
  type TokenizerPayload,
} from "../../core/model.js";
import { checkCodecs, floatCodec, type TernaryCodecs } from "../../codecs/registry.js";
import packageJson from "../../../package.json" with { type: "json" };
import {
  HALO_DEFAULT_ALIGNMENT,
  HALO_MAX_ALIGNMENT,
  HALO_PREAMBLE_BYTES,
  HALO_VERSION,
  crc32Hex,
  encodePreamble,
  type HaloBlobEntry,
  type HaloHeader,
  type HaloProvenance,
  type HaloTensorEntry,
  type HaloTokenizerEntry,
} from "./halo-layout.js";
import { HALO_INLINE_SCALE_PACKINGS, choosePacking, type HaloPackingOption } from "./choose-packing.js";
import { HALO_PROVENANCE_KEY } from "./read-halo.js";

/**
 * Name and version recorded as the converter in every container's provenance.
 *
 * @example
 * ```ts
 * console.log(HALO_CONVERTER); // e.g. "@halo/h1b-format 0.2.0"
 * ```
 */
export const HALO_CONVERTER = `${packageJson.name} ${packageJson.version}`;

/** Progress of a long write. */
export interface WriteProgress {
  /** Bytes of tensors and blobs written so far. */
  readonly bytesDone: number;
  /** Bytes of tensors and blobs in all. */
  readonly bytesTotal: number;
  /** The tensor or blob just written. */
  readonly item: string;
}

/** Options of {@link writeHalo}. */
export interface WriteHaloOptions {
  /**
   * Ternary packing to store: `"auto"` (default) stores every matrix in the first of `codecs`
   * (a backend's own layout), else as `halo-v2` (`HALO_DEFAULT_PACKING`), whatever the source
   * packing; a packing name (a format packing or one of `codecs`); a codec object; or a function
   * per tensor (`(t) => t.packing` keeps the source's bytes).
   */
  readonly packing?: HaloPackingOption;
  /**
   * Codecs of packings that are not h1b-format's own — a backend's layouts, e.g.
   * `backendFactory.packings` of `@halo/kernels-cpu` (`halo-i2x256`, which that backend maps
   * zero-copy) — for this call only, never registered globally. The first is what `"auto"` stores.
   * Default none.
   */
  readonly codecs?: TernaryCodecs;
  /** Alignment of every tensor and blob: a power of two, 64 (default) to 2 MiB. 4096 page-aligns tensors. */
  readonly alignment?: number;
  /** Accept lossy packings (Sherry's 3:4 sparsity); the report says how many weights changed. Default false. */
  readonly force?: boolean;
  /** Called after each tensor or blob. */
  readonly onProgress?: (progress: WriteProgress) => void;
  /** Changes made by earlier conversion steps, recorded in the provenance. */
  readonly changes?: readonly string[];
  /** Creation time recorded in the provenance (default now); fix it for byte-reproducible files. */
  readonly createdAt?: Date;
  /**
   * Store an f32 embedding / LM head as f16 (else bf16) when every value converts exactly, halving
   * the largest tensors at no loss (seed `.h1b` files widen an f16 or bf16 embedding to f32).
   * Default true.
   */
  readonly narrowFloats?: boolean;
}

/** What {@link writeHalo} wrote. */
export interface HaloWriteReport {
  readonly path: string;
  readonly byteLength: number;
  /** Weight and norm tensors (scale tensors not counted). */
  readonly tensorCount: number;
  /** Human-readable list of what changed relative to the source; empty for a verbatim copy. */
  readonly changes: readonly string[];
  /** Ternary weights whose value changed (lossy packings only). */
  readonly changedWeights: number;
  readonly lossy: boolean;
}

interface Item {
  /** The directory entry without offset and checksum (those are filled in while writing). */
  readonly entry: { readonly name: string; readonly length: number; readonly [field: string]: unknown };
  readonly isBlob: boolean;
  readonly length: number;
  produce(): Uint8Array;
  offset: number;
  crc32: string;
}

const PLACEHOLDER_CRC = "00000000";

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * Writes a model as a `.halo` container (spec: docs/formats/halo.md). Tensors are produced and
 * written one at a time (peak memory ≈ the largest tensor, plus its trits while one is re-packed),
 * into a temporary file renamed over `path` at the end, so a failed write never leaves a
 * half-written container behind. By default every ternary matrix is stored in the first of
 * `codecs` (a backend's layout, so that backend maps the file), else as `halo-v2`.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-cpu";
 * const model = synthModel({ shape: "tiny", seed: 1 });
 * const report = await writeHalo(model, "tiny.halo", { codecs: backendFactory.packings }); // int8 source → halo-i2x256
 * console.log(report.changes); // ["ternary packing int8 → halo-i2x256 (14 tensors)"]
 * await writeHalo(model, "portable.halo"); // no codecs: halo-v2
 * ```
 */
export async function writeHalo(model: HaloModel, path: string, options: WriteHaloOptions = {}): Promise<HaloWriteReport> {
  const alignment = options.alignment ?? HALO_DEFAULT_ALIGNMENT;
  if (!Number.isSafeInteger(alignment) || alignment < HALO_DEFAULT_ALIGNMENT || alignment > HALO_MAX_ALIGNMENT || (alignment & (alignment - 1)) !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "invalid .halo alignment", {
      field: "alignment",
      expected: `a power of two in [${HALO_DEFAULT_ALIGNMENT}, ${HALO_MAX_ALIGNMENT}]`,
      actual: alignment,
    });
  }
  const codecs = checkCodecs(options.codecs ?? []);
  checkModelShape(model, path);
  const changes: string[] = [...(options.changes ?? [])];
  const repacked = new Map<string, number>();
  let changedWeights = 0;
  const scaleItems: Item[] = [];
  const blobItems: Item[] = [];
  const tensorItems: Item[] = [];

  const addFloat = (tensor: FloatTensor, name: string, role: string, layer: number | null): void => {
    if ((options.narrowFloats ?? true) && tensor.dtype === "f32" && layer === null && tensor.shape.length === 2) {
      const narrowed = narrowExactly(tensor.toFloat32());
      if (narrowed !== null) {
        changes.push(`${name} f32 → ${narrowed.dtype} (every value exact)`);
        let bytes: Uint8Array | null = narrowed.bytes;
        tensorItems.push(
          item({ name, role, layer, kind: "float", dtype: narrowed.dtype, shape: [...tensor.shape], length: narrowed.bytes.byteLength }, false, () => {
            const out = bytes!;
            bytes = null; // let the encoded copy go once written
            return out;
          }),
        );
        return;
      }
    }
    tensorItems.push(
      item({ name, role, layer, kind: "float", dtype: tensor.dtype, shape: [...tensor.shape], length: tensor.byteLength }, false, () => tensor.bytes()),
    );
  };
  const addTernary = (tensor: TernaryTensor, name: string, role: string, layer: number): void => {
    const { packing, codec } = choosePacking(options.packing, tensor, codecs);
    codec?.checkShape(tensor.rows, tensor.cols, name);
    if (packing !== tensor.packing && HALO_INLINE_SCALE_PACKINGS.includes(packing)) {
      throw new HaloError(H1bErrorCode.H1B_UNSUPPORTED, `the container stores ${packing} only from a ${packing} source`, {
        field: "packing",
        expected: `a packing without inline scales (halo-v2, tq1-v4, int8, a backend's layout, …) or a ${packing} source`,
        actual: `${tensor.packing} → ${packing}`,
        hint: "Inline block scales would duplicate the scale tensor; write a GGUF for tq1_0/tq2_0 instead",
      });
    }
    if (packing !== tensor.packing) {
      const key = `${tensor.packing} → ${packing}`;
      repacked.set(key, (repacked.get(key) ?? 0) + 1);
    }
    const scaleName = `${name}.scale`;
    const scaleValues = tensor.scale.kind === "tensor" ? Float32Array.of(tensor.scale.value) : tensor.scale.values;
    scaleItems.push(
      item(
        { name: scaleName, role: "scale", layer, kind: "scale", dtype: "f32", shape: [scaleValues.length], length: scaleValues.length * 4 },
        false,
        () => new Uint8Array(scaleValues.buffer.slice(scaleValues.byteOffset, scaleValues.byteOffset + scaleValues.byteLength)),
      ),
    );
    const scale =
      tensor.scale.kind === "block"
        ? { kind: "block" as const, blockSize: tensor.scale.blockSize, tensor: scaleName }
        : { kind: tensor.scale.kind, tensor: scaleName };
    // No codec only when the source is in the packing already: its bytes are copied as they are.
    const length = codec === null ? tensor.byteLength : codec.byteLength(tensor.rows, tensor.cols);
    tensorItems.push(
      item({ name, role, layer, kind: "ternary", packing, shape: [tensor.rows, tensor.cols], scale, length }, false, () => {
        if (packing === tensor.packing || codec === null) return tensor.bytes();
        const trits = new Int8Array(tensor.rows * tensor.cols);
        tensor.decodeRows(0, tensor.rows, trits);
        return codec.encode(trits, tensor.rows, tensor.cols, {
          force: options.force ?? false,
          scale: tensor.scale,
          report: (n) => {
            changedWeights += n;
          },
        });
      }),
    );
  };

  addFloat(model.tokenEmbedding, "token_embd", "tokenEmbedding", null);
  addFloat(model.outputNorm, "output_norm", "outputNorm", null);
  if (!model.config.tiedEmbeddings) {
    if (model.lmHead === null) {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, "untied model has no LM head", { field: "lmHead", expected: "a tensor", actual: null });
    }
    addFloat(model.lmHead, "output", "lmHead", null);
  }
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) addFloat(layer[role], `blk.${l}.${role}`, role, l);
    for (const role of TERNARY_ROLES) addTernary(layer[role], `blk.${l}.${role}`, role, l);
  });
  for (const [key, count] of repacked) changes.push(`ternary packing ${key} (${count} tensors)`);

  const blob = (name: string, bytes: Uint8Array): string => {
    blobItems.push(item({ name, length: bytes.byteLength }, true, () => bytes));
    return name;
  };
  const tokenizer = tokenizerEntry(model.tokenizer, blob);
  const extras = [...(model.extras ?? new Map<string, Uint8Array>())].map(([key, bytes]) => ({ key, blob: blob(`extra:${key}`, bytes) }));

  const metadata: Record<string, string> = { ...model.metadata };
  delete metadata[HALO_PROVENANCE_KEY];
  const previous = parsePrevious(model.metadata[HALO_PROVENANCE_KEY]);
  const provenance: HaloProvenance = {
    sourceFormat: model.source.format,
    sourceVersion: model.source.version,
    sourcePath: model.source.path,
    converter: HALO_CONVERTER,
    createdAt: (options.createdAt ?? new Date()).toISOString(),
    changes,
    ...(previous === undefined ? {} : { previous }),
  };

  // Scales first (one read at open), then blobs (tokenizer, read at open), then the weights.
  const items = [...scaleItems, ...blobItems, ...tensorItems];
  const headerFor = (dataOffset: number): string => {
    let at = dataOffset;
    for (const it of items) {
      at = alignUp(at, alignment);
      it.offset = at;
      at += it.length;
    }
    const header: HaloHeader = {
      alignment,
      config: model.config,
      chatTemplate: model.chatTemplate,
      metadata,
      provenance,
      tokenizer,
      extras,
      blobs: blobItems.map((it) => ({ ...(it.entry as unknown as HaloBlobEntry), offset: it.offset, crc32: it.crc32 })),
      tensors: [...scaleItems, ...tensorItems].map((it) => {
        const { length, ...rest } = it.entry as unknown as HaloTensorEntry;
        return { ...rest, offset: it.offset, length, crc32: it.crc32 } as HaloTensorEntry;
      }),
    };
    return JSON.stringify(header);
  };
  // The header's length depends on the offsets it lists, which depend on where data starts: iterate to a fit.
  let dataOffset = alignUp(HALO_PREAMBLE_BYTES, alignment);
  let headerText = headerFor(dataOffset);
  for (let i = 0; Buffer.byteLength(headerText) + HALO_PREAMBLE_BYTES > dataOffset; i++) {
    dataOffset = alignUp(HALO_PREAMBLE_BYTES + Buffer.byteLength(headerText) + 64, alignment);
    headerText = headerFor(dataOffset);
    if (i > 8) throw new Error("internal: .halo header layout did not converge");
  }
  const last = items[items.length - 1];
  const fileLength = last === undefined ? dataOffset : last.offset + last.length;
  const bytesTotal = items.reduce((a, it) => a + it.length, 0);

  const temp = `${path}.tmp-${process.pid}-${Date.now()}`;
  let handle;
  try {
    handle = await open(temp, "w");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot create the output file", { path: temp, actual: (cause as NodeJS.ErrnoException).code, cause });
  }
  try {
    let bytesDone = 0;
    for (const it of items) {
      const bytes = it.produce();
      if (bytes.byteLength !== it.length) {
        throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${it.entry.name} produced the wrong number of bytes`, {
          path,
          field: it.entry.name,
          expected: it.length,
          actual: bytes.byteLength,
        });
      }
      it.crc32 = crc32Hex(bytes);
      await writeAll(handle, bytes, it.offset);
      bytesDone += it.length;
      options.onProgress?.({ bytesDone, bytesTotal, item: it.entry.name });
    }
    const finalHeader = Buffer.from(headerFor(dataOffset));
    if (finalHeader.byteLength !== Buffer.byteLength(headerText) || finalHeader.byteLength + HALO_PREAMBLE_BYTES > dataOffset) {
      throw new Error("internal: .halo header changed length after checksums");
    }
    const padded = new Uint8Array(dataOffset - HALO_PREAMBLE_BYTES);
    padded.set(finalHeader);
    await writeAll(handle, padded, HALO_PREAMBLE_BYTES);
    const preamble = encodePreamble({
      version: HALO_VERSION,
      flags: 0,
      headerOffset: HALO_PREAMBLE_BYTES,
      headerLength: finalHeader.byteLength,
      dataOffset,
      dataLength: fileLength - dataOffset,
      fileLength,
      headerCrc32: Number.parseInt(crc32Hex(finalHeader), 16),
    });
    await writeAll(handle, preamble, 0);
    await handle.truncate(fileLength);
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true });
    if (error instanceof HaloError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === "string") {
      throw new HaloError(H1bErrorCode.H1B_IO, "writing the .halo file failed", { path, actual: code, cause: error });
    }
    throw error;
  }
  const lossy = changedWeights > 0;
  if (lossy) changes.push(`${changedWeights} ternary weights changed by a lossy packing (forced)`);
  return { path, byteLength: fileLength, tensorCount: tensorItems.length, changes, changedWeights, lossy };
}

/**
 * True when f32 bit pattern `x` (not NaN) is exactly an IEEE binary16 value (normal, subnormal, zero or infinity).
 * @internal
 */
export function f32BitsFitF16(x: number): boolean {
  const abs = x & 0x7fffffff;
  if (abs === 0 || abs === 0x7f800000) return true;
  const exponent = abs >>> 23;
  const mantissa = abs & 0x7fffff;
  if (exponent >= 113 && exponent <= 142) return (mantissa & 0x1fff) === 0; // f16 normal range
  if (exponent >= 103 && exponent < 113) return (mantissa & ((1 << (13 + 113 - exponent)) - 1)) === 0; // f16 subnormal
  return false;
}

/**
 * The values as f16 (preferred) or bf16 bytes when every one converts bit-exactly, else null.
 * Performance note: bit tests on the f32 patterns check 32 M values in 0.17–0.24 s (≈ 2 s for the
 * 2B-4T embedding's 328 M); the first version round-tripped every value through f32ToF16 and a
 * table lookup, and the whole 2B `.h1b` → `.halo` conversion took 17.2 s.
 */
function narrowExactly(values: Float32Array): { dtype: "f16" | "bf16"; bytes: Uint8Array } | null {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let f16 = true;
  let bf16 = true;
  for (let i = 0; i < bits.length && (f16 || bf16); i++) {
    const x = bits[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return null; // NaN payloads would not survive
    if (f16 && !f32BitsFitF16(x)) f16 = false;
    if (bf16 && (x & 0xffff) !== 0) bf16 = false;
  }
  if (f16) return { dtype: "f16", bytes: floatCodec("f16").encode!(values) };
  if (bf16) return { dtype: "bf16", bytes: floatCodec("bf16").encode!(values) };
  return null;
}

/** Refuses a model the container's reader would reject: wrong layer count or tensor shapes for its config. */
function checkModelShape(model: HaloModel, path: string): void {
  const config = validateConfig(model.config, path);
  const bad = (field: string, expected: unknown, actual: unknown): never => {
    throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, "model does not match its config", { path, field, expected, actual });
  };
  if (model.layers.length !== config.numLayers) bad("layers", config.numLayers, model.layers.length);
  const embedding = [config.vocabSize, config.hiddenSize].join(", ");
  if (model.tokenEmbedding.shape.join(", ") !== embedding) bad("tokenEmbedding", `[${embedding}]`, `[${model.tokenEmbedding.shape.join(", ")}]`);
  if (model.outputNorm.shape.join(", ") !== String(config.hiddenSize)) bad("outputNorm", `[${config.hiddenSize}]`, `[${model.outputNorm.shape.join(", ")}]`);
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) {
      const n = normLength(config, role);
      if (layer[role].shape.join(", ") !== String(n)) bad(`layer ${l} ${role}`, `[${n}]`, `[${layer[role].shape.join(", ")}]`);
    }
    for (const role of TERNARY_ROLES) {
      const [rows, cols] = ternaryShape(config, role);
      const t = layer[role];
      if (t.rows !== rows || t.cols !== cols) bad(`layer ${l} ${role}`, `[${rows}, ${cols}]`, `[${t.rows}, ${t.cols}]`);
    }
  });
}

function item(entry: Item["entry"], isBlob: boolean, produce: () => Uint8Array): Item {
  return { entry, isBlob, length: entry.length, produce, offset: 0, crc32: PLACEHOLDER_CRC };
}

async function writeAll(handle: import("node:fs/promises").FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30), position + done);
    done += bytesWritten;
  }
}

function parsePrevious(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function tokenizerEntry(tokenizer: TokenizerPayload | null, blob: (name: string, bytes: Uint8Array) => string): HaloTokenizerEntry | null {
  if (tokenizer === null) return null;
  const utf8 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "utf8"));
  switch (tokenizer.kind) {
    case "hf-json":
      return {
        kind: "hf-json",
        tokenizerJson: blob("tokenizer.json", utf8(tokenizer.tokenizerJson)),
        tokenizerConfigJson: tokenizer.tokenizerConfigJson === null ? null : blob("tokenizer_config.json", utf8(tokenizer.tokenizerConfigJson)),
      };
    case "gguf":
      return {
        kind: "gguf",
        model: tokenizer.model,
        pre: tokenizer.pre,
        bosTokenId: tokenizer.bosTokenId,
        eosTokenId: tokenizer.eosTokenId,
        addBosToken: tokenizer.addBosToken,
        vocab: blob("tokenizer.gguf.json", utf8(JSON.stringify({ tokens: tokenizer.tokens, merges: tokenizer.merges, tokenTypes: tokenizer.tokenTypes }))),
      };
    case "htok": {
      const size = tokenizer.tokens.reduce((a, t) => a + 4 + t.byteLength, 0);
      const tokens = new Uint8Array(size);
      const dv = new DataView(tokens.buffer);
      let at = 0;
      for (const t of tokenizer.tokens) {
        dv.setUint32(at, t.byteLength, true);
        tokens.set(t, at + 4);
        at += 4 + t.byteLength;
      }
      const merges = new Uint8Array(tokenizer.merges.length * 4);
      const mv = new DataView(merges.buffer);
      tokenizer.merges.forEach((m, i) => mv.setUint32(4 * i, m, true));
      return {
        kind: "htok",
        bosTokenId: tokenizer.bosTokenId,
        eosTokenId: tokenizer.eosTokenId,
        tokens: blob("tokenizer.htok.tokens", tokens),
        merges: blob("tokenizer.htok.merges", merges),
      };
    }
  }
}
