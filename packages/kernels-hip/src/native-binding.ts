// Loads the compiled addon (halo_hip.node) through node-gyp-build and types its surface; statuses become HaloErrors here.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, type StepOutput } from "@halo/kernels";
import { KernelsHipErrorCode } from "./errors.js";

/**
 * Which device the backend opens: `"auto"` tries HIP (AMD) then CUDA (NVIDIA); `"hip"` and `"cuda"` only that runtime;
 * `"emulator"` runs the same kernels on the CPU (for tests: correct, and slow).
 *
 * @example
 * ```ts
 * const device: HipDevice = process.env.CI ? "emulator" : "auto";
 * const backend = createBackend({ device });
 * ```
 */
export type HipDevice = "auto" | "hip" | "cuda" | "emulator";

/** The devices {@link HipDevice} names, in one list for option checks. */
export const HIP_DEVICES: readonly HipDevice[] = ["auto", "hip", "cuda", "emulator"];

/** @internal What the addon's `probe` answers (it never throws). */
export interface NativeProbe {
  readonly available: boolean;
  /** A {@link NativeStatus}: why not, when not available. */
  readonly status: number;
  readonly reason: string;
  readonly kind?: "hip" | "cuda" | "emulator";
  /** "AMD Radeon 8060S Graphics", "NVIDIA H100 80GB HBM3", "halo GPU emulator (CPU)". */
  readonly name?: string;
  /** The target whose code object loaded ("gfx1151", "sm_90", "emulator"), or the device's own when none did. */
  readonly arch?: string;
  readonly totalBytes?: number;
  readonly freeBytes?: number;
  /** Targets this package has code objects for (in the code directory). */
  readonly targets: readonly string[];
}

/** @internal Float tables as the native side stores them: f16 and bf16 as their 16-bit patterns, f32. */
export type NativeFloatDtype = "f16" | "bf16" | "f32";

/** @internal Config the native model is created with. */
export interface NativeGpuConfig {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  context: number;
  maxSequences: number;
  /** Rows of the fixed per-step device buffers (a step takes at most this many tokens). */
  maxBatchTokens: number;
  ropeTheta: number;
  eps: number;
  relu2: boolean;
  kvDtype: "f16" | "f32";
  /** Replay recorded launch sequences for repeated step shapes (HIP/CUDA graphs; the emulator records and replays). */
  graphs: boolean;
}

/** @internal Options of the native step. */
export interface NativeStepOptions {
  output: StepOutput;
  /** With output "top-k": 1 … 64 (HALO_TOPK_MAX); larger k asks for logits and ranks them on the host. */
  topK?: number;
  hiddenRows?: Int32Array;
}

/** @internal What a native step resolves to: status 0 and the outputs, or a failure status and why. */
export type NativeStepResult =
  | {
      readonly status: 0;
      /** `[logitRows.length][vocab]` with output "logits"; empty otherwise. */
      readonly logits: Float32Array;
      /** `[logitRows.length]` */
      readonly argmax?: Int32Array;
      /** `[logitRows.length][topK]` */
      readonly topKIds?: Int32Array;
      readonly topKLogits?: Float32Array;
      /** `[hiddenRows.length][hidden]` */
      readonly hidden?: Float32Array;
    }
  | { readonly status: number; readonly message: string };

/** @internal What the native model reports about itself (bytes are device bytes). */
export interface NativeModelInfo {
  readonly kind: string;
  readonly name: string;
  readonly arch: string;
  /** halo-g2 matrices, their scales and the norms. */
  readonly weightsBytes: number;
  /** The LM head as held besides the embedding: 0 when tied. */
  readonly headBytes: number;
  readonly embeddingBytes: number;
  readonly kvBytes: number;
  readonly scratchBytes: number;
  readonly launchesPerStep: number;
  /** Launches since the device was opened (graph replays count their kernels). */
  readonly launches: number;
  readonly graphs: boolean;
  readonly graphReplays: number;
}

/** Matrix roles of `setMatrix` / `uploadG2` / `packRows` (rows fused as the kernels read them). */
export const MatrixRole = { QKV: 0, O: 1, GATE_UP: 2, DOWN: 3 } as const;

/** @internal The native model handle. Sync methods return 0 or a {@link NativeStatus}; `lastError()` says why. */
export interface GpuModelHandle {
  /** Whether the device opened (0), else the status of the failure (no runtime, no device, no code for the arch, …). */
  openStatus(): number;
  lastError(): string;
  /** `scaleBlock`: 0 or `cols` for one scale per row (`scales` `[rows]`), else the block size (`scales` `[rows][cols / scaleBlock]`). */
  setMatrix(layer: number, role: number, rows: number, cols: number, scaleBlock: number, scales: Float32Array): number;
  /** `bytes`: `rowCount` halo-g2 rows, uploaded as they are (code 3 refused with status BAD_WEIGHTS). */
  uploadG2(layer: number, role: number, row0: number, bytes: Uint8Array, rowCount: number): number;
  /** `trits`: `[rowCount][cols]` in {-1, 0, 1}, packed to halo-g2 natively and uploaded. */
  packRows(layer: number, role: number, row0: number, trits: Int8Array, rowCount: number): number;
  /** `layer` −1: the output norm. `which`: 0 attn, 1 attnSub, 2 ffn, 3 ffnSub. */
  setNorm(layer: number, which: number, values: Float32Array): number;
  /** `[vocab][hidden]`: Uint16Array holds f16 or bf16 bit patterns. */
  setEmbedding(values: Uint16Array | Float32Array, dtype: NativeFloatDtype): number;
  setHead(kind: "tied" | NativeFloatDtype, values: Uint16Array | Float32Array | null): number;
  /** Everything set: allocates the KV cache (all maxSequences slots) and the step buffers, uploads the RoPE table. */
  finalize(): number;
  step(tokens: Int32Array, positions: Int32Array, slots: Int32Array, logitRows: Int32Array, options: NativeStepOptions): Promise<NativeStepResult>;
  /** Slot `to` gets the first `length` positions of slot `from`. */
  copySlot(from: number, to: number, length: number): number;
  /** Fills `keys`/`values` `[layers][length][kvHeads·headDim]` with a slot's first `length` positions as attention reads them. */
  exportSlot(slot: number, length: number, keys: Float32Array, values: Float32Array): number;
  /** Writes `[layers][length][kvHeads·headDim]` rows into a slot, rounded through the KV dtype. */
  importSlot(slot: number, length: number, keys: Float32Array, values: Float32Array): number;
  /** The numbers (while a step runs: as of the last step's end, or of the first step's start), or NOT_READY once disposed. */
  info(): NativeModelInfo | number;
  /** Releases the device memory now, or when the step in flight ends. */
  dispose(): void;
}

/** @internal The addon's exports. */
export interface HipNativeBinding {
  /** Never throws. */
  probe(device: HipDevice, codeDirectory: string): NativeProbe;
  /** Emulator fault injection: the `after`-th next call of `op` fails (DEVICE_ERROR; OUT_OF_MEMORY for alloc); `after` < 0 clears. */
  injectFault(op: "alloc" | "upload" | "download" | "launch" | "sync", after: number): number;
  /** halo-g2 bytes of `[rows][cols]` trits, or a status (a trit outside {-1, 0, 1}: BAD_ARGUMENT or BAD_WEIGHTS). */
  packG2(trits: Int8Array, rows: number, cols: number): Uint8Array | number;
  GpuModel: new (config: NativeGpuConfig, device: HipDevice, codeDirectory: string) => GpuModelHandle;
}

/** Native status numbers (native/device.h `Status`, plus the binding's own 7 and 8). */
export const NativeStatus = {
  OK: 0,
  NO_RUNTIME: 1,
  NO_DEVICE: 2,
  NO_CODE_FOR_ARCH: 3,
  OUT_OF_MEMORY: 4,
  DEVICE_ERROR: 5,
  BAD_ARGUMENT: 6,
  BAD_WEIGHTS: 7,
  NOT_READY: 8,
} as const;

let cached: HipNativeBinding | HaloError | undefined;

/** @internal The package directory (dist/index.js and src/*.ts both sit one level below it). */
export function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..");
}

/** @internal Where the GPU code objects are: `<package>/prebuilds/gpu/halo_kernels.<target>.{hsaco,cubin,ptx}`. */
export function codeDirectory(): string {
  return join(packageRoot(), "prebuilds", "gpu");
}

/** The rebuild hint of every refusal that comes from a missing or stale addon. */
export const REBUILD_HINT =
  "Fix: `npm rebuild @halo/kernels-hip` (takes the prebuilt addon where one ships for this platform, else builds from source " +
  "with g++, make and python3); in a clone of the halo repository: `corepack pnpm --filter @halo/kernels-hip build`";

/** @internal The loaded addon, or throws `HIP_NATIVE_MISSING` naming what is missing. */
export function nativeBinding(): HipNativeBinding {
  if (cached === undefined) {
    const root = packageRoot();
    try {
      const require = createRequire(import.meta.url);
      const load = require("node-gyp-build") as (dir: string) => HipNativeBinding;
      cached = load(root);
    } catch (cause) {
      const prebuilt = join(root, "prebuilds", `${process.platform}-${process.arch}`);
      const local = join(root, "build", "Release", "halo_hip.node");
      cached = new HaloError(KernelsHipErrorCode.HIP_NATIVE_MISSING, "the native GPU addon (halo_hip.node) could not be loaded", {
        path: existsSync(prebuilt) ? prebuilt : local,
        expected: `a prebuilt ${process.platform}-${process.arch} N-API addon in ${prebuilt}, or a local build at ${local}`,
        actual: cause instanceof Error ? cause.message.split("\n")[0] : String(cause),
        hint: REBUILD_HINT,
        cause,
      });
    }
  }
  if (cached instanceof HaloError) throw cached;
  return cached;
}

/** @internal The addon, or null with the reason (for probes, which never throw). */
export function tryNativeBinding(): { readonly native: HipNativeBinding; readonly missing: null } | { readonly native: null; readonly missing: HaloError } {
  try {
    return { native: nativeBinding(), missing: null };
  } catch (error) {
    return { native: null, missing: error as HaloError };
  }
}

/** What to do about a device-level failure, by status. */
const DEVICE_HINTS: Readonly<Record<number, string>> = {
  [NativeStatus.NO_RUNTIME]:
    "Install the GPU runtime: ROCm's HIP runtime (libamdhip64.so, e.g. `apt-get install hip-runtime-amd` or the ROCm installer) for AMD, " +
    "the NVIDIA driver (libcuda.so.1) for NVIDIA; or use the cpu backend",
  [NativeStatus.NO_DEVICE]:
    "Check that the GPU is visible (`rocminfo` / `nvidia-smi`; HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES) and that this user may open it " +
    "(the render and video groups on Linux); or use the cpu backend",
  [NativeStatus.NO_CODE_FOR_ARCH]:
    "This package has no kernels for the GPU's architecture: build them for it (scripts/build-kernels.mjs with its target), or use the cpu backend",
  [NativeStatus.OUT_OF_MEMORY]: "Load with a smaller contextLength or maxSequences, or free GPU memory held by other processes",
  [NativeStatus.DEVICE_ERROR]:
    "If device errors repeat, dispose the model and load it again; the GPU may need a reset (check `dmesg`, `rocm-smi` or `nvidia-smi`)",
};

/** What a failed step adds to the hint: nothing of it was kept, so it can simply be made again. */
export const STEP_NOT_APPLIED = "The step was not applied (its sequences keep their lengths): retry it";

/** @internal What to do about a device-level status (no runtime, no device, no code for the arch, out of memory, device error). */
export function deviceHint(status: number): string | undefined {
  return DEVICE_HINTS[status];
}

/**
 * @internal A HaloError for a native status: `message` is the native side's own account (lastError or a step's
 * message); `before` goes ahead of a device-level hint (a failed step says it was not applied).
 */
export function statusError(status: number, what: string, message: string, field?: string, cause?: unknown, before?: string): HaloError {
  const detail = message === "" ? "" : `: ${message}`;
  const details = { ...(field === undefined ? {} : { field }), ...(cause === undefined ? {} : { cause }) };
  const own = DEVICE_HINTS[status];
  const hint = before === undefined || own === undefined ? own : `${before}. ${own}`;
  switch (status) {
    case NativeStatus.NO_RUNTIME:
      return new HaloError(KernelsHipErrorCode.HIP_NO_RUNTIME, `${what}: no GPU runtime${detail}`, { ...details, hint: hint! });
    case NativeStatus.NO_DEVICE:
      return new HaloError(KernelsHipErrorCode.HIP_NO_DEVICE, `${what}: no GPU${detail}`, { ...details, hint: hint! });
    case NativeStatus.NO_CODE_FOR_ARCH:
      return new HaloError(KernelsHipErrorCode.HIP_UNSUPPORTED_ARCH, `${what}: no kernels for this GPU${detail}`, { ...details, hint: hint! });
    case NativeStatus.OUT_OF_MEMORY:
      return new HaloError(KernelsHipErrorCode.HIP_OUT_OF_MEMORY, `${what}: out of device memory${detail}`, { ...details, hint: hint! });
    case NativeStatus.DEVICE_ERROR:
      return new HaloError(KernelsHipErrorCode.HIP_DEVICE_ERROR, `${what}: the device failed${detail}`, { ...details, hint: hint! });
    case NativeStatus.BAD_ARGUMENT:
      return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${what}: the native code refused the arguments${detail}`, {
        ...details,
        hint: "Check shapes and lengths against the documented layout",
      });
    case NativeStatus.BAD_WEIGHTS:
      return new HaloError(KernelsErrorCode.KERNELS_BAD_WEIGHTS, `${what}: a ternary weight is outside {-1, 0, 1}${detail}`, {
        ...details,
        expected: "-1, 0 or 1 (halo-g2 codes 0, 1, 2)",
        hint: "The tensor's data is corrupt: download or convert the model file again",
      });
    case NativeStatus.NOT_READY:
      // A loaded model's handle answers NOT_READY only once disposed (a refused finalize is reported by finalizeModel).
      return new HaloError(KernelsErrorCode.KERNELS_DISPOSED, `${what}: the native model was disposed${detail}`, {
        ...details,
        hint: "Load the model again",
      });
    default:
      return new HaloError(KernelsHipErrorCode.HIP_DEVICE_ERROR, `${what}: unknown native status ${status}${detail}`, {
        ...details,
        hint: "This is a bug in @halo/kernels-hip's binding; please report it with the message",
      });
  }
}

/** @internal Throws the HaloError of a non-zero status of `handle`'s sync call (the handle says why). */
export function checkStatus(handle: Pick<GpuModelHandle, "lastError">, status: number, what: string, field?: string): void {
  if (status === NativeStatus.OK) return;
  throw statusError(status, what, handle.lastError(), field);
}

/** @internal Converts an exception of the binding into a HaloError (HaloErrors pass through; a thrown status is mapped). */
export function fromNative(error: unknown, what: string): unknown {
  if (error instanceof HaloError) return error;
  const status = (error as { haloStatus?: unknown } | null)?.haloStatus;
  if (typeof status === "number") return statusError(status, what, error instanceof Error ? error.message : String(error), undefined, error);
  // A TypeError of the binding's argument checks (a wrong type or shape): the caller's argument, not the device.
  if (error instanceof TypeError || error instanceof RangeError) {
    return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `${what}: ${error.message}`, {
      cause: error,
      hint: "Check shapes and lengths against the documented layout",
    });
  }
  return error;
}
