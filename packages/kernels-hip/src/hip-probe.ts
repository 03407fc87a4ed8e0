// probeHip: whether a device of the chosen kind opens here, and exactly why not — never throws.
import type { BackendMemory, BackendProbe } from "@halo/kernels";
import { badOption } from "./errors.js";
import { codeDirectory, deviceHint, HIP_DEVICES, NativeStatus, REBUILD_HINT, tryNativeBinding, type HipDevice, type NativeProbe } from "./native-binding.js";

/** The reason the emulator gives when it is chosen (it is never chosen by "auto"). */
export const EMULATOR_REASON = "CPU emulator (tests only; slow)";

/**
 * @internal The device the backend opens: the `device` option, else `HALO_HIP_DEVICE`, else "auto". Throws
 * HIP_BAD_OPTION for a value outside {@link HIP_DEVICES}, naming where it came from.
 */
export function resolveDevice(option: unknown): HipDevice {
  const fromEnv = option === undefined;
  const env = process.env.HALO_HIP_DEVICE;
  const value = fromEnv ? (env === undefined || env === "" ? "auto" : env) : option;
  if (typeof value !== "string" || !(HIP_DEVICES as readonly string[]).includes(value)) {
    throw badOption(
      fromEnv ? "HALO_HIP_DEVICE" : "device",
      fromEnv ? "HALO_HIP_DEVICE names no device kind" : "unknown device",
      HIP_DEVICES.join(", "),
      value,
      'Use "auto" (HIP, then CUDA), "hip", "cuda", or "emulator" (the CPU emulator, for tests)',
    );
  }
  return value as HipDevice;
}

/**
 * @internal Memory of a native probe, when it reports it: the GPU's, or the emulated device's (host memory the emulator
 * caps at 8 GiB, HALO_HIP_EMULATOR_MEMORY bytes when set) — device memory either way, which loads are checked against.
 */
export function probeMemory(probe: NativeProbe): BackendMemory | undefined {
  if (probe.totalBytes === undefined || probe.freeBytes === undefined) return undefined;
  return { kind: "device", totalBytes: probe.totalBytes, freeBytes: probe.freeBytes };
}

/** @internal The targets line of a probe: the code objects this package has, or how to build them when it has none. */
export function targetsText(targets: readonly string[]): string {
  return targets.length > 0
    ? `this package has code for ${targets.join(", ")}`
    : `this package has no GPU code objects in ${codeDirectory()} (build them: node scripts/build-kernels.mjs, with clang-19 for AMD and nvcc for NVIDIA)`;
}

/**
 * @internal The short reason of a probe that found no GPU runtime or no GPU (`undefined` for any other status): what a
 * CPU-only machine says on every run, so one clause; the runtimes' full answers go to `details.why`.
 */
export function absentReason(which: HipDevice, status: number): string | undefined {
  if (status === NativeStatus.NO_RUNTIME) {
    // "auto" names both runtimes with "neither … nor … is installed" (not "is not installed": a double negative
    // would say that they are).
    const runtime =
      which === "hip"
        ? "the HIP runtime (libamdhip64) is not installed"
        : which === "cuda"
          ? "the CUDA driver (libcuda) is not installed"
          : "neither a HIP runtime (libamdhip64) nor a CUDA driver (libcuda) is installed";
    return `no GPU runtime here: ${runtime} (halo doctor prints what was tried)`;
  }
  if (status === NativeStatus.NO_DEVICE) {
    const runtime =
      which === "hip"
        ? "the HIP runtime (libamdhip64) sees no device"
        : which === "cuda"
          ? "the CUDA driver (libcuda) sees no device"
          : "no HIP or CUDA device found";
    return `no GPU here: ${runtime} (halo doctor prints what to check)`;
  }
  return undefined;
}

/**
 * @internal Probes `device` (or the option / HALO_HIP_DEVICE default when `device` is undefined) through the addon.
 * Unavailable answers say why in words and what to do; the emulator is available, says it is the emulator, and lists
 * its details ({device, kind, name, arch, targets, codeDirectory}).
 */
export function probeHip(device: unknown): BackendProbe {
  let which: HipDevice;
  try {
    which = resolveDevice(device);
  } catch (error) {
    return { available: false, reason: error instanceof Error ? error.message : String(error) };
  }
  const { native, missing } = tryNativeBinding();
  if (native === null) {
    return { available: false, reason: `native addon missing: ${String(missing.actual)}. ${REBUILD_HINT}`, details: { device: which } };
  }
  let probe: NativeProbe;
  try {
    probe = native.probe(which, codeDirectory());
  } catch (error) {
    return { available: false, reason: `the addon's probe failed: ${error instanceof Error ? error.message : String(error)}`, details: { device: which } };
  }
  const memory = probeMemory(probe);
  const details: Record<string, string> = { device: which };
  if (probe.kind !== undefined) details.kind = probe.kind;
  if (probe.name !== undefined && probe.name !== "") details.name = probe.name;
  if (probe.arch !== undefined && probe.arch !== "") details.arch = probe.arch;
  details.targets = probe.targets.length > 0 ? probe.targets.join(", ") : "none built";
  details.codeDirectory = codeDirectory();
  const withMemory = memory === undefined ? {} : { memory };
  if (!probe.available) {
    const full = probe.reason === "" ? `native status ${probe.status}` : probe.reason.replace(/[.\s]+$/, "");
    // No GPU at all is the common case on a CPU machine, where every run names the backends passed over: one short
    // clause then, with the runtimes' own answers (which libraries were tried, what to check) in details.why.
    const absent = absentReason(which, probe.status);
    if (absent !== undefined) return { available: false, reason: absent, ...withMemory, details: { ...details, why: full } };
    const parts = [full];
    if (probe.status === NativeStatus.NO_CODE_FOR_ARCH && !probe.targets.every((t) => probe.reason.includes(t))) parts.push(targetsText(probe.targets));
    const hint = deviceHint(probe.status);
    if (hint !== undefined) parts.push(hint);
    return { available: false, reason: parts.join("; "), ...withMemory, details };
  }
  if (probe.kind === "emulator") return { available: true, reason: EMULATOR_REASON, ...withMemory, details };
  const runtime = probe.kind === "cuda" ? "CUDA" : "HIP";
  return { available: true, reason: `${probe.name ?? "GPU"} (${probe.arch ?? "?"}) through ${runtime}`, ...withMemory, details };
}
