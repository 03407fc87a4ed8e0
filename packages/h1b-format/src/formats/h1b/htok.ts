// Seed `.htok` tokenizer files: read, validate, write byte-exact, and turn into a TokenizerPayload.
import { readFileSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import type { TokenizerPayload } from "../../core/model.js";

// Spec: research/seed-system.md §2 (docs/formats/htok.md has the byte table).

/** `HTOK`. */
export const HTOK_MAGIC = Uint8Array.of(0x48, 0x54, 0x4f, 0x4b);
/** Fixed header size: magic + vocab_size + num_merges + bos_id + eos_id. */
export const HTOK_HEADER_BYTES = 20;

/** The contents of an `.htok` file. */
export interface HtokData {
  /** Token surfaces (GPT-2 byte-mapped UTF-8), id = index. Each at most 65535 bytes. */
  readonly tokens: readonly Uint8Array[];
  /** Merges as `[a, b, merged]` id triples, flat; rank = triple index (lower wins). */
  readonly merges: Uint32Array;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}

function fail(code: string, summary: string, path: string, offset: number, field: string, expected: unknown, actual: unknown, hint?: string): never {
  throw new HaloError(code, summary, hint === undefined ? { path, offset, field, expected, actual } : { path, offset, field, expected, actual, hint });
}

/**
 * Parses an `.htok` file (a path, or its bytes). Validates the magic, that every declared count
 * fits in the file before allocating (`H1B_TOO_LARGE`), that tokens and merges are complete
 * (`H1B_TRUNCATED`), that merge ids, BOS and EOS are below `vocab_size` (`H1B_BAD_METADATA`,
 * naming the merge index and value), and that nothing follows the merge table.
 *
 * @example
 * ```ts
 * const htok = readHtok("bitnet-2b.htok");
 * console.log(htok.tokens.length, htok.merges.length / 3, htok.bosTokenId);
 * ```
 */
export function readHtok(input: Uint8Array | string, path = typeof input === "string" ? input : "<memory>"): HtokData {
  let bytes: Uint8Array;
  if (typeof input === "string") {
    try {
      bytes = readFileSync(input);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new HaloError(code === "ENOENT" ? H1bErrorCode.H1B_MISSING_FILE : H1bErrorCode.H1B_IO, "cannot read .htok file", {
        path,
        actual: code ?? String(cause),
        hint: "Check the path; the tokenizer of an .h1b is the <stem>.htok file next to it",
        cause,
      });
    }
  } else {
    bytes = input;
  }
  const size = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (size < HTOK_HEADER_BYTES) {
    fail(H1bErrorCode.H1B_TRUNCATED, "file ends inside the .htok header", path, size, "header", `${HTOK_HEADER_BYTES} bytes`, `${size} bytes`);
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== HTOK_MAGIC[i]) {
      fail(
        H1bErrorCode.H1B_BAD_MAGIC,
        "not an .htok file",
        path,
        0,
        "magic",
        "48 54 4f 4b (HTOK)",
        Buffer.from(bytes.subarray(0, 4)).toString("hex"),
        "Pass a seed .htok tokenizer file",
      );
    }
  }
  const vocabSize = dv.getUint32(4, true);
  const numMerges = dv.getUint32(8, true);
  const bosTokenId = dv.getUint32(12, true);
  const eosTokenId = dv.getUint32(16, true);
  const room = size - HTOK_HEADER_BYTES;
  // Each token takes ≥ 2 bytes and each merge exactly 12: refuse counts the file cannot hold before allocating.
  if (vocabSize * 2 + numMerges * 12 > room) {
    fail(
      H1bErrorCode.H1B_TOO_LARGE,
      ".htok counts exceed what the file can hold",
      path,
      4,
      "vocab_size / num_merges",
      `vocab_size × 2 + num_merges × 12 ≤ ${room} bytes`,
      `vocab_size ${vocabSize}, num_merges ${numMerges}`,
      "The file is truncated or corrupt",
    );
  }
  const tokens: Uint8Array[] = new Array<Uint8Array>(vocabSize);
  let at = HTOK_HEADER_BYTES;
  for (let id = 0; id < vocabSize; id++) {
    if (at + 2 > size) fail(H1bErrorCode.H1B_TRUNCATED, "file ends inside the token table", path, at, `tokens[${id}].len`, "2 bytes", `${size - at} bytes`);
    const len = dv.getUint16(at, true);
    at += 2;
    if (at + len > size) fail(H1bErrorCode.H1B_TRUNCATED, "file ends inside a token surface", path, at, `tokens[${id}]`, `${len} bytes`, `${size - at} bytes`);
    tokens[id] = bytes.slice(at, at + len);
    at += len;
  }
  if (at + numMerges * 12 > size) {
    fail(H1bErrorCode.H1B_TRUNCATED, "file ends inside the merge table", path, at, "merges", `${numMerges * 12} bytes`, `${size - at} bytes`);
  }
  const merges = new Uint32Array(numMerges * 3);
  for (let i = 0; i < merges.length; i++) {
    const value = dv.getUint32(at + 4 * i, true);
    if (value >= vocabSize) {
      const index = Math.floor(i / 3);
      fail(
        H1bErrorCode.H1B_BAD_METADATA,
        `merge ${index} refers to a token id outside the vocabulary`,
        path,
        at + 4 * i,
        `merges[${index}].${["a", "b", "merged"][i % 3]}`,
        `< vocab_size ${vocabSize}`,
        value,
      );
    }
    merges[i] = value;
  }
  at += numMerges * 12;
  if (at !== size) {
    fail(
      H1bErrorCode.H1B_BAD_METADATA,
      "bytes follow the .htok merge table",
      path,
      at,
      "end of file",
      `${at} bytes in total`,
      `${size} bytes`,
      "The file is corrupt or not a seed .htok",
    );
  }
  for (const [field, value, offset] of [
    ["bos_id", bosTokenId, 12],
    ["eos_id", eosTokenId, 16],
  ] as const) {
    if (value >= vocabSize) fail(H1bErrorCode.H1B_BAD_METADATA, `${field} is outside the vocabulary`, path, offset, field, `< vocab_size ${vocabSize}`, value);
  }
  return { tokens, merges, bosTokenId, eosTokenId };
}

/**
 * Serialises {@link HtokData} to `.htok` bytes (the exact inverse of {@link readHtok}). Throws
 * `H1B_BAD_ARGUMENT` for surfaces over 65535 bytes, ids outside the vocabulary or a merge table
 * whose length is not a multiple of 3.
 *
 * @example
 * ```ts
 * writeFileSync("model.htok", writeHtok({ tokens, merges: Uint32Array.of(0, 1, 2), bosTokenId: 3, eosTokenId: 4 }));
 * ```
 */
export function writeHtok(data: HtokData): Uint8Array {
  const vocabSize = data.tokens.length;
  const bad = (field: string, expected: unknown, actual: unknown): never => {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `invalid .htok data: ${field}`, { field, expected, actual });
  };
  if (data.merges.length % 3 !== 0) bad("merges", "a multiple of 3 ids ([a, b, merged] triples)", data.merges.length);
  if (vocabSize > 0xffffffff) bad("tokens", "at most 2^32 - 1 tokens", vocabSize);
  let size = HTOK_HEADER_BYTES + 4 * data.merges.length;
  for (let id = 0; id < vocabSize; id++) {
    const len = data.tokens[id]!.byteLength;
    if (len > 0xffff) bad(`tokens[${id}]`, "at most 65535 bytes", len);
    size += 2 + len;
  }
  for (let i = 0; i < data.merges.length; i++) {
    if (data.merges[i]! >= vocabSize) bad(`merges[${Math.floor(i / 3)}]`, `ids < ${vocabSize}`, data.merges[i]);
  }
  for (const [field, value] of [
    ["bosTokenId", data.bosTokenId],
    ["eosTokenId", data.eosTokenId],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value >= vocabSize) bad(field, `an id < ${vocabSize}`, value);
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(HTOK_MAGIC, 0);
  dv.setUint32(4, vocabSize, true);
  dv.setUint32(8, data.merges.length / 3, true);
  dv.setUint32(12, data.bosTokenId, true);
  dv.setUint32(16, data.eosTokenId, true);
  let at = HTOK_HEADER_BYTES;
  for (const token of data.tokens) {
    dv.setUint16(at, token.byteLength, true);
    out.set(token, at + 2);
    at += 2 + token.byteLength;
  }
  for (let i = 0; i < data.merges.length; i++) dv.setUint32(at + 4 * i, data.merges[i]!, true);
  return out;
}

/**
 * The {@link TokenizerPayload} of kind `htok` that @halo/tokenizer builds a tokenizer from.
 *
 * @example
 * ```ts
 * const payload = htokToTokenizerPayload(readHtok("model.htok"));
 * ```
 */
export function htokToTokenizerPayload(data: HtokData): TokenizerPayload {
  return { kind: "htok", tokens: data.tokens, merges: data.merges, bosTokenId: data.bosTokenId, eosTokenId: data.eosTokenId };
}
