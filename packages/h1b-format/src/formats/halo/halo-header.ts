// Parses the .halo JSON header and checks every field, range and tensor shape before anything is read.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { validateConfig } from "../../core/config.js";
import { NORM_ROLES, TERNARY_ROLES, normLength, ternaryShape, type ModelConfig } from "../../core/model.js";
import { findTernaryCodec, floatByteLength, type TernaryCodecs } from "../../codecs/registry.js";
import {
  HALO_DEFAULT_ALIGNMENT,
  HALO_MAX_ALIGNMENT,
  type HaloBlobEntry,
  type HaloHeader,
  type HaloPreamble,
  type HaloProvenance,
  type HaloScaleEntry,
  type HaloTensorEntry,
  type HaloTokenizerEntry,
} from "./halo-layout.js";

type Json = Record<string, unknown>;

/** Key of a tensor in the directory by role and layer (`-1` for model-level tensors). */
export function tensorKey(role: string, layer: number | null): string {
  return `${layer ?? -1}:${role}`;
}

class Checker {
  constructor(readonly path: string) {}

  fail(field: string, expected: string, actual: unknown, code: string = H1bErrorCode.H1B_BAD_METADATA): never {
    throw new HaloError(code, "invalid .halo header", {
      path: this.path,
      field,
      expected,
      actual: typeof actual === "string" && actual.length > 80 ? `${actual.slice(0, 80)}…` : actual,
      hint: "The file was not written by a compatible halo writer or is corrupt; convert it again",
    });
  }

  object(value: unknown, field: string): Json {
    if (typeof value !== "object" || value === null || Array.isArray(value)) this.fail(field, "an object", typeOf(value));
    return value as Json;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, "an array", typeOf(value));
    return value;
  }

  string(value: unknown, field: string): string {
    if (typeof value !== "string") this.fail(field, "a string", typeOf(value));
    return value;
  }

  nullableString(value: unknown, field: string): string | null {
    return value === null ? null : this.string(value, field);
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== "boolean") this.fail(field, "true or false", typeOf(value));
    return value;
  }

  number(value: unknown, field: string): number {
    if (typeof value !== "number" || !Number.isFinite(value)) this.fail(field, "a finite number", typeOf(value));
    return value;
  }

  integer(value: unknown, field: string, min = 0): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      this.fail(field, `a whole number ≥ ${min}`, value);
    }
    return value;
  }

  nullableInteger(value: unknown, field: string): number | null {
    return value === null ? null : this.integer(value, field);
  }

  crc(value: unknown, field: string): string {
    const text = this.string(value, field);
    if (!/^[0-9a-f]{8}$/.test(text)) this.fail(field, "8 lowercase hex digits", text);
    return text;
  }
}

function typeOf(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/**
 * Parses the header bytes and checks them against the preamble: types of every field, a valid
 * config, tensor and blob ranges inside the data region, aligned and non-overlapping, byte
 * lengths matching dtype/packing and shape, every tensor the architecture needs present. A ternary
 * tensor in a packing with no codec here (a backend's layout, its codec not in `codecs`) keeps the
 * byte length the header gives: only its range is checked.
 */
export function parseHaloHeader(bytes: Uint8Array, preamble: HaloPreamble, path: string, codecs: TernaryCodecs = []): HaloHeader {
  const c = new Checker(path);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, ".halo header is not valid UTF-8 JSON", {
      path,
      offset: preamble.headerOffset,
      actual: cause instanceof Error ? cause.message : String(cause),
      hint: "The file is corrupt; convert it again",
      cause,
    });
  }
  const h = c.object(raw, "header");
  const alignment = c.integer(h.alignment, "alignment", HALO_DEFAULT_ALIGNMENT);
  if (alignment > HALO_MAX_ALIGNMENT || (alignment & (alignment - 1)) !== 0) {
    c.fail("alignment", `a power of two in [${HALO_DEFAULT_ALIGNMENT}, ${HALO_MAX_ALIGNMENT}]`, alignment);
  }
  const config = parseConfig(c, h.config, path);
  const chatTemplate = c.nullableString(h.chatTemplate, "chatTemplate");
  const metadataObject = c.object(h.metadata, "metadata");
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadataObject)) metadata[key] = c.string(value, `metadata.${key}`);
  const provenance = parseProvenance(c, h.provenance);

  const region = (offset: number, length: number, field: string): void => {
    if (offset % alignment !== 0) {
      c.fail(field, `an offset aligned to ${alignment}`, offset, H1bErrorCode.H1B_BAD_OFFSET);
    }
    if (offset < preamble.dataOffset || offset + length > preamble.dataOffset + preamble.dataLength) {
      c.fail(
        field,
        `a range inside the data region [${preamble.dataOffset}, ${preamble.dataOffset + preamble.dataLength})`,
        `[${offset}, ${offset + length})`,
        H1bErrorCode.H1B_BAD_OFFSET,
      );
    }
  };
  const ranges: Array<{ start: number; end: number; name: string }> = [];

  const blobs: HaloBlobEntry[] = [];
  const blobNames = new Set<string>();
  c.array(h.blobs, "blobs").forEach((value, i) => {
    const b = c.object(value, `blobs[${i}]`);
    const entry: HaloBlobEntry = {
      name: c.string(b.name, `blobs[${i}].name`),
      offset: c.integer(b.offset, `blobs[${i}].offset`),
      length: c.integer(b.length, `blobs[${i}].length`),
      crc32: c.crc(b.crc32, `blobs[${i}].crc32`),
    };
    if (blobNames.has(entry.name)) c.fail(`blobs[${i}].name`, "unique blob names", entry.name);
    blobNames.add(entry.name);
    region(entry.offset, entry.length, `blobs[${i}]`);
    ranges.push({ start: entry.offset, end: entry.offset + entry.length, name: `blob ${entry.name}` });
    blobs.push(entry);
  });
  const blobRef = (value: unknown, field: string): string => {
    const name = c.string(value, field);
    if (!blobNames.has(name)) c.fail(field, "the name of a blob in `blobs`", name);
    return name;
  };

  const tokenizer = parseTokenizer(c, h.tokenizer, blobRef);
  const extras = c.array(h.extras, "extras").map((value, i) => {
    const e = c.object(value, `extras[${i}]`);
    return { key: c.string(e.key, `extras[${i}].key`), blob: blobRef(e.blob, `extras[${i}].blob`) };
  });

  const tensors: HaloTensorEntry[] = [];
  const byKey = new Map<string, HaloTensorEntry>();
  const byName = new Map<string, HaloTensorEntry>();
  c.array(h.tensors, "tensors").forEach((value, i) => {
    const entry = parseTensor(c, value, `tensors[${i}]`, config, codecs);
    if (byName.has(entry.name)) c.fail(`tensors[${i}].name`, "unique tensor names", entry.name);
    if (entry.kind !== "scale") {
      const key = tensorKey(entry.role, entry.layer);
      if (byKey.has(key)) c.fail(`tensors[${i}].role`, "one tensor per role and layer", key);
      byKey.set(key, entry);
    }
    byName.set(entry.name, entry);
    region(entry.offset, entry.length, `tensors[${i}] (${entry.name})`);
    ranges.push({ start: entry.offset, end: entry.offset + entry.length, name: `tensor ${entry.name}` });
    tensors.push(entry);
  });

  ranges.sort((a, b) => a.start - b.start);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur.start < prev.end) {
      c.fail(cur.name, `no overlap with ${prev.name} ending at ${prev.end}`, `starts at ${cur.start}`, H1bErrorCode.H1B_BAD_OFFSET);
    }
  }

  // Scales: every ternary tensor names an f32 scale tensor of the right size, used once.
  const usedScales = new Set<string>();
  for (const t of tensors) {
    if (t.kind !== "ternary") continue;
    const scale = byName.get(t.scale.tensor);
    if (scale === undefined || scale.kind !== "scale") {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `scale tensor of ${t.name} is missing`, {
        path,
        field: t.name,
        expected: `a scale entry named ${t.scale.tensor}`,
        actual: scale === undefined ? "nothing" : `a ${scale.kind} tensor`,
      });
    }
    const [rows, cols] = t.shape;
    const count = t.scale.kind === "tensor" ? 1 : t.scale.kind === "row" ? rows : (rows * cols) / t.scale.blockSize;
    if (scale.shape[0] !== count || usedScales.has(scale.name)) {
      c.fail(`${t.name}.scale`, `a scale tensor of ${count} values used by one tensor`, scale.shape[0], H1bErrorCode.H1B_BAD_TENSOR);
    }
    usedScales.add(scale.name);
  }
  for (const t of tensors) {
    if (t.kind === "scale" && !usedScales.has(t.name)) c.fail(t.name, "a scale tensor used by a ternary tensor", "an orphan");
  }

  // The architecture's tensors, with the shapes the config implies.
  const need = (role: string, layer: number | null, kind: "float" | "ternary", shape: readonly number[]): void => {
    const entry = byKey.get(tensorKey(role, layer));
    const what = layer === null ? role : `layer ${layer} ${role}`;
    if (entry === undefined) {
      throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `.halo file has no ${what} tensor`, {
        path,
        field: what,
        expected: `a ${kind} tensor of shape [${shape.join(", ")}]`,
        actual: "nothing",
        hint: "The file is incomplete; convert it again",
      });
    }
    if (entry.kind !== kind || entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `${what} tensor has the wrong kind or shape`, {
        path,
        field: entry.name,
        expected: `${kind} [${shape.join(", ")}]`,
        actual: `${entry.kind} [${entry.shape.join(", ")}]`,
      });
    }
  };
  need("tokenEmbedding", null, "float", [config.vocabSize, config.hiddenSize]);
  need("outputNorm", null, "float", [config.hiddenSize]);
  if (!config.tiedEmbeddings) need("lmHead", null, "float", [config.vocabSize, config.hiddenSize]);
  for (let l = 0; l < config.numLayers; l++) {
    for (const role of NORM_ROLES) need(role, l, "float", [normLength(config, role)]);
    for (const role of TERNARY_ROLES) need(role, l, "ternary", ternaryShape(config, role));
  }
  const expectedCount = 2 + (config.tiedEmbeddings ? 0 : 1) + config.numLayers * (NORM_ROLES.length + TERNARY_ROLES.length);
  if (byKey.size !== expectedCount) {
    c.fail("tensors", `exactly the ${expectedCount} tensors the config implies (plus scales)`, byKey.size, H1bErrorCode.H1B_BAD_TENSOR);
  }

  return { alignment, config, chatTemplate, metadata, provenance, tokenizer, extras, blobs, tensors };
}

function parseConfig(c: Checker, value: unknown, path: string): ModelConfig {
  const o = c.object(value, "config");
  if (o.architecture !== "bitnet") c.fail("config.architecture", "bitnet", o.architecture, H1bErrorCode.H1B_UNSUPPORTED);
  const activation = c.string(o.activation, "config.activation");
  if (activation !== "relu2" && activation !== "silu") c.fail("config.activation", "relu2 or silu", activation, H1bErrorCode.H1B_UNSUPPORTED);
  const config: ModelConfig = {
    architecture: "bitnet",
    hiddenSize: c.integer(o.hiddenSize, "config.hiddenSize", 1),
    intermediateSize: c.integer(o.intermediateSize, "config.intermediateSize", 1),
    numLayers: c.integer(o.numLayers, "config.numLayers", 1),
    numHeads: c.integer(o.numHeads, "config.numHeads", 1),
    numKvHeads: c.integer(o.numKvHeads, "config.numKvHeads", 1),
    headDim: c.integer(o.headDim, "config.headDim", 1),
    vocabSize: c.integer(o.vocabSize, "config.vocabSize", 1),
    maxPositionEmbeddings: c.integer(o.maxPositionEmbeddings, "config.maxPositionEmbeddings", 1),
    ropeTheta: c.number(o.ropeTheta, "config.ropeTheta"),
    rmsNormEps: c.number(o.rmsNormEps, "config.rmsNormEps"),
    activation,
    tiedEmbeddings: c.boolean(o.tiedEmbeddings, "config.tiedEmbeddings"),
    bosTokenId: c.nullableInteger(o.bosTokenId, "config.bosTokenId"),
    eosTokenIds: c.array(o.eosTokenIds, "config.eosTokenIds").map((v, i) => c.integer(v, `config.eosTokenIds[${i}]`)),
    hadamardRotated: c.boolean(o.hadamardRotated, "config.hadamardRotated"),
  };
  return validateConfig(config, path);
}

function parseProvenance(c: Checker, value: unknown): HaloProvenance {
  const o = c.object(value, "provenance");
  const base = {
    sourceFormat: c.string(o.sourceFormat, "provenance.sourceFormat"),
    sourceVersion: o.sourceVersion === null ? null : c.number(o.sourceVersion, "provenance.sourceVersion"),
    sourcePath: c.string(o.sourcePath, "provenance.sourcePath"),
    converter: c.string(o.converter, "provenance.converter"),
    createdAt: c.string(o.createdAt, "provenance.createdAt"),
    changes: c.array(o.changes, "provenance.changes").map((v, i) => c.string(v, `provenance.changes[${i}]`)),
  };
  return o.previous === undefined ? base : { ...base, previous: o.previous };
}

function parseTokenizer(c: Checker, value: unknown, blobRef: (v: unknown, field: string) => string): HaloTokenizerEntry | null {
  if (value === null) return null;
  const o = c.object(value, "tokenizer");
  switch (o.kind) {
    case "hf-json":
      return {
        kind: "hf-json",
        tokenizerJson: blobRef(o.tokenizerJson, "tokenizer.tokenizerJson"),
        tokenizerConfigJson: o.tokenizerConfigJson === null ? null : blobRef(o.tokenizerConfigJson, "tokenizer.tokenizerConfigJson"),
      };
    case "gguf":
      return {
        kind: "gguf",
        model: c.string(o.model, "tokenizer.model"),
        pre: c.nullableString(o.pre, "tokenizer.pre"),
        bosTokenId: c.nullableInteger(o.bosTokenId, "tokenizer.bosTokenId"),
        eosTokenId: c.nullableInteger(o.eosTokenId, "tokenizer.eosTokenId"),
        addBosToken: o.addBosToken === null ? null : c.boolean(o.addBosToken, "tokenizer.addBosToken"),
        vocab: blobRef(o.vocab, "tokenizer.vocab"),
      };
    case "htok":
      return {
        kind: "htok",
        bosTokenId: c.integer(o.bosTokenId, "tokenizer.bosTokenId"),
        eosTokenId: c.integer(o.eosTokenId, "tokenizer.eosTokenId"),
        tokens: blobRef(o.tokens, "tokenizer.tokens"),
        merges: blobRef(o.merges, "tokenizer.merges"),
      };
    default:
      return c.fail("tokenizer.kind", "hf-json, gguf or htok", o.kind);
  }
}

function parseShape(c: Checker, value: unknown, field: string): number[] {
  const dims = c.array(value, field).map((d, i) => c.integer(d, `${field}[${i}]`, 1));
  if (dims.length === 0 || dims.length > 4) c.fail(field, "1 to 4 dimensions", dims.length, H1bErrorCode.H1B_BAD_DIMENSION);
  let count = 1;
  for (const d of dims) {
    count *= d;
    if (count > 2 ** 48) c.fail(field, "at most 2^48 elements", dims, H1bErrorCode.H1B_BAD_DIMENSION);
  }
  return dims;
}

function parseTensor(c: Checker, value: unknown, field: string, config: ModelConfig, codecs: TernaryCodecs): HaloTensorEntry {
  const o = c.object(value, field);
  const name = c.string(o.name, `${field}.name`);
  const role = c.string(o.role, `${field}.role`);
  const layer = o.layer === null ? null : c.integer(o.layer, `${field}.layer`);
  if (layer !== null && layer >= config.numLayers) c.fail(`${field}.layer`, `< numLayers ${config.numLayers}`, layer);
  const offset = c.integer(o.offset, `${field}.offset`);
  const length = c.integer(o.length, `${field}.length`);
  const crc = c.crc(o.crc32, `${field}.crc32`);
  const shape = parseShape(c, o.shape, `${field}.shape`);
  const checkLength = (expected: number): void => {
    if (length !== expected) {
      c.fail(`${field}.length`, `${expected} bytes for ${name}'s dtype and shape`, length, H1bErrorCode.H1B_BAD_TENSOR);
    }
  };
  switch (o.kind) {
    case "float": {
      const dtype = c.string(o.dtype, `${field}.dtype`);
      const count = shape.reduce((a, b) => a * b, 1);
      checkLength(floatByteLength(dtype as never, count));
      return { name, role, layer, kind: "float", dtype, shape, offset, length, crc32: crc };
    }
    case "ternary": {
      if (layer === null) c.fail(`${field}.layer`, "a layer index for a ternary tensor", null);
      if (shape.length !== 2) c.fail(`${field}.shape`, "[rows, cols]", shape, H1bErrorCode.H1B_BAD_DIMENSION);
      const packing = c.string(o.packing, `${field}.packing`);
      const codec = findTernaryCodec(packing, codecs);
      const rows = shape[0]!;
      const cols = shape[1]!;
      // Without the codec (a backend's layout read without its codecs) the length cannot be derived;
      // the range checks below still hold it inside the data region.
      if (codec !== null) {
        codec.checkShape(rows, cols, name);
        checkLength(codec.byteLength(rows, cols));
      } else if (packing === "" || packing === "auto") c.fail(`${field}.packing`, "a packing name", packing);
      const s = c.object(o.scale, `${field}.scale`);
      const tensor = c.string(s.tensor, `${field}.scale.tensor`);
      let scale: HaloScaleEntry;
      if (s.kind === "tensor" || s.kind === "row") scale = { kind: s.kind, tensor };
      else if (s.kind === "block") {
        const blockSize = c.integer(s.blockSize, `${field}.scale.blockSize`, 1);
        if (cols % blockSize !== 0) c.fail(`${field}.scale.blockSize`, `a divisor of cols ${cols}`, blockSize, H1bErrorCode.H1B_BAD_DIMENSION);
        scale = { kind: "block", blockSize, tensor };
      } else return c.fail(`${field}.scale.kind`, "tensor, row or block", s.kind);
      return { name, role, layer, kind: "ternary", packing, shape: [rows, cols], scale, offset, length, crc32: crc };
    }
    case "scale": {
      if (layer === null || role !== "scale") c.fail(`${field}.role`, "role scale with a layer", role);
      if (o.dtype !== "f32") c.fail(`${field}.dtype`, "f32", o.dtype, H1bErrorCode.H1B_UNKNOWN_DTYPE);
      if (shape.length !== 1) c.fail(`${field}.shape`, "[count]", shape, H1bErrorCode.H1B_BAD_DIMENSION);
      checkLength(shape[0]! * 4);
      return { name, role: "scale", layer, kind: "scale", dtype: "f32", shape: [shape[0]!], offset, length, crc32: crc };
    }
    default:
      return c.fail(`${field}.kind`, "float, ternary or scale", o.kind);
  }
}
