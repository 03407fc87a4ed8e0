// Bad input through the binding and the backend: wrong shapes, a dead model, injected device faults, corrupt weights, and the probe of a device this machine lacks.
import { afterEach, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode, conformanceModel, sequenceBatch, type LoadedModel, type ModelWeights, type WeightsTernaryTensor } from "@halo/kernels";
import { createBackend } from "./hip-backend.js";
import { backendFactory } from "./hip-factory.js";
import { gpuPacking } from "./gpu-packing.js";
import { codeDirectory, NativeStatus, tryNativeBinding, type NativeGpuConfig } from "./native-binding.js";
import { probeHip } from "./hip-probe.js";
import { KernelsHipErrorCode } from "./errors.js";
import { needNative, SMALL_CONFIG as CONFIG } from "./native.test-support.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

const PROMPT = [3, 1, 4, 1, 5];
const weights = conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" });

afterEach(() => {
  // Never leave a fault armed for the next test (after < 0 clears every fault).
  tryNativeBinding().native?.injectFault("launch", -1);
});

describe("the binding refuses bad arguments with a status, never a crash", () => {
  it.for([
    ["hidden", 1e12],
    ["vocab", Number.NaN],
    ["layers", Infinity],
    ["heads", -3],
    ["context", 2.5],
    ["ropeTheta", Infinity],
    ["eps", Number.NaN],
    ["kvDtype", "int8"],
    ["relu2", "yes"],
    ["graphs", 1],
  ] as const)("config.%s = %s: openStatus BAD_ARGUMENT, lastError says why", ([key, value], context) => {
    const native = needNative(context, "binding config");
    const model = new native.GpuModel({ ...CONFIG, [key]: value } as NativeGpuConfig, "emulator", codeDirectory());
    expect(model.openStatus()).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.lastError()).toContain(key);
    model.dispose();
  });

  it("shapes that do not fit the config, wrong array types, and a step before finalize are refused", async (context) => {
    const native = needNative(context, "binding shapes");
    const model = new native.GpuModel(CONFIG, "emulator", codeDirectory());
    expect(model.openStatus()).toBe(NativeStatus.OK);
    // o is [hidden][heads·headDim] = [64][64].
    expect(model.setMatrix(0, 1, 16, 64, 0, new Float32Array(16))).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.lastError()).not.toBe("");
    expect(model.setMatrix(0, 1, 64, 64, 0, new Float32Array(64).fill(1))).toBe(NativeStatus.OK);
    expect(model.packRows(0, 1, 2 ** 31 - 1, new Int8Array(64), 1)).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.packRows(0, 1, 0, new Int8Array(63), 1)).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.uploadG2(0, 1, 0, new Uint8Array(15), 1)).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.setNorm(0, 7, new Float32Array(64))).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.setEmbedding(new Float32Array(40 * 64), "f16")).toBe(NativeStatus.BAD_ARGUMENT);
    expect(model.setHead("int4" as never, new Uint16Array(40 * 64))).toBe(NativeStatus.BAD_ARGUMENT);
    // A trit outside {-1, 0, 1} and a halo-g2 code 3 are bad weights.
    const trits = new Int8Array(64);
    trits[9] = 2;
    expect(model.packRows(0, 1, 0, trits, 1)).toBe(NativeStatus.BAD_WEIGHTS);
    expect(model.uploadG2(0, 1, 0, new Uint8Array(16).fill(0xff), 1)).toBe(NativeStatus.BAD_WEIGHTS);
    // Not every tensor set: finalize refuses, and a step answers NOT_READY or BAD_ARGUMENT with a message.
    expect(model.finalize()).not.toBe(NativeStatus.OK);
    const one = Int32Array.of(0);
    const result = await model.step(one, one, one, one, { output: "logits" });
    expect(result.status).not.toBe(0);
    expect("message" in result && result.message).toBeTruthy();
    model.dispose();
    expect(model.finalize()).toBe(NativeStatus.NOT_READY);
  });

  it("packG2 and probe refuse bad arguments with a status or an unavailable answer", (context) => {
    const native = needNative(context, "module functions");
    expect(native.packG2(new Int8Array(10), 2, 6)).toBe(NativeStatus.BAD_ARGUMENT);
    expect(native.packG2(Uint8Array.of(1, 2) as never, 1, 2)).toBe(NativeStatus.BAD_ARGUMENT);
    const probe = native.probe("vulkan" as never, codeDirectory());
    expect(probe).toMatchObject({ available: false, status: NativeStatus.BAD_ARGUMENT });
    expect(native.injectFault("teleport" as never, 0)).not.toBe(0);
  });
});

describe("bad weights through loadModel are KERNELS_BAD_WEIGHTS", () => {
  /** `weights` with layer 0's q replaced. */
  const withQ = (q: WeightsTernaryTensor): ModelWeights => ({ ...weights, layers: [{ ...weights.layers[0]!, q }, ...weights.layers.slice(1)] });

  it("a decoded trit outside {-1, 0, 1}", async (context) => {
    needNative(context, "bad trits");
    const q = weights.layers[0]!.q;
    const bad = { ...q, packing: "int8 (decoded)", decodeRows: (s: number, n: number, out: Int8Array) => (q.decodeRows(s, n, out), (out[0] = 2)) };
    expect(await haloCodeOf(() => createBackend({ device: "emulator" }).loadModel(withQ(bad), { contextLength: 8 }))).toBe(
      KernelsErrorCode.KERNELS_BAD_WEIGHTS,
    );
  });

  it("a halo-g2 tensor with a code 3, and one of the wrong length", async (context) => {
    needNative(context, "bad halo-g2");
    const q = weights.layers[0]!.q;
    const trits = new Int8Array(q.rows * q.cols);
    q.decodeRows(0, q.rows, trits);
    const bytes = gpuPacking.encode(trits, q.rows, q.cols);
    const g2 = (b: Uint8Array): WeightsTernaryTensor => ({
      ...q,
      packing: "halo-g2",
      bytes: () => b,
      decodeRows: (s, n, out) => gpuPacking.decodeRows(b, q.rows, q.cols, s, n, out),
    });
    const backend = createBackend({ device: "emulator" });
    // The good bytes load (zero repack) and step.
    const good = await backend.loadModel(withQ(g2(bytes)), { contextLength: 8 });
    good.dispose();
    const corrupt = Uint8Array.from(bytes);
    corrupt[21] = 0xff;
    expect(await haloCodeOf(() => backend.loadModel(withQ(g2(corrupt)), { contextLength: 8 }))).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
    expect(await haloCodeOf(() => backend.loadModel(withQ(g2(bytes.subarray(16))), { contextLength: 8 }))).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
  });
});

describe("a dead model", () => {
  it("every call after dispose is KERNELS_DISPOSED; a step made before dispose still finishes", async (context) => {
    needNative(context, "dispose");
    const model = await createBackend({ device: "emulator" }).loadModel(weights, { contextLength: 16 });
    const slot = model.allocateSequence();
    const inFlight = model.step(sequenceBatch(slot, PROMPT, 0, "last"));
    model.dispose();
    const logits = await inFlight;
    expect(logits.length).toBe(weights.config.vocabSize);
    expect(logits.every(Number.isFinite)).toBe(true);
    const D = KernelsErrorCode.KERNELS_DISPOSED;
    expect(await haloCodeOf(() => model.step(sequenceBatch(slot, [1], PROMPT.length, "last")))).toBe(D);
    expect(await haloCodeOf(() => model.forward!({ ...sequenceBatch(slot, [1], PROMPT.length, "last"), output: "argmax" }))).toBe(D);
    expect(await haloCodeOf(() => model.allocateSequence())).toBe(D);
    expect(await haloCodeOf(() => model.exportSequence!(slot))).toBe(D);
    expect(await haloCodeOf(() => model.copySequence!(slot, slot))).toBe(D);
    expect(await haloCodeOf(() => (model as { nativeInfo(): unknown } & LoadedModel).nativeInfo())).toBe(D);
    model.dispose();
  });

  it("freeing or truncating a slot whose step is in flight is KERNELS_SLOT_BUSY; other slots are free to change", async (context) => {
    needNative(context, "slot busy");
    const model = await createBackend({ device: "emulator" }).loadModel(weights, { contextLength: 16, maxSequences: 2 });
    const a = model.allocateSequence();
    const b = model.allocateSequence();
    const step = model.step(sequenceBatch(a, PROMPT, 0, "last"));
    expect(await haloCodeOf(() => model.freeSequence(a))).toBe(KernelsErrorCode.KERNELS_SLOT_BUSY);
    expect(await haloCodeOf(() => model.truncateSequence(a, 0))).toBe(KernelsErrorCode.KERNELS_SLOT_BUSY);
    model.freeSequence(b);
    await step;
    model.truncateSequence(a, 2);
    model.freeSequence(a);
    model.dispose();
  });
});

describe("injected device faults", () => {
  /** A loaded model with the prompt prefilled, and the logits of the next step without any fault. */
  async function prepared(graphs: boolean) {
    const backend = createBackend({ device: "emulator", graphs });
    const model = await backend.loadModel(weights, { contextLength: 32, maxSequences: 2 });
    const slot = model.allocateSequence();
    await model.step(sequenceBatch(slot, PROMPT, 0, "last"));
    const clean = await backend.loadModel(weights, { contextLength: 32 });
    const cleanSlot = clean.allocateSequence();
    await clean.step(sequenceBatch(cleanSlot, PROMPT, 0, "last"));
    const want = await clean.step(sequenceBatch(cleanSlot, [7], PROMPT.length, "last"));
    clean.dispose();
    return { model, slot, want };
  }

  it.for([
    ["launch", 0],
    ["launch", 5],
    ["upload", 0],
    ["download", 0],
  ] as const)("a %s fault (after %i calls) is HIP_DEVICE_ERROR; the step is not applied and a retry gives the clean logits", async ([op, after], context) => {
    const native = needNative(context, "fault injection");
    const { model, slot, want } = await prepared(true);
    expect(native.injectFault(op, after)).toBe(0);
    const error = await model.step(sequenceBatch(slot, [7], PROMPT.length, "last")).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: KernelsHipErrorCode.HIP_DEVICE_ERROR });
    expect((error as Error).message).toMatch(/not applied.*retry it/);
    expect(model.sequenceLength(slot)).toBe(PROMPT.length);
    native.injectFault(op, -1);
    expect(await model.step(sequenceBatch(slot, [7], PROMPT.length, "last"))).toEqual(want);
    expect(model.sequenceLength(slot)).toBe(PROMPT.length + 1);
    model.dispose();
  });

  it("a sync fault (a step that downloads nothing waits for its launches) is HIP_DEVICE_ERROR and leaves the length", async (context) => {
    const native = needNative(context, "fault injection");
    const { model, slot, want } = await prepared(false);
    // A prefill row that asks for no logits: the step synchronizes instead of downloading.
    const silent = { ...sequenceBatch(slot, [7], PROMPT.length, "last"), logitRows: new Int32Array(0) };
    expect(native.injectFault("sync", 0)).toBe(0);
    expect(await haloCodeOf(() => model.step(silent))).toBe(KernelsHipErrorCode.HIP_DEVICE_ERROR);
    expect(model.sequenceLength(slot)).toBe(PROMPT.length);
    native.injectFault("sync", -1);
    expect((await model.step(silent)).length).toBe(0);
    expect(model.sequenceLength(slot)).toBe(PROMPT.length + 1);
    model.truncateSequence(slot, PROMPT.length);
    expect(await model.step(sequenceBatch(slot, [7], PROMPT.length, "last"))).toEqual(want);
    model.dispose();
  });

  it("a launch fault during a graph replay: the same answer, and the next replay is clean", async (context) => {
    const native = needNative(context, "fault injection");
    const { model, slot } = await prepared(true);
    // The same decode shape three times: launched, captured, replayed.
    const decode = async (i: number) => model.step(sequenceBatch(slot, [i], PROMPT.length + i, "last"));
    const first = [await decode(0), await decode(1), await decode(2)];
    model.truncateSequence(slot, PROMPT.length + 2);
    expect(native.injectFault("launch", 0)).toBe(0);
    expect(await haloCodeOf(() => decode(2))).toBe(KernelsHipErrorCode.HIP_DEVICE_ERROR);
    native.injectFault("launch", -1);
    expect(await decode(2)).toEqual(first[2]);
    const info = (model as unknown as { nativeInfo(): { graphReplays: number } }).nativeInfo();
    expect(info.graphReplays).toBeGreaterThan(0);
    model.dispose();
  });

  it("an alloc fault while loading is HIP_OUT_OF_MEMORY naming what to do, and the next load works", async (context) => {
    const native = needNative(context, "fault injection");
    const backend = createBackend({ device: "emulator" });
    expect(native.injectFault("alloc", 3)).toBe(0);
    const error = await backend.loadModel(weights, { contextLength: 16 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: KernelsHipErrorCode.HIP_OUT_OF_MEMORY });
    expect((error as Error).message).toMatch(/smaller contextLength or maxSequences/);
    native.injectFault("alloc", -1);
    const model = await backend.loadModel(weights, { contextLength: 16 });
    const slot = model.allocateSequence();
    expect((await model.step(sequenceBatch(slot, PROMPT, 0, "last"))).length).toBe(weights.config.vocabSize);
    model.dispose();
  });

  it("an export fault is HIP_DEVICE_ERROR and changes nothing; an import fault takes no slot", async (context) => {
    const native = needNative(context, "fault injection");
    const { model, slot } = await prepared(false);
    expect(native.injectFault("download", 0)).toBe(0);
    expect(await haloCodeOf(() => model.exportSequence!(slot))).toBe(KernelsHipErrorCode.HIP_DEVICE_ERROR);
    native.injectFault("download", -1);
    const state = await model.exportSequence!(slot);
    expect(state.length).toBe(PROMPT.length);
    expect(native.injectFault("upload", 0)).toBe(0);
    expect(await haloCodeOf(() => model.importSequence!(state))).toBe(KernelsHipErrorCode.HIP_DEVICE_ERROR);
    native.injectFault("upload", -1);
    // The failed import took no slot: the model's second slot is still free for this one.
    const imported = await model.importSequence!(state);
    expect(model.sequenceLength(imported)).toBe(PROMPT.length);
    model.dispose();
  });
});

describe("probing devices this machine may lack", () => {
  const saved = process.env.HALO_HIP_DEVICE;
  afterEach(() => {
    if (saved === undefined) delete process.env.HALO_HIP_DEVICE;
    else process.env.HALO_HIP_DEVICE = saved;
  });

  it.for(["hip", "cuda", "auto"] as const)("HALO_HIP_DEVICE=%s with no such GPU: unavailable, saying why and what to do", async (device, context) => {
    const native = needNative(context, "device probe");
    const raw = native.probe(device, codeDirectory());
    if (raw.available) context.skip(`a ${raw.kind} GPU (${raw.name}) is present here; this checks the answer without one`);
    process.env.HALO_HIP_DEVICE = device;
    const probe = await backendFactory.probe();
    expect(probe.available).toBe(false);
    expect(probe.details).toMatchObject({ device });
    expect([NativeStatus.NO_RUNTIME, NativeStatus.NO_DEVICE, NativeStatus.NO_CODE_FOR_ARCH]).toContain(raw.status);
    if (raw.status === NativeStatus.NO_CODE_FOR_ARCH) {
      // A GPU this package has no code for: the native reason (the device's arch, the targets tried) first, then what to do.
      expect(probe.reason.startsWith(raw.reason.replace(/[.\s]+$/, ""))).toBe(true);
      expect(probe.reason).toMatch(/cpu backend/);
    } else {
      // No runtime or no GPU (every CPU-only machine, on every run): one short clause naming what is missing; the
      // runtimes' own answers (the library names tried, what to check) in details.why.
      expect(probe.reason.length).toBeLessThan(160);
      expect(probe.reason).toMatch(
        device === "cuda"
          ? /CUDA driver \(libcuda\)/
          : device === "hip"
            ? /HIP runtime \(libamdhip64\)/
            : /no HIP or CUDA device found|neither a HIP runtime \(libamdhip64\) nor a CUDA driver \(libcuda\) is installed/,
      );
      expect(probe.details?.["why"]).toBe(raw.reason.replace(/[.\s]+$/, ""));
      if (raw.status === NativeStatus.NO_RUNTIME) expect(probe.details?.["why"]).toMatch(device === "cuda" ? /libcuda/ : /libamdhip64|libcuda/);
    }
    console.log(`probe ${device}: ${probe.reason}`);
    // The same through the backend, and a load says so with the mapped code.
    expect((await createBackend({ device }).probe()).reason).toBe(probeHip(device).reason);
    const error = await createBackend({ device })
      .loadModel(weights, { contextLength: 8 })
      .catch((e: unknown) => e);
    expect(isHaloError(error) && error.code).toMatch(/^HIP_(NO_RUNTIME|NO_DEVICE|UNSUPPORTED_ARCH)$/);
  });

  it.for(["hip", "cuda", "auto"] as const)(
    "HALO_HIP_DEVICE=%s with no GPU runtime at all (the library overrides name missing files): the short reason says exactly that",
    async (device, context) => {
      needNative(context, "no-runtime probe");
      const overrides = ["HALO_HIP_RUNTIME_LIBRARY", "HALO_CUDA_DRIVER_LIBRARY"] as const;
      const kept = overrides.map((name) => process.env[name]);
      try {
        // The native loaders read these at every probe: a path that does not exist is "no runtime", on any machine.
        for (const name of overrides) process.env[name] = `/nonexistent/halo-test/${name.toLowerCase()}.so`;
        process.env.HALO_HIP_DEVICE = device;
        const probe = await backendFactory.probe();
        expect(probe.available).toBe(false);
        expect(probe.details?.["why"]).toContain("/nonexistent/halo-test/");
        const want = {
          hip: "no GPU runtime here: the HIP runtime (libamdhip64) is not installed (",
          cuda: "no GPU runtime here: the CUDA driver (libcuda) is not installed (",
          auto: "no GPU runtime here: neither a HIP runtime (libamdhip64) nor a CUDA driver (libcuda) is installed (",
        }[device];
        expect(probe.reason.startsWith(want)).toBe(true);
        expect(probe.reason).not.toMatch(/neither.*not installed/);
      } finally {
        overrides.forEach((name, i) => {
          if (kept[i] === undefined) delete process.env[name];
          else process.env[name] = kept[i];
        });
      }
    },
  );
});
