// backendFactory: how the engine discovers the CPU backend (package.json "halo": { "backend": true } + this export).
import { freemem, totalmem } from "node:os";
import { CONTRACT_VERSION, checkBackendOptions, type Backend, type BackendFactory, type BackendProbe } from "@halo/kernels";
import { autoIsa, createBackend, type CpuBackendOptions } from "./cpu-backend.js";
import { nativeBinding } from "./native-binding.js";
import { measureReadBandwidth } from "./bandwidth.js";
import { cpuPacking } from "./packing.js";

/** Option keys the factory creates with (those of {@link CpuBackendOptions}). */
const CPU_OPTION_KEYS = ["threads", "isa", "lmHead", "hugePages", "maxBatchTokens"] as const satisfies ReadonlyArray<keyof CpuBackendOptions>;

/**
 * The CPU backend as a {@link BackendFactory}, found by the engine's backend discovery: priority
 * 100 (above reference), created with {@link CpuBackendOptions} (`backendOptions: { cpu: { threads, lmHead } }`
 * in `loadModel`). `probe()` loads the native addon and reports the kernel path `auto` picks, the
 * instruction sets this CPU runs and host memory. `packings` lists {@link cpuPacking}
 * (`halo-i2x256`, the kernels' own layout): writers store it, so loads map the file's weights.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-cpu";
 * const probe = await backendFactory.probe();
 * const backend = backendFactory.create({ threads: 2, lmHead: "int8" });
 * await writeHalo(model, "m.halo", { codecs: backendFactory.packings }); // stored as halo-i2x256
 * ```
 */
export const backendFactory: BackendFactory = {
  contractVersion: CONTRACT_VERSION,
  name: "cpu",
  priority: 100,
  description: "native C++ kernels (AVX2 / AVX-512 VNNI / AMX / NEON chosen at run time) on a persistent thread pool",
  packings: [cpuPacking],
  async probe(): Promise<BackendProbe> {
    const memory = { kind: "host" as const, totalBytes: totalmem(), freeBytes: freemem() };
    let isas: readonly string[];
    let threads: number;
    try {
      const native = nativeBinding();
      isas = native.isas();
      threads = native.hardwareThreads() || 1;
    } catch (error) {
      return { available: false, reason: error instanceof Error ? error.message : String(error), memory };
    }
    const forced = process.env.HALO_CPU_ISA;
    const kernelPath = forced !== undefined && forced !== "" && forced !== "auto" ? forced : autoIsa(isas);
    return {
      available: true,
      reason: `native ${kernelPath} kernels, ${threads} threads`,
      memory,
      details: { kernelPath, isas: isas.join(", "), threads: String(threads), ...(forced ? { HALO_CPU_ISA: forced } : {}) },
    };
  },
  create(options: Readonly<Record<string, unknown>> = {}): Backend {
    return createBackend(checkBackendOptions<CpuBackendOptions>("cpu", CPU_OPTION_KEYS, options));
  },
  async measureReadBandwidth(options: Readonly<Record<string, unknown>> = {}): Promise<number> {
    const threads = options["threads"];
    return measureReadBandwidth(typeof threads === "number" ? { threads } : {});
  },
};
