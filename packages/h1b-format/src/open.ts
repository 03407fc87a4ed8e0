// openModel: recognises a model file or snapshot by its bytes (then name and directory contents) and reads it.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "./errors.js";
import type { HaloModel, ModelFormat, TokenizerPayload } from "./core/model.js";
import { HALO_MAGIC, hasHaloMagic } from "./formats/halo/halo-layout.js";
import { readHalo } from "./formats/halo/read-halo.js";
import { readH1b } from "./formats/h1b/read-h1b.js";
import { readGguf } from "./formats/gguf/read-gguf.js";
import { readHfSnapshot } from "./formats/hf/read-hf-snapshot.js";
import { htokToTokenizerPayload, readHtok } from "./formats/h1b/htok.js";
import { checkCodecs, type TernaryCodecs } from "./codecs/registry.js";

/** What {@link sniffFormat} recognised, and from what. */
export interface SniffResult {
  readonly format: ModelFormat;
  /** The path the format's reader takes: the file, or the snapshot directory for `hf-snapshot`. */
  readonly path: string;
  /** How it was recognised, e.g. `magic 89 48 41 4c` or `extension .gguf`. */
  readonly evidence: string;
}

/** Options of {@link openModel}. */
export interface OpenModelOptions {
  /** Skip sniffing and read as this format. */
  readonly format?: ModelFormat;
  /**
   * A tokenizer file to use instead of (or in the absence of) the model's own: a `tokenizer.json`
   * (its sibling `tokenizer_config.json` is read too) or a seed `.htok`.
   */
  readonly tokenizer?: string;
  /**
   * Codecs of packings that are not h1b-format's own — a backend's layouts, e.g.
   * `backendFactory.packings` of `@halo/kernels-cpu` for `halo-i2x256` — for this call only
   * (`@halo/engine` passes those of every installed backend). A `.halo` matrix in a packing
   * without a codec here still opens (`bytes()` / `fileRange()` work, so the backend that owns
   * the layout maps it) but `decodeRows` throws `H1B_UNKNOWN_DTYPE`. Default none.
   */
  readonly codecs?: TernaryCodecs;
}

/**
 * The formats {@link openModel} accepts, for error messages and `--help`.
 *
 * @example
 * ```ts
 * console.error(`expected ${ACCEPTED_FORMATS}`);
 * ```
 */
export const ACCEPTED_FORMATS =
  "a .halo container, a seed .h1b (v1–v4), a GGUF file, or a Hugging Face snapshot directory (config.json + model.safetensors or its index)";

const SAFETENSORS_MAX_HEADER = 100_000_000;

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function readPrefix(path: string, length: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new HaloError(
      code === "ENOENT" ? H1bErrorCode.H1B_MISSING_FILE : H1bErrorCode.H1B_IO,
      code === "ENOENT" ? "file does not exist" : "cannot open file",
      {
        path,
        actual: code ?? String(cause),
        hint: "Check the path and its permissions",
        cause,
      },
    );
  }
  try {
    const out = Buffer.alloc(length);
    const n = readSync(fd, out, 0, length, 0);
    return out.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function isSnapshotDir(dir: string): boolean {
  return existsSync(join(dir, "config.json")) && (existsSync(join(dir, "model.safetensors")) || existsSync(join(dir, "model.safetensors.index.json")));
}

function looksLikeSafetensors(prefix: Uint8Array, fileSize: number): boolean {
  if (prefix.byteLength < 9) return false;
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  return prefix[8] === 0x7b && length >= 2n && length <= BigInt(Math.min(SAFETENSORS_MAX_HEADER, fileSize - 8));
}

/**
 * Recognises a model's format: first from magic bytes (`\x89HALO…`, `H1B`, `GGUF`, a safetensors
 * header), then from the extension, then (for directories) from the contents. Throws
 * `H1B_UNKNOWN_FORMAT` naming what was found and what is accepted, or `H1B_MISSING_FILE`.
 *
 * @example
 * ```ts
 * sniffFormat("model.halo"); // { format: "halo", path: "model.halo", evidence: "magic 89 48 41 4c 4f 0d 0a 1a" }
 * sniffFormat("./bitnet-b1.58-2B-4T"); // { format: "hf-snapshot", ... }
 * ```
 */
export function sniffFormat(path: string): SniffResult {
  if (!existsSync(path)) {
    throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, "model path does not exist", { path, expected: ACCEPTED_FORMATS, hint: "Check the path" });
  }
  const stat = statSync(path);
  if (stat.isDirectory()) {
    if (isSnapshotDir(path)) return { format: "hf-snapshot", path, evidence: "directory with config.json and safetensors weights" };
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_FORMAT, "directory is not a model snapshot", {
      path,
      expected: ACCEPTED_FORMATS,
      actual: "a directory without config.json + model.safetensors (or model.safetensors.index.json)",
      hint: "Pass the snapshot directory itself, or a model file",
    });
  }
  const prefix = readPrefix(path, 16);
  if (hasHaloMagic(prefix)) return { format: "halo", path, evidence: `magic ${hex(HALO_MAGIC)}` };
  if (prefix[0] === 0x48 && prefix[1] === 0x31 && prefix[2] === 0x42) return { format: "h1b", path, evidence: "magic 48 31 42 (H1B)" };
  if (prefix[0] === 0x47 && prefix[1] === 0x47 && prefix[2] === 0x55 && prefix[3] === 0x46)
    return { format: "gguf", path, evidence: "magic 47 47 55 46 (GGUF)" };
  if (looksLikeSafetensors(prefix, stat.size)) {
    const dir = dirname(path);
    if (isSnapshotDir(dir)) return { format: "hf-snapshot", path: dir, evidence: "safetensors header in a directory with config.json" };
    throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, "a safetensors file needs its snapshot's config.json", {
      path,
      expected: `config.json next to ${basename(path)}`,
      actual: "no config.json",
      hint: "Pass the Hugging Face snapshot directory (config.json, tokenizer.json, model.safetensors)",
    });
  }
  const ext = extname(path).toLowerCase();
  const byExtension: Record<string, ModelFormat> = { ".halo": "halo", ".h1b": "h1b", ".gguf": "gguf" };
  const format = byExtension[ext];
  // A known extension with foreign bytes: let that format's reader report exactly what is wrong.
  if (format !== undefined) return { format, path, evidence: `extension ${ext}` };
  throw new HaloError(H1bErrorCode.H1B_UNKNOWN_FORMAT, "unrecognised model file", {
    path,
    expected: ACCEPTED_FORMATS,
    actual: prefix.byteLength === 0 ? "an empty file" : `first bytes ${hex(prefix.subarray(0, 8))}, extension "${ext}"`,
    hint: "Convert it with a tool that writes GGUF or safetensors, then `h1b convert` it",
  });
}

/**
 * Opens any model halo reads — `.halo`, seed `.h1b` (+ `.htok` sidecar), GGUF, or a Hugging
 * Face snapshot directory (or its `model.safetensors`) — recognised by {@link sniffFormat}.
 * Only headers, scales and the tokenizer are read; tensors load lazily. Call `close()` when done.
 * A backend's own layout inside a `.halo` decodes only with that backend's codecs
 * (`options.codecs`).
 *
 * @example
 * ```ts
 * const model = await openModel("ggml-model-tq2_0.gguf");
 * console.log(model.source.format, model.config.numLayers); // "gguf" 30
 * model.close();
 * const cpu = await openModel("model.halo", { codecs: backendFactory.packings }); // halo-i2x256 decodes too
 * ```
 */
export async function openModel(path: string, options: OpenModelOptions = {}): Promise<HaloModel> {
  const codecs = checkCodecs(options.codecs ?? []);
  const sniffed: SniffResult = options.format === undefined ? sniffFormat(path) : { format: options.format, path, evidence: "format option" };
  let model: HaloModel;
  switch (sniffed.format) {
    case "halo":
      model = readHalo(sniffed.path, { codecs });
      break;
    case "h1b":
      model = readH1b(sniffed.path);
      break;
    case "gguf":
      model = readGguf(sniffed.path);
      break;
    case "hf-snapshot":
      model = await readHfSnapshot(statSync(sniffed.path).isDirectory() ? sniffed.path : dirname(sniffed.path));
      break;
    default:
      throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "unknown format option", {
        field: "format",
        expected: "halo, h1b, gguf or hf-snapshot",
        actual: sniffed.format,
      });
  }
  if (options.tokenizer === undefined) return model;
  let tokenizer: TokenizerPayload;
  try {
    tokenizer = readTokenizerFile(options.tokenizer);
  } catch (error) {
    model.close();
    throw error;
  }
  return { ...model, tokenizer, close: () => model.close() };
}

/**
 * Reads a tokenizer file into a {@link TokenizerPayload}: a seed `.htok` (by its `HTOK` magic), or
 * a Hugging Face `tokenizer.json` (with its sibling `tokenizer_config.json` when present).
 *
 * @example
 * ```ts
 * const tokenizer = readTokenizerFile("./snapshot/tokenizer.json"); // { kind: "hf-json", ... }
 * ```
 */
export function readTokenizerFile(path: string): TokenizerPayload {
  const prefix = readPrefix(path, 4);
  if (prefix[0] === 0x48 && prefix[1] === 0x54 && prefix[2] === 0x4f && prefix[3] === 0x4b) return htokToTokenizerPayload(readHtok(path));
  const text = readFileSync(path, "utf8");
  try {
    const json = JSON.parse(text) as { model?: unknown };
    if (typeof json !== "object" || json === null || typeof json.model !== "object") throw new Error("no model section");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "tokenizer file is neither a tokenizer.json nor an .htok", {
      path,
      expected: "Hugging Face tokenizer.json (JSON with a model section) or HTOK magic",
      actual: cause instanceof Error ? cause.message : String(cause),
      cause,
    });
  }
  const configPath = join(dirname(path), "tokenizer_config.json");
  return { kind: "hf-json", tokenizerJson: text, tokenizerConfigJson: existsSync(configPath) ? readFileSync(configPath, "utf8") : null };
}
