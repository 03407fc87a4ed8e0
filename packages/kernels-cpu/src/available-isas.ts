// Lists the kernel paths this machine runs, so tests and tools can force each one.
import { nativeBinding, type CpuIsa } from "./native-binding.js";

/**
 * The ISA paths this CPU runs, best first (`amx`, `avx512vnni`, `avx2`, `scalar` on x86-64; `neondotprod`, `neon`,
 * `scalar` on aarch64). `amx` is listed only where CPUID, XCR0 and Linux's tile-data permission allow it. Throws
 * `KERNELS_CPU_NATIVE_MISSING` when the addon is not built.
 *
 * @example
 * ```ts
 * for (const isa of availableIsas()) createBackend({ isa });
 * ```
 */
export function availableIsas(): Exclude<CpuIsa, "auto">[] {
  return nativeBinding().isas() as Exclude<CpuIsa, "auto">[];
}
