// Lists the kernel paths this machine runs, so tests and tools can force each one.
import { nativeBinding, type CpuIsa } from "./native-binding.js";

/** The kernel paths built for each architecture (binding.gyp), best first; `scalar` is built everywhere. */
const BUILT_ISAS: Readonly<Record<string, readonly Exclude<CpuIsa, "auto">[]>> = {
  x64: ["amx", "avx512vnni", "avx2", "scalar"],
  arm64: ["neondotprod", "neon", "scalar"],
};

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

/**
 * Every ISA path the addon is built with for `arch` (default: this process's), best first, whether or not this CPU
 * runs it — so a test can list a case for each and skip, with {@link isaSkipNote} in its name, those this CPU lacks
 * instead of leaving them out. Only `scalar` on an architecture without SIMD tables.
 *
 * @example
 * ```ts
 * for (const isa of builtIsas()) describe.skipIf(isaSkipNote(isa) !== "")(`cpu ${isa}${isaSkipNote(isa)}`, () => {});
 * ```
 */
export function builtIsas(arch: string = process.arch): Exclude<CpuIsa, "auto">[] {
  return [...(BUILT_ISAS[arch] ?? ["scalar"])];
}

/**
 * "" when this CPU runs `isa` (it is in {@link availableIsas}), else the note a skipped test's name carries:
 * " (skipped: this CPU lacks <isa>)", or for `amx` one naming AMX and the tile model that runs it instead — the wording
 * `scripts/test-ci.mjs` accepts as a hardware skip. Throws `KERNELS_CPU_NATIVE_MISSING` when the addon is not built.
 *
 * @example
 * ```ts
 * it.skipIf(isaSkipNote("avx2") !== "")(`avx2 equals scalar${isaSkipNote("avx2")}`, () => {});
 * ```
 */
export function isaSkipNote(isa: Exclude<CpuIsa, "auto">): string {
  if (availableIsas().includes(isa)) return "";
  return isa === "amx"
    ? " (skipped: this CPU or OS offers no AMX-INT8; sanitize's amx-check runs the kernel on the tile model)"
    : ` (skipped: this CPU lacks ${isa})`;
}
