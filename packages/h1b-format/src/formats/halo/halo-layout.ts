// The .halo container's fixed preamble, header schema and the checks that turn bytes into a trusted header.
import { crc32 } from "node:zlib";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import type { ModelConfig } from "../../core/model.js";

/**
 * The 8 magic bytes `89 48 41 4C 4F 0D 0A 1A` ("\x89HALO\r\n\x1a"), PNG style: the high first byte
 * shares no prefix with `H1B` (0x48), `GGUF` (0x47) or a plausible safetensors header length, and
 * the CR LF / ^Z bytes catch text-mode transfer damage. Spec: docs/formats/halo.md.
 *
 * @example
 * ```ts
 * const isContainer = HALO_MAGIC.every((b, i) => bytes[i] === b);
 * ```
 */
export const HALO_MAGIC: Uint8Array = Uint8Array.of(0x89, 0x48, 0x41, 0x4c, 0x4f, 0x0d, 0x0a, 0x1a);
/**
 * Container version this code reads and writes.
 *
 * @example
 * ```ts
 * readHalo("m.halo").source.version === HALO_VERSION; // true
 * ```
 */
export const HALO_VERSION = 1;
/** Size of the fixed binary preamble in bytes. */
export const HALO_PREAMBLE_BYTES = 64;
/**
 * Default (and minimum) alignment of every tensor and blob, in bytes: one cache line / AVX-512 register.
 *
 * @example
 * ```ts
 * await writeHalo(model, "m.halo", { alignment: HALO_DEFAULT_ALIGNMENT * 64 }); // 4096: page-aligned
 * ```
 */
export const HALO_DEFAULT_ALIGNMENT = 64;
/** Largest alignment accepted (a huge page). */
export const HALO_MAX_ALIGNMENT = 2 * 1024 * 1024;

/** The fixed 64-byte preamble. */
export interface HaloPreamble {
  readonly version: number;
  readonly flags: number;
  readonly headerOffset: number;
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly dataLength: number;
  readonly fileLength: number;
  readonly headerCrc32: number;
}

/** A byte range in the file with its CRC-32 (8 lowercase hex digits). */
export interface HaloBlobEntry {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
  readonly crc32: string;
}

/** How a ternary tensor's scale is stored: always as an f32 scale tensor named in `tensor`. */
export type HaloScaleEntry =
  | { readonly kind: "tensor"; readonly tensor: string }
  | { readonly kind: "row"; readonly tensor: string }
  | { readonly kind: "block"; readonly blockSize: number; readonly tensor: string };

/** One entry of the tensor directory. */
export type HaloTensorEntry =
  | {
      readonly name: string;
      readonly role: string;
      readonly layer: number | null;
      readonly kind: "float";
      readonly dtype: string;
      readonly shape: readonly number[];
      readonly offset: number;
      readonly length: number;
      readonly crc32: string;
    }
  | {
      readonly name: string;
      readonly role: string;
      readonly layer: number;
      readonly kind: "ternary";
      readonly packing: string;
      readonly shape: readonly [number, number];
      readonly scale: HaloScaleEntry;
      readonly offset: number;
      readonly length: number;
      readonly crc32: string;
    }
  | {
      readonly name: string;
      readonly role: "scale";
      readonly layer: number;
      readonly kind: "scale";
      readonly dtype: "f32";
      readonly shape: readonly [number];
      readonly offset: number;
      readonly length: number;
      readonly crc32: string;
    };

/** Where the tokenizer payload lives (large strings are blobs, small fields inline). */
export type HaloTokenizerEntry =
  | { readonly kind: "hf-json"; readonly tokenizerJson: string; readonly tokenizerConfigJson: string | null }
  | {
      readonly kind: "gguf";
      readonly model: string;
      readonly pre: string | null;
      readonly bosTokenId: number | null;
      readonly eosTokenId: number | null;
      readonly addBosToken: boolean | null;
      /** Blob holding JSON `{tokens, merges, tokenTypes}`. */
      readonly vocab: string;
    }
  | {
      readonly kind: "htok";
      readonly bosTokenId: number;
      readonly eosTokenId: number;
      /** Blob: per token a u32 LE byte length then the bytes. */
      readonly tokens: string;
      /** Blob: u32 LE `[a, b, merged]` triples. */
      readonly merges: string;
    };

/** Provenance recorded by the writer. */
export interface HaloProvenance {
  readonly sourceFormat: string;
  readonly sourceVersion: number | null;
  readonly sourcePath: string;
  readonly converter: string;
  readonly createdAt: string;
  /** What the conversion changed (packings, lossy steps). Empty when nothing changed. */
  readonly changes: readonly string[];
  /** The provenance of the source when it was itself a container. */
  readonly previous?: unknown;
}

/** The JSON header of a `.halo` file. */
export interface HaloHeader {
  readonly alignment: number;
  readonly config: ModelConfig;
  readonly chatTemplate: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly provenance: HaloProvenance;
  readonly tokenizer: HaloTokenizerEntry | null;
  /** `extras` keys of the model mapped to blob names. */
  readonly extras: readonly { readonly key: string; readonly blob: string }[];
  readonly blobs: readonly HaloBlobEntry[];
  readonly tensors: readonly HaloTensorEntry[];
}

/** CRC-32 (zlib polynomial) of bytes as 8 lowercase hex digits. */
export function crc32Hex(bytes: Uint8Array, previous = 0): string {
  return crc32(bytes, previous).toString(16).padStart(8, "0");
}

/** Encodes the preamble; the last 4 bytes are the CRC-32 of the first 60. */
export function encodePreamble(p: HaloPreamble): Uint8Array {
  const out = new Uint8Array(HALO_PREAMBLE_BYTES);
  out.set(HALO_MAGIC, 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, p.version, true);
  dv.setUint32(12, p.flags, true);
  dv.setBigUint64(16, BigInt(p.headerOffset), true);
  dv.setBigUint64(24, BigInt(p.headerLength), true);
  dv.setBigUint64(32, BigInt(p.dataOffset), true);
  dv.setBigUint64(40, BigInt(p.dataLength), true);
  dv.setBigUint64(48, BigInt(p.fileLength), true);
  dv.setUint32(56, p.headerCrc32, true);
  dv.setUint32(60, crc32(out.subarray(0, 60)), true);
  return out;
}

/**
 * True when the first bytes are the container magic.
 *
 * @example
 * ```ts
 * hasHaloMagic(readFileSync("model.halo").subarray(0, 8)); // true
 * hasHaloMagic(Buffer.from("H1B\0")); // false: a seed .h1b
 * ```
 */
export function hasHaloMagic(bytes: Uint8Array): boolean {
  if (bytes.byteLength < HALO_MAGIC.length) return false;
  for (let i = 0; i < HALO_MAGIC.length; i++) if (bytes[i] !== HALO_MAGIC[i]) return false;
  return true;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Parses and checks the preamble against the real file size. */
export function decodePreamble(bytes: Uint8Array, path: string, fileSize: number): HaloPreamble {
  if (bytes.byteLength < HALO_PREAMBLE_BYTES) {
    if (bytes.byteLength >= HALO_MAGIC.length && !hasHaloMagic(bytes)) badMagic(bytes, path);
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "file ends inside the .halo preamble", {
      path,
      offset: 0,
      expected: `${HALO_PREAMBLE_BYTES} bytes`,
      actual: `${bytes.byteLength} bytes`,
      hint: "The file is truncated; convert it again",
    });
  }
  if (!hasHaloMagic(bytes)) badMagic(bytes, path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HALO_PREAMBLE_BYTES);
  const storedCrc = dv.getUint32(60, true);
  const actualCrc = crc32(bytes.subarray(0, 60));
  const version = dv.getUint32(8, true);
  if (storedCrc !== actualCrc) {
    throw new HaloError(H1bErrorCode.H1B_CHECKSUM_MISMATCH, ".halo preamble checksum mismatch", {
      path,
      offset: 60,
      expected: storedCrc.toString(16).padStart(8, "0"),
      actual: actualCrc.toString(16).padStart(8, "0"),
      hint: "The file is corrupt; convert it again",
    });
  }
  if (version !== HALO_VERSION) {
    throw new HaloError(H1bErrorCode.H1B_BAD_VERSION, "unsupported .halo container version", {
      path,
      offset: 8,
      expected: HALO_VERSION,
      actual: version,
      hint: version > HALO_VERSION ? "Upgrade @halo/h1b-format" : "The file is corrupt",
    });
  }
  const flags = dv.getUint32(12, true);
  if (flags !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_FLAGS, "unknown .halo flags", {
      path,
      offset: 12,
      expected: 0,
      actual: `0x${flags.toString(16)}`,
    });
  }
  const u64 = (at: number, field: string): number => {
    const value = dv.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new HaloError(H1bErrorCode.H1B_TOO_LARGE, `.halo ${field} is too large`, { path, offset: at, field, actual: `${value}` });
    }
    return Number(value);
  };
  const p: HaloPreamble = {
    version,
    flags,
    headerOffset: u64(16, "headerOffset"),
    headerLength: u64(24, "headerLength"),
    dataOffset: u64(32, "dataOffset"),
    dataLength: u64(40, "dataLength"),
    fileLength: u64(48, "fileLength"),
    headerCrc32: dv.getUint32(56, true),
  };
  if (p.fileLength !== fileSize) {
    throw new HaloError(
      p.fileLength > fileSize ? H1bErrorCode.H1B_TRUNCATED : H1bErrorCode.H1B_BAD_OFFSET,
      p.fileLength > fileSize ? ".halo file is shorter than its preamble says" : ".halo file has bytes after its end",
      { path, offset: 48, expected: `${p.fileLength} bytes`, actual: `${fileSize} bytes`, hint: "The file is truncated or corrupt; convert it again" },
    );
  }
  if (p.headerOffset !== HALO_PREAMBLE_BYTES || p.headerOffset + p.headerLength > p.dataOffset || p.dataOffset + p.dataLength !== p.fileLength) {
    throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, ".halo preamble regions are inconsistent", {
      path,
      offset: 16,
      expected: `header at ${HALO_PREAMBLE_BYTES}, header end ≤ data start, data end = file end`,
      actual: `header [${p.headerOffset}, +${p.headerLength}), data [${p.dataOffset}, +${p.dataLength}), file ${p.fileLength}`,
    });
  }
  return p;
}

function badMagic(bytes: Uint8Array, path: string): never {
  throw new HaloError(H1bErrorCode.H1B_BAD_MAGIC, "not a .halo container", {
    path,
    offset: 0,
    expected: hex(HALO_MAGIC),
    actual: hex(bytes.subarray(0, HALO_MAGIC.length)),
    hint: "Open it with openModel(), which recognises every supported format",
  });
}
