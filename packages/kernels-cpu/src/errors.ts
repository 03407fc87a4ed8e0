// Error codes of @halo/kernels-cpu (documented in docs/errors.md); contract misuse reuses @halo/kernels' codes.
import { defineErrorCodes, HaloError } from "@halo/errors";

/**
 * Codes only the CPU backend throws. Misuse of the backend contract (bad batches, unknown slots,
 * calls after dispose, …) throws `KernelsErrorCode` codes from `@halo/kernels`, like every backend.
 *
 * @example
 * ```ts
 * try { createBackend({ threads: 0 }); }
 * catch (error) { if (isHaloError(error) && error.code === KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION) usage(); }
 * ```
 */
export const KernelsCpuErrorCode = defineErrorCodes({
  KERNELS_CPU_NATIVE_MISSING:
    "No compiled addon (prebuilds/<platform>-<arch>/*.node or build/Release/halo_cpu.node) matches this platform, or it failed to load; the message names the piece that is missing.",
  KERNELS_CPU_BAD_OPTION:
    "A createBackend option (threads, isa, lmHead, hugePages, maxBatchTokens) or a measureReadBandwidth option (threads, mib) is out of range or unknown.",
  KERNELS_CPU_ISA_UNSUPPORTED: "The instruction set forced with `isa` or HALO_CPU_ISA is not available on this CPU.",
  KERNELS_CPU_NATIVE_FAILED: "The native code returned a failure status (out of memory, or an argument it refused).",
  KERNELS_CPU_MODEL_FILE_CHANGED:
    "A model file whose weights are mapped changed while the model was loaded (truncated, or rewritten in place as `cp` onto it does): the step is discarded and the model refuses every later step. Restart or load the model again; replace model files by writing a new file and renaming it over the old one (`mv new.halo model.halo`), which a running model does not notice.",
});

/** Union of the codes in {@link KernelsCpuErrorCode}. */
export type KernelsCpuErrorCodeName = Exclude<keyof typeof KernelsCpuErrorCode, "describe">;

/** @internal A KERNELS_CPU_BAD_OPTION error for option `field`: what was expected, what was found, and what to do. */
export function badOption(field: string, summary: string, expected: unknown, actual: unknown, hint?: string): HaloError {
  return new HaloError(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION, summary, { field, expected, actual, ...(hint === undefined ? {} : { hint }) });
}
