// Error codes of @halo/kernels-hip (documented in docs/errors.md); contract misuse reuses @halo/kernels' codes.
import { defineErrorCodes, HaloError } from "@halo/errors";

/**
 * Codes only the GPU backend throws. Misuse of the backend contract (bad batches, unknown slots,
 * calls after dispose, a bad weight or argument refused by the native code, …) throws
 * `KernelsErrorCode` codes from `@halo/kernels`, like every backend.
 *
 * @example
 * ```ts
 * try { await backend.loadModel(weights, { contextLength: 32768, maxSequences: 8 }); }
 * catch (error) {
 *   if (isHaloError(error) && error.code === KernelsHipErrorCode.HIP_OUT_OF_MEMORY) retryWithShorterContext();
 * }
 * ```
 */
export const KernelsHipErrorCode = defineErrorCodes({
  HIP_NATIVE_MISSING:
    "No compiled addon (prebuilds/<platform>-<arch>/*.node or build/Release/halo_hip.node) matches this platform, or it failed to load; the message names the piece that is missing.",
  HIP_NO_RUNTIME:
    "No GPU runtime library could be loaded (libamdhip64.so for AMD, libcuda.so.1 for NVIDIA), or it lacks a symbol the backend needs; the message lists the file names tried.",
  HIP_NO_DEVICE: "The GPU runtime loads but reports no usable GPU (none present, or hidden by HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES).",
  HIP_UNSUPPORTED_ARCH:
    "The GPU's architecture has no code object in this package (prebuilds/gpu); the message names the device's architecture and the targets the package has code for.",
  HIP_OUT_OF_MEMORY:
    "The model does not fit the GPU's free memory (checked from estimateMemory before anything is allocated), or a device allocation failed; load with a smaller contextLength or maxSequences.",
  HIP_DEVICE_ERROR:
    "A device call (copy, kernel launch, synchronize) failed; the step was not applied. Retry it; if it keeps failing, dispose the model and load it again (the GPU may need a reset).",
  HIP_BAD_OPTION: "A createBackend option (device, maxBatchTokens, graphs) or the HALO_HIP_DEVICE variable is out of range or unknown.",
});

/**
 * Union of the codes in {@link KernelsHipErrorCode}.
 *
 * @example
 * ```ts
 * const code: KernelsHipErrorCodeName = "HIP_NO_DEVICE";
 * ```
 */
export type KernelsHipErrorCodeName = Exclude<keyof typeof KernelsHipErrorCode, "describe">;

/** @internal A HIP_BAD_OPTION error for option `field`: what was expected, what was found, and what to do. */
export function badOption(field: string, summary: string, expected: unknown, actual: unknown, hint?: string): HaloError {
  return new HaloError(KernelsHipErrorCode.HIP_BAD_OPTION, summary, { field, expected, actual, ...(hint === undefined ? {} : { hint }) });
}
