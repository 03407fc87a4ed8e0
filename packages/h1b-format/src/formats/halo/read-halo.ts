// readHalo: opens a .halo container by reading its preamble, header, scales and tokenizer; tensors stay lazy.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { fileSource, type ByteSource } from "../../core/byte-source.js";
import { floatTensor, ternaryTensor, undecodableTernaryTensor } from "../../core/tensors.js";
import { checkCodecs, findTernaryCodec, type TernaryCodecs } from "../../codecs/registry.js";
import {
  NORM_ROLES,
  TERNARY_ROLES,
  type FloatDType,
  type FloatTensor,
  type HaloModel,
  type LayerTensors,
  type StoredChecksum,
  type TernaryScale,
  type TernaryTensor,
  type TokenizerPayload,
} from "../../core/model.js";
import { HALO_PREAMBLE_BYTES, crc32Hex, decodePreamble, type HaloBlobEntry, type HaloHeader, type HaloPreamble } from "./halo-layout.js";
import { parseHaloHeader, tensorKey } from "./halo-header.js";

/**
 * Metadata key under which {@link readHalo} exposes the file's provenance (JSON text).
 *
 * @example
 * ```ts
 * const provenance = JSON.parse(readHalo("m.halo").metadata[HALO_PROVENANCE_KEY]!);
 * console.log(provenance.sourceFormat, provenance.changes);
 * ```
 */
export const HALO_PROVENANCE_KEY = "halo.provenance";

/**
 * Options of {@link readHalo} and {@link readHaloHeader}.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-cpu";
 * const options: ReadHaloOptions = { codecs: backendFactory.packings };
 * const model = readHalo("cpu.halo", options); // halo-i2x256 tensors decode with the passed codec
 * model.close();
 * ```
 */
export interface ReadHaloOptions {
  /**
   * Codecs of packings that are not h1b-format's own (a backend's layout, e.g.
   * `backendFactory.packings` of `@halo/kernels-cpu` for `halo-i2x256`), for this call only.
   * Without the codec of a stored packing the file still opens: those tensors' `bytes()` and
   * `fileRange()` work (a backend that consumes the layout maps them), and `decodeRows` throws
   * `H1B_UNKNOWN_DTYPE` saying how to pass the codec. Default none.
   */
  readonly codecs?: TernaryCodecs;
}

/** A parsed container header with its preamble and the source it came from. */
export interface HaloHeaderInfo {
  readonly preamble: HaloPreamble;
  readonly header: HaloHeader;
}

/**
 * Reads and checks the preamble and JSON header only (no tensor bytes).
 *
 * @example
 * ```ts
 * const { header } = readHaloHeader("model.halo");
 * console.log(header.tensors.length, header.provenance.sourceFormat);
 * ```
 */
export function readHaloHeader(pathOrSource: string | ByteSource, options: ReadHaloOptions = {}): HaloHeaderInfo {
  const codecs = checkCodecs(options.codecs ?? []);
  const owned = typeof pathOrSource === "string";
  const source = owned ? fileSource(pathOrSource) : pathOrSource;
  try {
    return readHeaderFrom(source, codecs);
  } finally {
    if (owned) source.close();
  }
}

function readHeaderFrom(source: ByteSource, codecs: TernaryCodecs): HaloHeaderInfo {
  const first = source.read(0, Math.min(HALO_PREAMBLE_BYTES, source.byteLength));
  const preamble = decodePreamble(first, source.path, source.byteLength);
  const headerBytes = source.read(preamble.headerOffset, preamble.headerLength);
  const crc = crc32Hex(headerBytes);
  const stored = preamble.headerCrc32.toString(16).padStart(8, "0");
  if (crc !== stored) {
    throw new HaloError(H1bErrorCode.H1B_CHECKSUM_MISMATCH, ".halo header checksum mismatch", {
      path: source.path,
      offset: preamble.headerOffset,
      expected: stored,
      actual: crc,
      hint: "The file is corrupt; convert it again",
    });
  }
  return { preamble, header: parseHaloHeader(headerBytes, preamble, source.path, codecs) };
}

/**
 * Opens a `.halo` container. Reads the 64-byte preamble, the JSON header (CRC-checked), the
 * scale tensors (one contiguous read) and the tokenizer blobs; every weight tensor stays in the
 * file and is read when `bytes()` / `decodeRows()` / `toFloat32()` is called. Over a memory
 * source (for example an mmap'd buffer) tensor bytes are views, never copies, and every tensor
 * starts at a multiple of the file's alignment (≥ 64 B).
 *
 * Tensor checksums are not verified here (that is `verifyModelWeights`'s job at load, and
 * {@link verifyHalo}'s for the whole file); they are exposed as `model.checksums`. The header,
 * preamble and tokenizer blobs are verified.
 *
 * Matrices in a backend's layout decode only with that backend's codec passed in `codecs`
 * (see {@link ReadHaloOptions}); without it they open undecodable but mappable.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-cpu";
 * const model = readHalo("bitnet-2b-4t.halo", { codecs: backendFactory.packings });
 * console.log(model.config.hiddenSize, model.layers[0]!.q.packing); // 2560 "halo-i2x256"
 * model.close();
 * ```
 */
export function readHalo(pathOrSource: string | ByteSource, options: ReadHaloOptions = {}): HaloModel {
  const codecs = checkCodecs(options.codecs ?? []);
  const owned = typeof pathOrSource === "string";
  const source = owned ? fileSource(pathOrSource) : pathOrSource;
  try {
    return buildModel(source, readHeaderFrom(source, codecs), codecs);
  } catch (error) {
    if (owned) source.close();
    throw error;
  }
}

function buildModel(source: ByteSource, { preamble, header }: HaloHeaderInfo, codecs: TernaryCodecs): HaloModel {
  const path = source.path;
  const blobs = new Map(header.blobs.map((b) => [b.name, b]));
  const readBlob = (name: string): Uint8Array => {
    const entry = blobs.get(name) as HaloBlobEntry;
    const bytes = source.read(entry.offset, entry.length);
    const crc = crc32Hex(bytes);
    if (crc !== entry.crc32) {
      throw new HaloError(H1bErrorCode.H1B_CHECKSUM_MISMATCH, `.halo blob ${name} checksum mismatch`, {
        path,
        offset: entry.offset,
        expected: entry.crc32,
        actual: crc,
        hint: "The file is corrupt; convert it again",
      });
    }
    return bytes;
  };

  // All scale tensors sit in one run at the start of the data region: read them at once.
  const scaleEntries = header.tensors.filter((t) => t.kind === "scale");
  const scaleValues = new Map<string, Float32Array>();
  if (scaleEntries.length > 0) {
    // Loops, not Math.min(...spread): a crafted header may list more entries than the stack holds arguments.
    let start = Number.POSITIVE_INFINITY;
    let end = 0;
    for (const t of scaleEntries) {
      start = Math.min(start, t.offset);
      end = Math.max(end, t.offset + t.length);
    }
    const run = source.read(start, end - start);
    for (const t of scaleEntries) {
      const at = run.byteOffset + t.offset - start;
      const values =
        at % 4 === 0 ? new Float32Array(run.buffer, at, t.length / 4) : new Float32Array(run.slice(t.offset - start, t.offset - start + t.length).buffer);
      scaleValues.set(t.name, values);
    }
  }

  const tensors = new Map<string, FloatTensor | TernaryTensor>();
  for (const t of header.tensors) {
    if (t.kind === "scale") continue;
    const location = { source, offset: t.offset };
    if (t.kind === "float") {
      tensors.set(tensorKey(t.role, t.layer), floatTensor(t.name, t.dtype as FloatDType, t.shape, location));
    } else {
      const values = scaleValues.get(t.scale.tensor) as Float32Array;
      const scale: TernaryScale =
        t.scale.kind === "tensor"
          ? { kind: "tensor", value: values[0]! }
          : t.scale.kind === "row"
            ? { kind: "row", values }
            : { kind: "block", blockSize: t.scale.blockSize, values };
      const tensor =
        findTernaryCodec(t.packing, codecs) === null
          ? undecodableTernaryTensor(t.name, t.packing, t.shape[0], t.shape[1], scale, location, t.length)
          : ternaryTensor(t.name, t.packing, t.shape[0], t.shape[1], scale, location, codecs);
      tensors.set(tensorKey(t.role, t.layer), tensor);
    }
  }
  const get = <T>(role: string, layer: number | null): T => tensors.get(tensorKey(role, layer)) as T;
  const layers: LayerTensors[] = [];
  for (let l = 0; l < header.config.numLayers; l++) {
    const entries: Record<string, FloatTensor | TernaryTensor> = {};
    for (const role of NORM_ROLES) entries[role] = get<FloatTensor>(role, l);
    for (const role of TERNARY_ROLES) entries[role] = get<TernaryTensor>(role, l);
    layers.push(entries as unknown as LayerTensors);
  }

  const tokenizer = readTokenizer(header, readBlob, path);
  const extras = new Map<string, Uint8Array>();
  for (const e of header.extras) extras.set(e.key, readBlob(e.blob).slice());

  const filePath = source.filePath ?? null;
  const checksums: StoredChecksum[] = header.tensors.map((t) => ({
    name: t.name,
    crc32: t.crc32,
    byteLength: t.length,
    bytes: () => source.read(t.offset, t.length),
    fileRange: () => (filePath === null ? null : { path: filePath, offset: t.offset, length: t.length }),
  }));

  return {
    config: header.config,
    tokenEmbedding: get<FloatTensor>("tokenEmbedding", null),
    outputNorm: get<FloatTensor>("outputNorm", null),
    lmHead: header.config.tiedEmbeddings ? null : get<FloatTensor>("lmHead", null),
    layers,
    tokenizer,
    chatTemplate: header.chatTemplate,
    metadata: { ...header.metadata, [HALO_PROVENANCE_KEY]: JSON.stringify(header.provenance) },
    source: { format: "halo", version: preamble.version, path },
    ...(extras.size > 0 ? { extras } : {}),
    checksums,
    close(): void {
      source.close();
    },
  };
}

function readTokenizer(header: HaloHeader, readBlob: (name: string) => Uint8Array, path: string): TokenizerPayload | null {
  const t = header.tokenizer;
  if (t === null) return null;
  const text = (name: string): string => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(readBlob(name));
    } catch (cause) {
      if (cause instanceof HaloError) throw cause;
      throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, `.halo blob ${name} is not UTF-8`, { path, cause });
    }
  };
  const bad = (field: string, expected: string): never => {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "invalid .halo tokenizer blob", { path, field, expected });
  };
  switch (t.kind) {
    case "hf-json":
      return {
        kind: "hf-json",
        tokenizerJson: text(t.tokenizerJson),
        tokenizerConfigJson: t.tokenizerConfigJson === null ? null : text(t.tokenizerConfigJson),
      };
    case "gguf": {
      let vocab: unknown;
      try {
        vocab = JSON.parse(text(t.vocab));
      } catch (cause) {
        if (cause instanceof HaloError) throw cause;
        return bad(t.vocab, "JSON {tokens, merges, tokenTypes}");
      }
      const v = vocab as { tokens?: unknown; merges?: unknown; tokenTypes?: unknown };
      const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");
      if (typeof vocab !== "object" || vocab === null || !strings(v.tokens) || !strings(v.merges)) {
        return bad(t.vocab, "tokens and merges as string arrays");
      }
      const tokenTypes = v.tokenTypes;
      if (tokenTypes !== null && !(Array.isArray(tokenTypes) && tokenTypes.every((n) => Number.isInteger(n)))) {
        return bad(t.vocab, "tokenTypes as integers or null");
      }
      return {
        kind: "gguf",
        model: t.model,
        pre: t.pre,
        tokens: v.tokens,
        merges: v.merges,
        tokenTypes: tokenTypes as number[] | null,
        bosTokenId: t.bosTokenId,
        eosTokenId: t.eosTokenId,
        addBosToken: t.addBosToken,
      };
    }
    case "htok": {
      const raw = readBlob(t.tokens);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const tokens: Uint8Array[] = [];
      let at = 0;
      while (at < raw.byteLength) {
        if (at + 4 > raw.byteLength) bad(t.tokens, "u32 length prefixes");
        const n = dv.getUint32(at, true);
        if (at + 4 + n > raw.byteLength) bad(t.tokens, "token bytes inside the blob");
        tokens.push(raw.slice(at + 4, at + 4 + n));
        at += 4 + n;
      }
      const m = readBlob(t.merges);
      if (m.byteLength % 12 !== 0) bad(t.merges, "a whole number of u32 triples");
      const merges = new Uint32Array(m.byteLength / 4);
      const mv = new DataView(m.buffer, m.byteOffset, m.byteLength);
      for (let i = 0; i < merges.length; i++) merges[i] = mv.getUint32(4 * i, true);
      return { kind: "htok", tokens, merges, bosTokenId: t.bosTokenId, eosTokenId: t.eosTokenId };
    }
  }
}
