// backendFactory: how the engine discovers the GPU backend (package.json "halo": { "backend": true } + this export).
import { CONTRACT_VERSION, checkBackendOptions, type Backend, type BackendFactory, type BackendProbe } from "@halo/kernels";
import { createBackend, type HipBackendOptions } from "./hip-backend.js";
import { gpuPacking } from "./gpu-packing.js";
import { probeHip } from "./hip-probe.js";

/** Option keys the factory creates with (those of {@link HipBackendOptions}). */
const HIP_OPTION_KEYS = ["device", "maxBatchTokens", "graphs"] as const satisfies ReadonlyArray<keyof HipBackendOptions>;

/**
 * The GPU backend as a {@link BackendFactory}, found by the engine's backend discovery: name `hip`,
 * priority 200 (above cpu), created with {@link HipBackendOptions} (`backendOptions: { hip: { device,
 * maxBatchTokens } }` in `loadModel`). `probe()` never throws: it opens the device `HALO_HIP_DEVICE`
 * names (default `auto`: HIP, then CUDA) and says exactly why it cannot — the addon is missing, no
 * runtime library (the file names tried), no GPU, or an architecture this package has no code for
 * (with the targets it has). The CPU emulator is available only when chosen (`HALO_HIP_DEVICE=emulator`),
 * and says so. `packings` lists {@link gpuPacking} (`halo-g2`): writers store it, so loads upload
 * the file's weights with no repacking.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-hip";
 * const { available, reason, details } = await backendFactory.probe();
 * if (available) console.log(`GPU: ${details?.name} (${details?.arch})`);
 * else console.log(`no GPU backend: ${reason}`);
 * const backend = backendFactory.create({ maxBatchTokens: 1024 });
 * await writeHalo(model, "m.halo", { codecs: backendFactory.packings }); // stored as halo-g2
 * ```
 */
export const backendFactory: BackendFactory = {
  contractVersion: CONTRACT_VERSION,
  name: "hip",
  priority: 200,
  description: "GPU kernels through HIP (AMD gfx11/gfx12/gfx10.3) or CUDA (NVIDIA sm_80+), halo-g2 weights on the device; a CPU emulator for tests",
  packings: [gpuPacking],
  async probe(): Promise<BackendProbe> {
    return probeHip(undefined);
  },
  create(options: Readonly<Record<string, unknown>> = {}): Backend {
    return createBackend(checkBackendOptions<HipBackendOptions>("hip", HIP_OPTION_KEYS, options));
  },
};
