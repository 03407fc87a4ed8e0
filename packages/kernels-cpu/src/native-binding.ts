// Loads the compiled addon through node-gyp-build and types its surface; statuses become HaloErrors here.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type StepOutput } from "@halo/kernels";
import { KernelsCpuErrorCode } from "./errors.js";

/**
 * Instruction-set paths of the native kernels. `auto` picks the best this CPU runs. `amx` (x86-64): the AMX-INT8 GEMM
 * from 4 tokens, the `avx512vnni` kernels otherwise.
 */
export type CpuIsa = "auto" | "scalar" | "avx2" | "avx512vnni" | "amx" | "neon" | "neondotprod";

/** @internal Float tables the native side reads as stored: f16 and bf16 as their 16-bit patterns, f32. */
export type NativeFloatDtype = "f16" | "bf16" | "f32";
/** How the binding stores the LM head: as the float table given, or quantised to int8 or int4 rows. */
export type NativeHeadQuant = "none" | "int8" | "int4";

/** @internal Config the native model is created with. */
export interface NativeConfig {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  context: number;
  maxSequences: number;
  ropeTheta: number;
  eps: number;
  relu2: boolean;
  kvDtype: "f32" | "f16" | "int8";
  perToken: boolean;
}

/** @internal The native model handle. Methods returning numbers return a status (0 = ok). */
export interface NativeModelHandle {
  setMatrix(layer: number, role: number, rows: number, cols: number, scaleBlock: number, scales: Float32Array): number;
  packRows(layer: number, role: number, row0: number, trits: Int8Array, rowCount: number): number;
  /** Packs `rowCount` rows straight from a tensor's stored bytes in `packing` (`halo-v2`, `tq2_0`, `int8`), on the pool. */
  packCodes(layer: number, role: number, row0: number, bytes: Uint8Array, rowCount: number, packing: string): number;
  setNorm(layer: number, which: number, values: Float32Array): number;
  /** Rows stored as halo-i2x256 at `[offset, offset + length)` of `path`, borrowed from a mapping of the file. */
  mapCodes?(layer: number, role: number, row0: number, path: string, offset: number, length: number, rowCount: number): number;
  /** The token embedding or an untied head borrowed from a mapping of the file. */
  mapFloat?(which: "embedding" | "head", path: string, offset: number, length: number, dtype: NativeFloatDtype, quant: NativeHeadQuant): number;
  /** Uint16Array: f16 bits, or bf16 bits when `bf16`. */
  setEmbedding(values: Uint16Array | Float32Array, bf16?: boolean): number;
  setHead(kind: "tied" | NativeFloatDtype, values: Uint16Array | Float32Array | null, quant: NativeHeadQuant): number;
  allocSlot(slot: number): number;
  freeSlot(slot: number): number;
  step(tokens: Int32Array, positions: Int32Array, slots: Int32Array, logitRows: Int32Array): Promise<Float32Array>;
  /** The step with contract-2 outputs: argmax / top-k computed natively from the logits, hidden rows copied before the output norm. */
  step(tokens: Int32Array, positions: Int32Array, slots: Int32Array, logitRows: Int32Array, options: NativeStepOptions): Promise<NativeStepResult>;
  /** Slot `to` gets the first `length` positions of slot `from` (codes and int8 scales), under the step mutex. */
  copySlot?(from: number, to: number, length: number): number;
  /** Fills `keys`/`values` `[layers][length][kvHeads·headDim]` with a slot's first `length` positions as attention reads them. */
  exportSlot?(slot: number, length: number, keys: Float32Array, values: Float32Array): number;
  /** Writes `[layers][length][kvHeads·headDim]` rows into a slot's first `length` positions, rounded as a step's KV write. */
  importSlot?(slot: number, length: number, keys: Float32Array, values: Float32Array): number;
  /** `mappedBytes` is absent from addons built before zero-copy loads (a stale prebuild), the byte counts from those before contract 2. */
  info(): {
    isa: string;
    threads: number;
    hugePages: boolean;
    arenaBytes: number;
    headType: string;
    mappedBytes?: number;
    headCopyPending?: boolean;
    embeddingBytes?: number;
    headBytes?: number;
    normAndScaleBytes?: number;
    kvSlotBytes?: number;
    sparseDown?: NativeSparseDownInfo;
  };
  /** Builds the sparse layout of every down matrix; one-row steps take it at most `maxDensity` nonzero inputs. Absent before the lane. */
  buildSparseDown?(maxDensity: number): number;
  dispose(): void;
}

/** @internal The sparse down lane's figures as the native model reports them. */
export interface NativeSparseDownInfo {
  /** Bytes of the sparse layout (0: the lane is off). */
  bytes: number;
  /** The share of nonzero inputs under which a layer takes the sparse kernel. */
  maxDensity: number;
  /** Down products of one-row steps that took the sparse kernel, and those that were too dense for it. */
  sparseCalls: number;
  denseCalls: number;
  /** Input columns of those products, and how many of them were nonzero. */
  columns: number;
  nonzeroColumns: number;
}

/** @internal Options of the native step that make it return a {@link NativeStepResult}. */
export interface NativeStepOptions {
  output: StepOutput;
  topK?: number;
  hiddenRows?: Int32Array;
}

/** @internal What the native step returns with options: empty logits unless output is "logits". */
export interface NativeStepResult {
  logits: Float32Array;
  argmax?: Int32Array;
  /** `[rows][topK]` */
  topKIds?: Int32Array;
  topKLogits?: Float32Array;
  /** `[hiddenRows.length][hidden]` */
  hidden?: Float32Array;
}

/** @internal The addon's exports. Op functions return a status number when they refuse the arguments. */
export interface NativeBinding {
  NativeModel: new (config: NativeConfig, isa: string, threads: number, arenaBytes: number, hugePages: boolean) => NativeModelHandle;
  quantize(x: Float32Array, width: number, perToken: boolean): { values: Int8Array; scales: Float32Array };
  ternaryMatmul(
    isa: string,
    threads: number,
    trits: Int8Array,
    rows: number,
    cols: number,
    scaleBlock: number,
    scales: Float32Array,
    x: Float32Array,
    perToken: boolean,
    /** Every token row through the sparse down layout and kernel, whatever its density (conformance tests). */
    sparse?: boolean,
  ): Float32Array | number;
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array;
  rope(x: Float32Array, positions: Int32Array, heads: number, headDim: number, theta: number): Float32Array;
  attention(
    isa: string,
    threads: number,
    q: Float32Array,
    keys: Float32Array,
    values: Float32Array,
    positions: Int32Array,
    heads: number,
    kvHeads: number,
    headDim: number,
    tile: number,
    kvDtype: "f32" | "f16" | "int8",
  ): Float32Array | number;
  lmHead(
    isa: string,
    threads: number,
    x: Float32Array,
    kind: NativeFloatDtype | "int8" | "int4",
    head: Uint16Array | Float32Array,
    vocab: number,
    hidden: number,
  ): Float32Array | number;
  gemmRaw(isa: string, trits: Int8Array, rows: number, cols: number, x: Int8Array, blocks: boolean): Int32Array | number;
  /** Signed w·x dots `[rows]` over the columns `nz` lists, through the sparse down layout and `isa`'s sparse kernel. */
  sparseRaw(isa: string, trits: Int8Array, rows: number, cols: number, x: Int8Array, nz: Int32Array): Int32Array | number;
  f16Round(isa: string, x: Float32Array): Float32Array;
  /** The forward worker's argmax of `rows` rows of `vocab` logits (for its tests). */
  argmaxRows?(logits: Float32Array, rows: number, vocab: number): Int32Array | number;
  /** The forward worker's top-k (for its tests). */
  topKRows?(logits: Float32Array, rows: number, vocab: number, k: number): { ids: Int32Array; logits: Float32Array } | number;
  isas(): string[];
  hardwareThreads(): number;
  measureReadBandwidth(threads: number, mib: number): Promise<number> | number;
}

/** Native status codes (halo_cpu.h `halo_status`). */
export const NativeStatus = { OK: 0, BAD_ARGUMENT: 1, OUT_OF_MEMORY: 2, BAD_WEIGHTS: 3, DISPOSED: 4, FILE_CHANGED: 5 } as const;

/** @internal What the binding attaches to a FILE_CHANGED rejection (`error.fileChange`): the file when mapped and now. */
export interface NativeFileChange {
  readonly path: string;
  readonly sizeBefore: number;
  /** Modification time, milliseconds since the epoch. */
  readonly modifiedBefore: number;
  readonly inodeBefore: number;
  /** Absent when fstat failed. */
  readonly sizeAfter?: number;
  readonly modifiedAfter?: number;
  readonly inodeAfter?: number;
  /** A read of the mapping faulted (the file shrank under it) and was answered with zeros. */
  readonly faulted: boolean;
  readonly statFailed: boolean;
}

let cached: NativeBinding | HaloError | undefined;

function packageRoot(): string {
  // dist/index.js and src/*.ts both sit one level below the package root.
  return join(dirname(fileURLToPath(import.meta.url)), "..");
}

/**
 * @internal The loaded addon, or throws `KERNELS_CPU_NATIVE_MISSING` naming what is missing.
 */
export function nativeBinding(): NativeBinding {
  if (cached === undefined) {
    const root = packageRoot();
    try {
      const require = createRequire(import.meta.url);
      const load = require("node-gyp-build") as (dir: string) => NativeBinding;
      cached = load(root);
    } catch (cause) {
      const prebuilt = join(root, "prebuilds", `${process.platform}-${process.arch}`);
      const local = join(root, "build", "Release", "halo_cpu.node");
      cached = new HaloError(KernelsCpuErrorCode.KERNELS_CPU_NATIVE_MISSING, "the native CPU addon could not be loaded", {
        path: existsSync(prebuilt) ? prebuilt : local,
        expected: `a prebuilt ${process.platform}-${process.arch} N-API addon in ${prebuilt}, or a local build at ${local}`,
        actual: cause instanceof Error ? cause.message.split("\n")[0] : String(cause),
        hint:
          "Fix: `npm rebuild @halo/kernels-cpu` (takes the prebuilt addon where one ships for this platform, else builds from source " +
          "with g++, make and python3); in a clone of the halo repository: `corepack pnpm --filter @halo/kernels-cpu build`",
        cause,
      });
    }
  }
  if (cached instanceof HaloError) throw cached;
  return cached;
}

/**
 * @internal Throws the HaloError for a non-zero native status.
 */
export function checkStatus(status: number, what: string, field?: string): void {
  if (status === NativeStatus.OK) return;
  throw statusError(status, what, field);
}

/** @internal A HaloError for a native status (or an Error thrown by the binding carrying `haloStatus`). */
export function statusError(status: number, what: string, field?: string, cause?: unknown): HaloError {
  const details = { ...(field === undefined ? {} : { field }), ...(cause === undefined ? {} : { cause }) };
  switch (status) {
    case NativeStatus.BAD_ARGUMENT:
      return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${what}: the native code refused the arguments`, {
        ...details,
        hint: "Check shapes and lengths against the documented layout",
      });
    case NativeStatus.BAD_WEIGHTS:
      return new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, `${what}: a ternary weight is outside {-1, 0, 1}`, { ...details, expected: "-1, 0 or 1" });
    case NativeStatus.DISPOSED:
      return new HaloError(KernelsErrorCode.KERNELS_DISPOSED, `${what}: the model was disposed`, { ...details, hint: "Load the model again" });
    case NativeStatus.FILE_CHANGED:
      return fileChangedError(what, (cause as { fileChange?: NativeFileChange } | undefined)?.fileChange, details);
    case NativeStatus.OUT_OF_MEMORY:
      return new HaloError(KernelsCpuErrorCode.KERNELS_CPU_NATIVE_FAILED, `${what}: out of memory`, {
        ...details,
        hint: "Use a smaller contextLength or maxSequences",
      });
    default:
      return new HaloError(KernelsCpuErrorCode.KERNELS_CPU_NATIVE_FAILED, `${what}: native status ${status}`, details);
  }
}

function timeText(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

/** @internal The KERNELS_CPU_MODEL_FILE_CHANGED error: which file, what changed, why the model stops, what to do. */
export function fileChangedError(what: string, change: NativeFileChange | undefined, details: { field?: string; cause?: unknown }): HaloError {
  const path = change?.path ?? "(a mapped model file)";
  const changes: string[] = [];
  if (change !== undefined) {
    if (change.sizeAfter !== undefined && change.sizeAfter !== change.sizeBefore) changes.push(`size ${change.sizeBefore} → ${change.sizeAfter} bytes`);
    if (change.modifiedAfter !== undefined && change.modifiedAfter !== change.modifiedBefore) {
      changes.push(`modified ${timeText(change.modifiedBefore)} → ${timeText(change.modifiedAfter)}`);
    }
    if (change.inodeAfter !== undefined && change.inodeAfter !== change.inodeBefore) changes.push(`inode ${change.inodeBefore} → ${change.inodeAfter}`);
    if (change.faulted) changes.push("a read of its mapping went past the file's new end (caught; the read gave zeros)");
    if (change.statFailed) changes.push("it can no longer be stat'ed");
  }
  const found = changes.length > 0 ? changes.join(", ") : "it changed";
  const expected =
    change === undefined
      ? "the file as it was when the model was loaded"
      : `the file as it was when the model was loaded: ${change.sizeBefore} bytes, modified ${timeText(change.modifiedBefore)}`;
  return new HaloError(
    KernelsCpuErrorCode.KERNELS_CPU_MODEL_FILE_CHANGED,
    `${what}: the model file changed while the model was loaded, so the weights in memory can no longer be trusted: ` +
      "this step's result was discarded and the model refuses every later step",
    {
      ...details,
      path,
      expected,
      actual: found,
      hint:
        "Restart halo (or load the model again) to use the file as it is now. To replace a model file that is in use, write the new file " +
        "next to it and rename it over the old one (`mv new.halo model.halo`): a running model keeps reading the old file and is not disturbed",
    },
  );
}

/** @internal Converts an exception of the binding into a HaloError (passes HaloErrors through). */
export function fromNative(error: unknown, what: string): unknown {
  if (error instanceof HaloError) return error;
  const status = (error as { haloStatus?: unknown } | null)?.haloStatus;
  return typeof status === "number" ? statusError(status, what, undefined, error) : error;
}
