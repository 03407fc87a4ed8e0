// The GPU backend's own checks that need no device: options, capabilities, refusals that name the cpu backend, the factory and its probe.
import { afterEach, describe, expect, it } from "vitest";
import { CONTRACT_VERSION, KernelsErrorCode, conformanceModel, type ModelWeights } from "@halo/kernels";
import { createBackend, estimateHipMemory } from "./hip-backend.js";
import { backendFactory } from "./hip-factory.js";
import { gpuPacking } from "./gpu-packing.js";
import { KernelsHipErrorCode } from "./errors.js";
import { EMULATOR_REASON, probeHip, resolveDevice } from "./hip-probe.js";
import { nativeMissingReason, needNative } from "./native.test-support.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

const savedDevice = process.env.HALO_HIP_DEVICE;
afterEach(() => {
  if (savedDevice === undefined) delete process.env.HALO_HIP_DEVICE;
  else process.env.HALO_HIP_DEVICE = savedDevice;
});

describe("createBackend options", () => {
  it.each([0, -1, 65537, 1.5, Number.NaN, "8" as unknown as number])("refuses maxBatchTokens=%s with HIP_BAD_OPTION", async (maxBatchTokens) => {
    expect(await haloCodeOf(() => createBackend({ maxBatchTokens }))).toBe(KernelsHipErrorCode.HIP_BAD_OPTION);
  });

  it("refuses an unknown device and a non-boolean graphs, naming the accepted values", () => {
    expect(() => createBackend({ device: "opencl" as never })).toThrow(
      expect.objectContaining({ code: "HIP_BAD_OPTION", field: "device", expected: "auto, hip, cuda, emulator" }),
    );
    expect(() => createBackend({ graphs: "yes" as never })).toThrow(expect.objectContaining({ code: "HIP_BAD_OPTION", field: "graphs" }));
  });

  it("takes the device from HALO_HIP_DEVICE when the option is absent, and refuses a bad value naming the variable", () => {
    process.env.HALO_HIP_DEVICE = "emulator";
    expect(resolveDevice(undefined)).toBe("emulator");
    expect(resolveDevice("cuda")).toBe("cuda");
    process.env.HALO_HIP_DEVICE = "";
    expect(resolveDevice(undefined)).toBe("auto");
    process.env.HALO_HIP_DEVICE = "gpu0";
    expect(() => createBackend()).toThrow(expect.objectContaining({ code: "HIP_BAD_OPTION", field: "HALO_HIP_DEVICE", actual: "gpu0" }));
  });

  it("capabilities: halo-g2 native, f16/f32 KV, per-token activations, device outputs, heads up to 256", () => {
    const caps = createBackend({ maxBatchTokens: 96 }).capabilities();
    expect(caps).toMatchObject({
      architectures: ["bitnet"],
      activations: ["relu2", "silu"],
      nativePackings: ["halo-g2"],
      repackedPackings: "any",
      floatDtypes: "any",
      kvDtypes: ["f16", "f32"],
      activationQuants: ["per-token"],
      outputs: ["logits", "argmax", "top-k"],
      hiddenRows: true,
      copySequence: true,
      sequenceTransfer: true,
      maxHeadDim: 256,
      maxBatchTokens: 96,
      preferredBatchTokens: 96,
    });
    expect(createBackend().capabilities().maxBatchTokens).toBe(512);
  });
});

describe("refusals that name the cpu backend", () => {
  const weights = conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" });
  const backend = createBackend({ device: "emulator" });

  it.each([
    ["int8 KV", { contextLength: 8, kvDtype: "int8" as const }, "kvDtype"],
    ["Q8_K activations", { contextLength: 8, activationQuant: "q8k-block" as const }, "activationQuant"],
  ])("%s: KERNELS_UNSUPPORTED_CONFIG from loadModel and estimateMemory alike", async (_name, options, field) => {
    for (const run of [() => backend.loadModel(weights, options), () => backend.estimateMemory!(weights.config, options)]) {
      try {
        await run();
        expect.unreachable();
      } catch (error) {
        // Refused before the addon is needed: the same answer with or without it.
        expect(error).toMatchObject({ code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, field });
        expect((error as Error).message).toContain("cpu backend");
      }
    }
  });

  it("a head wider than 256 is KERNELS_UNSUPPORTED_CONFIG naming the cpu backend", async () => {
    const wide: ModelWeights = { ...weights, config: { ...weights.config, headDim: 288 } };
    const error = await backend.loadModel(wide, { contextLength: 8 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, field: "headDim", actual: 288 });
    expect((error as Error).message).toContain("cpu backend");
    expect(await haloCodeOf(() => backend.estimateMemory!(wide.config, { contextLength: 8 }))).toBe(KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG);
  });

  it("block scales over fewer than 64 weights are KERNELS_UNSUPPORTED_CONFIG naming the cpu backend", async () => {
    const blocks16 = conformanceModel({ seed: 4, scaleKind: "block", blockSize: 16, hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2 });
    const error = await backend.loadModel(blocks16, { contextLength: 8 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, field: "layers[0].q|k|v" });
    expect((error as Error).message).toContain("cpu backend");
  });

  it("estimateHipMemory refuses the options a load refuses", () => {
    expect(() => estimateHipMemory(weights.config, { contextLength: 0 })).toThrow(expect.objectContaining({ code: KernelsErrorCode.KERNELS_BAD_OPTION }));
    expect(() => estimateHipMemory(weights.config, { contextLength: 8, maxSequences: 257 })).toThrow(
      expect.objectContaining({ code: KernelsErrorCode.KERNELS_BAD_OPTION }),
    );
    expect(() => estimateHipMemory(weights.config, { contextLength: 8, maxBatchTokens: 0 })).toThrow(expect.objectContaining({ code: "HIP_BAD_OPTION" }));
  });
});

describe("backendFactory", () => {
  it("is contract 2, named hip, above the cpu backend, shipping the halo-g2 codec", () => {
    expect(backendFactory.contractVersion).toBe(CONTRACT_VERSION);
    expect(backendFactory.name).toBe("hip");
    expect(backendFactory.priority).toBe(200);
    expect(backendFactory.description).toMatch(/HIP/);
    expect(backendFactory.description).toMatch(/CUDA/);
    expect(backendFactory.description).toMatch(/emulator/);
    expect(backendFactory.packings).toEqual([gpuPacking]);
  });

  it("create takes the hip options and refuses any other key with KERNELS_BAD_OPTION (checkBackendOptions)", () => {
    expect(backendFactory.create({ device: "emulator", maxBatchTokens: 64, graphs: false }).name).toBe("hip");
    expect(() => backendFactory.create({ threads: 2 })).toThrow(
      expect.objectContaining({ code: KernelsErrorCode.KERNELS_BAD_OPTION, field: "hip.threads", expected: "device, maxBatchTokens, graphs" }),
    );
  });

  it("probe never throws: a bad HALO_HIP_DEVICE is an unavailable answer naming it", async () => {
    process.env.HALO_HIP_DEVICE = "gpu0";
    const probe = await backendFactory.probe();
    expect(probe.available).toBe(false);
    expect(probe.reason).toContain("HALO_HIP_DEVICE");
  });

  it("without the addon, probe says it is missing and how to build it", async (context) => {
    if (nativeMissingReason() === null) context.skip("the addon is built here; native-bad-input.test.ts checks the probe's device answers");
    const probe = probeHip("emulator");
    expect(probe.available).toBe(false);
    expect(probe.reason).toContain("native addon missing");
    expect(probe.reason).toContain("pnpm --filter @halo/kernels-hip build");
  });

  it("the emulator, when chosen, is available and says it is the emulator", async (context) => {
    needNative(context, "emulator probe");
    process.env.HALO_HIP_DEVICE = "emulator";
    const probe = await backendFactory.probe();
    expect(probe).toMatchObject({ available: true, reason: EMULATOR_REASON });
    expect(probe.details).toMatchObject({ device: "emulator", arch: "emulator" });
    expect(probe.details!.codeDirectory).toMatch(/prebuilds[/\\]gpu$/);
    expect(typeof probe.details!.targets).toBe("string");
    expect(probe.reason).toBe("CPU emulator (tests only; slow)");
    // The emulated device's memory (host memory, capped): what loads are checked against.
    expect(probe.memory).toMatchObject({ kind: "device" });
    expect(probe.memory!.freeBytes).toBeGreaterThan(0);
    expect(probe.memory!.freeBytes).toBeLessThanOrEqual(probe.memory!.totalBytes);
  });
});
