// verifyModelWeights: load-time integrity of a model's bytes (stored CRC-32s, finite floats), checked in workers and remembered per file.
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import * as zlib from "node:zlib";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { modelCacheDir, VERIFIED_DIR_NAME } from "./cache-dir.js";
import type { FloatTensor, HaloModel, TensorFileRange, TernaryTensor } from "./model.js";

/** Options of {@link verifyModelWeights}. */
export interface VerifyWeightsOptions {
  /**
   * Where a verified file is remembered (by device, inode, size, mtime and ctime), so the next load
   * of the same unchanged file skips the pass. `null` never remembers. Default {@link defaultCacheDir}:
   * halo's model cache (`$HALO_CACHE_DIR`, else `$XDG_CACHE_HOME/halo/models`, else
   * `~/.cache/halo/models`). Entries go in its `.verified/` folder.
   */
  readonly cacheDir?: string | null;
  /**
   * Worker threads for the pass over file-backed bytes. Default min(available cores, 8), used when
   * the model has 32 MiB or more of them (smaller ones run on the calling thread); a number given
   * here always uses workers, except 1, which always runs on the calling thread.
   */
  readonly threads?: number;
  /** Cancels the pass (rejects with the signal's reason). */
  readonly signal?: AbortSignal;
  /** Recompute stored checksums (default true); `false` runs the finite scan only (a caller that checked them already). */
  readonly checksums?: boolean;
}

/** Identity of a file whose bytes were verified (bigint fields as decimal strings). */
export interface VerifiedFile {
  readonly path: string;
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
}

/** What {@link verifyModelWeights} did. */
export interface WeightsVerifyReport {
  /** `cached`: the same unchanged file(s) passed before and nothing was read; `checked`: the pass ran. */
  readonly result: "checked" | "cached";
  /** Byte ranges whose stored CRC-32 was recomputed (`.halo`: every tensor and scale tensor). */
  readonly checksums: number;
  readonly bytesChecksummed: number;
  /** Float tensors and ternary scales scanned for NaN and ±Infinity. */
  readonly tensorsScanned: number;
  readonly bytesScanned: number;
  /** Whether the pass was written to the cache (false when it ran from memory or the folder is not writable). */
  readonly remembered: boolean;
  /**
   * The files the verified bytes came from, as they were before the pass (empty for a model in
   * memory); {@link changedFile} tells whether one has changed since.
   */
  readonly files: readonly VerifiedFile[];
  readonly seconds: number;
}

/** Bumped whenever the checks change, so older cache entries stop counting. */
const VERIFY_VERSION = "halo-verify-1";
/** Below this many file-backed bytes the pass runs on the calling thread (starting workers costs more). */
const WORKER_THRESHOLD_BYTES = 32 * 1024 * 1024;
/** Bytes one job reads; a multiple of every block size it may scan is taken below this. */
const PIECE_BYTES = 32 * 1024 * 1024;

/** Bytes per scanned unit of each float dtype: an element, or a GGUF block. */
const SCAN_UNIT: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34, q4_k: 144, q6_k: 210 };
/** Values per unit (block types report the block's first value). */
const SCAN_VALUES: Record<string, number> = { f32: 1, f16: 1, bf16: 1, q8_0: 32, q4_k: 256, q6_k: 256 };

/**
 * Index of the first value whose encoding is NaN or ±Infinity in `bytes` of `dtype`, or -1.
 * Block types (q8_0, q4_k, q6_k) are non-finite exactly when a block's f16 scale is; the index is
 * the block's first value. Self-contained: its source text also runs inside the workers.
 *
 * @example
 * ```ts
 * firstNonFinite(new Uint8Array(new Float32Array([1, NaN]).buffer), "f32"); // 1
 * firstNonFinite(model.tokenEmbedding.bytes(), model.tokenEmbedding.dtype); // -1 when all finite
 * ```
 */
export function firstNonFinite(bytes: Uint8Array, dtype: string): number {
  const n = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
  if (dtype === "f32" || dtype === "f16" || dtype === "bf16") {
    const lanes = dtype === "f32" ? 1 : 2;
    // An exponent field of all ones (Inf/NaN) is exactly the lanes where exponent + one-ulp-of-exponent reaches the sign bit.
    const mask = dtype === "f32" ? 0x7f800000 : dtype === "f16" ? 0x7c007c00 : 0x7f807f80;
    const add = dtype === "f32" ? 0x00800000 : dtype === "f16" ? 0x04000400 : 0x00800080;
    const sign = dtype === "f32" ? 0x80000000 | 0 : 0x80008000 | 0;
    const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    let start = 0;
    if (littleEndian && bytes.byteOffset % 4 === 0) {
      // Fast path: whole 4-byte words, 1024 at a time, no branch per word; the slow loop below finds the exact index.
      const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n >>> 2);
      for (let w = 0; w < words.length; w += 1024) {
        const end = Math.min(words.length, w + 1024);
        let hit = 0;
        for (let i = w; i < end; i++) hit |= ((words[i]! & mask) + add) & sign;
        if (hit !== 0) {
          start = w * 4;
          break;
        }
        start = end * 4;
      }
    }
    const width = 4 / lanes;
    const laneMask = dtype === "f32" ? 0x7f800000 : dtype === "f16" ? 0x7c00 : 0x7f80;
    for (let at = start; at + width <= n; at += width) {
      const value = width === 4 ? dv.getUint32(at, true) : dv.getUint16(at, true);
      if ((value & laneMask) >>> 0 === laneMask >>> 0) return at / width;
    }
    return -1;
  }
  const halfAt = (o: number): boolean => (dv.getUint16(o, true) & 0x7c00) === 0x7c00;
  if (dtype === "q8_0") {
    for (let b = 0; b * 34 + 34 <= n; b++) if (halfAt(b * 34)) return b * 32;
    return -1;
  }
  if (dtype === "q4_k") {
    for (let b = 0; b * 144 + 144 <= n; b++) if (halfAt(b * 144) || halfAt(b * 144 + 2)) return b * 256;
    return -1;
  }
  if (dtype === "q6_k") {
    for (let b = 0; b * 210 + 210 <= n; b++) if (halfAt(b * 210 + 208)) return b * 256;
    return -1;
  }
  return -1;
}

/** One range of one file to checksum and/or scan. */
interface Job {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  readonly crc: boolean;
  /** Dtype to scan for non-finite values, or null. */
  readonly scan: string | null;
}

/** CRC-32 (0 seed) of the job's bytes and the first non-finite value index inside them (-1: none). */
interface JobResult {
  readonly crc: number;
  readonly nonFinite: number;
}

/** Reads and checks one job's range. Self-contained (fs, zlib and the scanner are passed in) so workers run the same text. */
function runJob(job: Job, fsModule: typeof fs, zlibModule: typeof zlib, scan: typeof firstNonFinite, buffer: Uint8Array): JobResult {
  const fd = fsModule.openSync(job.path, "r");
  try {
    let crc = 0;
    let done = 0;
    let nonFinite = -1;
    while (done < job.length) {
      const want = Math.min(buffer.byteLength, job.length - done);
      let got = 0;
      while (got < want) {
        const n = fsModule.readSync(fd, buffer, got, want - got, job.offset + done + got);
        if (n === 0) throw new Error(`end of file at ${job.offset + done + got}`);
        got += n;
      }
      const chunk = buffer.subarray(0, want);
      if (job.crc) crc = zlibModule.crc32(chunk, crc);
      if (job.scan !== null && nonFinite < 0) {
        const at = scan(chunk, job.scan);
        // Pieces and chunks are whole scan units, so the index maps back exactly.
        if (at >= 0) nonFinite = at + (done / unitBytes(job.scan)) * valuesPerUnit(job.scan);
      }
      done += want;
    }
    return { crc: crc >>> 0, nonFinite };
  } finally {
    fsModule.closeSync(fd);
  }
  function unitBytes(dtype: string): number {
    return dtype === "f32" ? 4 : dtype === "q8_0" ? 34 : dtype === "q4_k" ? 144 : dtype === "q6_k" ? 210 : 2;
  }
  function valuesPerUnit(dtype: string): number {
    return dtype === "q8_0" ? 32 : dtype === "q4_k" || dtype === "q6_k" ? 256 : 1;
  }
}

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const __name = (f) => f; // esbuild's keepNames helper, should a bundler add it to the functions below
const fs = require("node:fs");
const zlib = require("node:zlib");
const firstNonFinite = ${firstNonFinite.toString()};
const runJob = ${runJob.toString()};
const buffer = new Uint8Array(${PIECE_BYTES});
parentPort.on("message", ({ id, job }) => {
  try {
    parentPort.postMessage({ id, result: runJob(job, fs, zlib, firstNonFinite, buffer) });
  } catch (error) {
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
`;

/** Runs jobs on `threads` workers, in parallel; results in job order. */
async function runInWorkers(jobs: readonly Job[], threads: number, signal: AbortSignal | undefined): Promise<JobResult[]> {
  const results: JobResult[] = new Array(jobs.length);
  let next = 0;
  const workers: Worker[] = [];
  try {
    const lanes = Array.from({ length: Math.min(threads, jobs.length) }, () => {
      // execArgv []: the source is CommonJS, and an inherited --input-type=module would make it ESM.
      const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
      workers.push(worker);
      return new Promise<void>((resolve, reject) => {
        const take = (): void => {
          if (signal?.aborted) return reject(signal.reason);
          const id = next++;
          if (id >= jobs.length) return resolve();
          worker.postMessage({ id, job: jobs[id] });
        };
        worker.on("message", (message: { id: number; result?: JobResult; error?: string }) => {
          if (message.error !== undefined) return reject(new Error(message.error));
          results[message.id] = message.result!;
          take();
        });
        worker.on("error", reject);
        take();
      });
    });
    await Promise.all(lanes);
  } finally {
    for (const worker of workers) void worker.terminate();
  }
  return results;
}

/**
 * CRC-32 of `A ‖ B` from crc(A), crc(B) and |B| (zlib's crc32_combine: multiply by x^(8·|B|) in
 * GF(2)[x] mod the IEEE polynomial, by repeated squaring of the shift-one-zero-bit operator).
 *
 * @example
 * ```ts
 * crc32Combine(crc32(a), crc32(b), b.length) === crc32(Buffer.concat([a, b])); // true
 * ```
 */
export function crc32Combine(crc1: number, crc2: number, length2: number): number {
  if (length2 <= 0) return crc1 >>> 0;
  const times = (matrix: Uint32Array, vector: number): number => {
    let sum = 0;
    for (let i = 0; vector !== 0; i++, vector >>>= 1) if (vector & 1) sum ^= matrix[i]!;
    return sum >>> 0;
  };
  const square = (out: Uint32Array, matrix: Uint32Array): void => {
    for (let n = 0; n < 32; n++) out[n] = times(matrix, matrix[n]!);
  };
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320;
  for (let n = 1; n < 32; n++) odd[n] = 1 << (n - 1);
  square(even, odd);
  square(odd, even);
  let crc = crc1 >>> 0;
  let length = length2;
  for (;;) {
    square(even, odd);
    if (length % 2 === 1) crc = times(even, crc);
    length = Math.floor(length / 2);
    if (length === 0) break;
    square(odd, even);
    if (length % 2 === 1) crc = times(odd, crc);
    length = Math.floor(length / 2);
    if (length === 0) break;
  }
  return (crc ^ crc2) >>> 0;
}

/** One thing to check: a stored checksum, a float tensor to scan, or both. */
interface Item {
  readonly name: string;
  readonly byteLength: number;
  readonly crc32: string | null;
  readonly scan: string | null;
  readonly shape: readonly number[] | null;
  bytes(): Uint8Array;
  fileRange(): TensorFileRange | null;
}

function itemsOf(model: HaloModel, checksumsToo: boolean): Item[] {
  const items: Item[] = [];
  const floats: FloatTensor[] = [model.tokenEmbedding, model.outputNorm, ...(model.lmHead === null ? [] : [model.lmHead])];
  for (const layer of model.layers) floats.push(layer.attnNorm, layer.attnSubNorm, layer.ffnNorm, layer.ffnSubNorm);
  // A float tensor and its stored checksum (same name in a .halo) are checked in one read.
  const checksums = new Map((checksumsToo ? (model.checksums ?? []) : []).map((c) => [c.name, c]));
  for (const t of floats) {
    const stored = checksums.get(t.name);
    checksums.delete(t.name);
    items.push({
      name: t.name,
      byteLength: t.byteLength,
      crc32: stored?.crc32 ?? null,
      scan: t.dtype in SCAN_UNIT ? t.dtype : null,
      shape: t.shape,
      bytes: () => t.bytes(),
      fileRange: () => t.fileRange(),
    });
  }
  for (const c of checksums.values()) {
    items.push({ name: c.name, byteLength: c.byteLength, crc32: c.crc32, scan: null, shape: null, bytes: () => c.bytes(), fileRange: () => c.fileRange() });
  }
  return items;
}

function where(item: Item, index: number, range: TensorFileRange | null, dtype: string): { actual: string; offset?: number } {
  const cols = item.shape !== null && item.shape.length === 2 ? item.shape[1]! : null;
  const position = cols === null ? `element ${index}` : `row ${Math.floor(index / cols)}, column ${index % cols} (element ${index})`;
  const unit = SCAN_UNIT[dtype]!;
  const byte = Math.floor(index / SCAN_VALUES[dtype]!) * unit;
  return { actual: `NaN or ±Infinity at ${position}`, ...(range === null ? {} : { offset: range.offset + byte }) };
}

function nonFiniteError(path: string, item: Item, index: number, dtype: string): HaloError {
  const { actual, offset } = where(item, index, item.fileRange(), dtype);
  return new HaloError(H1bErrorCode.H1B_NON_FINITE, `tensor ${item.name} holds a non-finite value`, {
    path,
    field: item.name,
    ...(offset === undefined ? {} : { offset }),
    expected: `finite ${dtype} values`,
    actual,
    hint: "The file is corrupt or was written by a broken converter; download or convert the model again",
  });
}

function crcError(path: string, item: Item, actual: number): HaloError {
  const range = item.fileRange();
  return new HaloError(H1bErrorCode.H1B_CHECKSUM_MISMATCH, `tensor ${item.name} does not match its stored checksum`, {
    path,
    field: item.name,
    ...(range === null ? {} : { offset: range.offset }),
    expected: `CRC-32 ${item.crc32}`,
    actual: `CRC-32 ${actual.toString(16).padStart(8, "0")}`,
    hint: "The file is corrupt or was changed after it was written; download or convert it again",
  });
}

/**
 * The default cache folder: halo's model cache, `$HALO_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/halo/models`, else `~/.cache/halo/models` (the same rule as `halo pull`).
 * {@link verifyModelWeights} remembers verified files in its `.verified/` folder.
 *
 * @example
 * ```ts
 * rmSync(join(defaultCacheDir(), ".verified"), { recursive: true, force: true }); // forget every verified file
 * ```
 */
export function defaultCacheDir(): string {
  return modelCacheDir(process.env);
}

/** Every file the model's bytes come from, or null when some bytes are not in a file. */
function filesOf(items: readonly Item[]): VerifiedFile[] | null {
  const paths = new Set<string>();
  for (const item of items) {
    const range = item.fileRange();
    if (range === null) return null;
    paths.add(range.path);
  }
  return [...paths].sort().map(identify);
}

function identify(path: string): VerifiedFile {
  const s = fs.statSync(path, { bigint: true });
  return { path, dev: String(s.dev), ino: String(s.ino), size: String(s.size), mtimeNs: String(s.mtimeNs), ctimeNs: String(s.ctimeNs) };
}

/**
 * The first of `files` that is no longer the file that was verified (another inode or device, a
 * different size, mtime or ctime, or gone), described in words; null when every one is unchanged.
 * A caller that maps the files by path after {@link verifyModelWeights} calls it once the mapping
 * is made, so a file replaced in between is caught.
 *
 * @example
 * ```ts
 * const report = await verifyModelWeights(model);
 * const loaded = await backend.loadModel(model, options); // maps the file by path
 * if (changedFile(report.files) !== null) throw new Error("the file changed while loading");
 * ```
 */
export function changedFile(files: readonly VerifiedFile[]): string | null {
  for (const before of files) {
    let now: VerifiedFile;
    try {
      now = identify(before.path);
    } catch {
      return `${before.path} (gone)`;
    }
    for (const key of ["dev", "ino", "size", "mtimeNs", "ctimeNs"] as const) {
      if (now[key] !== before[key]) return `${before.path} (${key} ${before[key]} → ${now[key]})`;
    }
  }
  return null;
}

function cacheEntry(cacheDir: string, identity: string): string {
  return join(cacheDir, VERIFIED_DIR_NAME, `${createHash("sha256").update(identity).digest("hex")}.json`);
}

function remembered(cacheDir: string, identity: string): boolean {
  try {
    return fs.readFileSync(cacheEntry(cacheDir, identity), "utf8") === identity;
  } catch {
    return false;
  }
}

function remember(cacheDir: string, identity: string): boolean {
  const path = cacheEntry(cacheDir, identity);
  try {
    fs.mkdirSync(join(cacheDir, VERIFIED_DIR_NAME), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    fs.writeFileSync(temp, identity);
    fs.renameSync(temp, path);
  } catch {
    // A read-only or missing home is not an error: the next load checks again.
    return false;
  }
  prune(join(cacheDir, VERIFIED_DIR_NAME));
  return true;
}

/** Most entries kept in `.verified/`; beyond it the least recently written go (each is one small file). */
const MAX_REMEMBERED = 256;

/** Keeps `.verified/` bounded: files that are gone or replaced leave entries nothing will match again. */
function prune(folder: string): void {
  try {
    const names = fs.readdirSync(folder).filter((name) => name.endsWith(".json"));
    if (names.length <= MAX_REMEMBERED) return;
    const byAge = names.map((name) => ({ name, mtime: fs.statSync(join(folder, name)).mtimeMs })).sort((a, b) => a.mtime - b.mtime);
    for (const { name } of byAge.slice(0, names.length - MAX_REMEMBERED)) fs.rmSync(join(folder, name), { force: true });
  } catch {
    // Another process pruning at the same time, or a folder we may not list: the next write tries again.
  }
}

function pieceBytes(scan: string | null): number {
  const unit = scan === null ? 1 : SCAN_UNIT[scan]!;
  return Math.floor(PIECE_BYTES / unit) * unit;
}

/**
 * Checks that a model's bytes are what its file says they are, before a backend takes them:
 * every checksum the file stores (`.halo`: a CRC-32 per tensor and scale tensor, `model.checksums`)
 * is recomputed, and every float tensor (embedding, LM head, norms) and ternary scale is scanned
 * for NaN and ±Infinity. Formats without checksums (GGUF, safetensors, seed `.h1b`) get the scan.
 * Throws `H1B_CHECKSUM_MISMATCH` or `H1B_NON_FINITE` naming the tensor, the file offset and the
 * element; resolves with a report otherwise.
 *
 * File-backed bytes are read by worker threads in 32 MiB pieces (CRCs of pieces are combined
 * with {@link crc32Combine}), so the event loop stays free; small models run on the calling
 * thread. A file that passed is remembered in the cache folder by device, inode, size, mtime and
 * ctime (any write, copy, `touch` or rename-over changes one of them), so later loads of the same
 * file cost one `stat` per file. The cache guards against corruption in transit and on disk before
 * the first load, not against bit rot after it or a hostile cache folder. The folder keeps the 256
 * most recently verified files' entries.
 *
 * @example
 * ```ts
 * const model = await openModel("bitnet-2b.halo");
 * const report = await verifyModelWeights(model); // { result: "checked", bytesChecksummed: 1.18e9, … }
 * await verifyModelWeights(model); // { result: "cached", … } — the same file, unchanged
 * ```
 */
export async function verifyModelWeights(model: HaloModel, options: VerifyWeightsOptions = {}): Promise<WeightsVerifyReport> {
  const started = performance.now();
  const path = model.source.path;
  const items = itemsOf(model, options.checksums ?? true);
  const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
  const files = filesOf(items);
  // A scan-only pass is remembered apart from a full one, so it never stands in for the checksums.
  const checks = (options.checksums ?? true) ? "checksums+finite" : "finite";
  const identity = files === null ? null : JSON.stringify({ version: VERIFY_VERSION, checks, files });
  const elapsed = (): number => (performance.now() - started) / 1000;
  if (cacheDir !== null && identity !== null && remembered(cacheDir, identity)) {
    return {
      result: "cached",
      checksums: 0,
      bytesChecksummed: 0,
      tensorsScanned: 0,
      bytesScanned: 0,
      remembered: true,
      files: files ?? [],
      seconds: elapsed(),
    };
  }
  options.signal?.throwIfAborted();

  let checksums = 0;
  let bytesChecksummed = 0;
  let tensorsScanned = 0;
  let bytesScanned = 0;
  const count = (item: Item): void => {
    if (item.crc32 !== null) {
      checksums++;
      bytesChecksummed += item.byteLength;
    }
    if (item.scan !== null) {
      tensorsScanned++;
      bytesScanned += item.byteLength;
    }
  };

  // File-backed ranges become pieces for the workers (or this thread, when small).
  const jobs: Job[] = [];
  const pieces: Array<{ item: Item; jobs: number[] }> = [];
  let fileBytes = 0;
  for (const item of items) {
    if (item.crc32 === null && item.scan === null) continue;
    const range = item.fileRange();
    if (range === null) {
      const bytes = item.bytes();
      if (item.crc32 !== null) {
        const crc = zlib.crc32(bytes) >>> 0;
        if (crc.toString(16).padStart(8, "0") !== item.crc32) throw crcError(path, item, crc);
      }
      if (item.scan !== null) {
        const at = firstNonFinite(bytes, item.scan);
        if (at >= 0) throw nonFiniteError(path, item, at, item.scan);
      }
      count(item);
      continue;
    }
    const step = pieceBytes(item.scan);
    const ids: number[] = [];
    for (let at = 0; at < range.length; at += step) {
      ids.push(jobs.length);
      jobs.push({ path: range.path, offset: range.offset + at, length: Math.min(step, range.length - at), crc: item.crc32 !== null, scan: item.scan });
    }
    pieces.push({ item, jobs: ids });
    fileBytes += range.length;
  }
  let results: JobResult[];
  const threads = options.threads ?? Math.min(availableParallelism(), 8);
  try {
    if (jobs.length === 0 || threads <= 1 || (options.threads === undefined && fileBytes < WORKER_THRESHOLD_BYTES)) {
      const buffer = new Uint8Array(Math.min(PIECE_BYTES, Math.max(1, fileBytes)));
      results = jobs.map((job) => runJob(job, fs, zlib, firstNonFinite, buffer));
    } else {
      results = await runInWorkers(jobs, threads, options.signal);
    }
  } catch (cause) {
    if (options.signal?.aborted) throw cause;
    throw new HaloError(H1bErrorCode.H1B_IO, "reading the model's weights to verify them failed", {
      path,
      actual: cause instanceof Error ? cause.message : String(cause),
      hint: "Check the file is complete and readable",
      cause,
    });
  }
  for (const { item, jobs: ids } of pieces) {
    let crc = 0;
    let valuesBefore = 0;
    for (const id of ids) {
      const job = jobs[id]!;
      const result = results[id]!;
      crc = crc32Combine(crc, result.crc, job.length);
      if (item.scan !== null && result.nonFinite >= 0) {
        throw nonFiniteError(path, item, valuesBefore + result.nonFinite, item.scan);
      }
      if (item.scan !== null) valuesBefore += (job.length / SCAN_UNIT[item.scan]!) * SCAN_VALUES[item.scan]!;
    }
    if (item.crc32 !== null && crc.toString(16).padStart(8, "0") !== item.crc32) throw crcError(path, item, crc);
    count(item);
  }

  // Ternary scales: small, decoded by the reader (some packings keep them inline).
  for (const layer of model.layers) {
    for (const t of [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down] as TernaryTensor[]) {
      const values = t.scale.kind === "tensor" ? [t.scale.value] : t.scale.values;
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!)) {
          throw new HaloError(H1bErrorCode.H1B_NON_FINITE, `the scales of ${t.name} hold a non-finite value`, {
            path,
            field: `${t.name}.scale`,
            expected: "finite scales",
            actual: `${values[i]} at ${t.scale.kind} scale ${i}`,
            hint: "The file is corrupt or was written by a broken converter; download or convert the model again",
          });
        }
      }
      tensorsScanned++;
      bytesScanned += 4 * values.length;
    }
  }
  const rememberedNow = cacheDir !== null && identity !== null && remember(cacheDir, identity);
  return { result: "checked", checksums, bytesChecksummed, tensorsScanned, bytesScanned, remembered: rememberedNow, files: files ?? [], seconds: elapsed() };
}
