// Conformance of the CPU backend on every kernel path built for this architecture (skipped where this CPU lacks one), plus its own option and misuse checks.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode, conformanceModel, runConformance, ternaryTensorOf, type ModelWeights } from "@halo/kernels";
import { autoIsa, createBackend } from "./cpu-backend.js";
import { availableIsas, builtIsas, isaSkipNote } from "./available-isas.js";
import { backendFactory } from "./cpu-factory.js";
import { KernelsCpuErrorCode } from "./errors.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";

// Every path built for this architecture: one this CPU lacks is listed as skipped, with the reason in its name.
for (const isa of builtIsas()) {
  const note = isaSkipNote(isa);
  const harness = { describe: note === "" ? describe : describe.skip, it };
  runConformance(() => createBackend({ isa, threads: 2 }), harness, { name: `cpu ${isa}${note}`, hasOps: true });
}

describe("createBackend options", () => {
  it.each([0, -1, 1025, 1.5, Number.NaN, "2" as unknown as number])("refuses threads=%s with KERNELS_CPU_BAD_OPTION", (threads) => {
    try {
      createBackend({ threads });
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error) && error.code).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    }
  });

  it("refuses unknown isa and lmHead values", () => {
    expect(() => createBackend({ isa: "sse9" as never })).toThrow(/unknown instruction-set path/);
    expect(() => createBackend({ lmHead: "q4" as never })).toThrow(/unknown LM head storage/);
  });

  it("a known path this CPU lacks (the other architecture's) is KERNELS_CPU_ISA_UNSUPPORTED, not a crash", () => {
    const foreign = process.arch === "arm64" ? (["avx2", "avx512vnni", "amx"] as const) : (["neon", "neondotprod"] as const);
    for (const isa of foreign) {
      try {
        createBackend({ isa });
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && error.code).toBe(KernelsCpuErrorCode.KERNELS_CPU_ISA_UNSUPPORTED);
      }
    }
  });

  it("auto runs the best path the addon lists, amx included", () => {
    expect(autoIsa(["amx", "avx512vnni", "avx2", "scalar"])).toBe("amx");
    expect(autoIsa(["avx2", "scalar"])).toBe("avx2");
    expect(autoIsa([])).toBe("scalar");
  });

  it("probes available and names its kernels", async () => {
    const probe = await createBackend({ threads: 1 }).probe();
    expect(probe.available).toBe(true);
    expect(probe.reason).toContain(availableIsas()[0]!);
  });
});

describe("bad input becomes a HaloError, never a crash", () => {
  const codeOf = async (run: () => unknown): Promise<string | undefined> => {
    try {
      await run();
    } catch (error) {
      return isHaloError(error) ? error.code : `not a HaloError: ${String(error)}`;
    }
    return undefined;
  };

  it("ops refuse arrays that are not whole rows", async () => {
    const ops = createBackend({ threads: 2 }).ops!;
    const weight = ternaryTensorOf(Int8Array.of(1, 0, -1, 1), 2, 2, { kind: "tensor", value: 1 });
    expect(await codeOf(() => ops.ternaryMatmul(weight, Float32Array.of(1, 2, 3), "per-token"))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(await codeOf(() => ops.rmsNorm(Float32Array.of(1, 2, 3), Float32Array.of(1, 1), 1e-5))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(await codeOf(() => ops.quantize(new Float32Array(100), 100, "q8k-block"))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(await codeOf(() => ops.rope(new Float32Array(6), Int32Array.of(0), 1, 3, 10000))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
  });

  it("a trit outside {-1, 0, 1} is refused at load with KERNELS_BAD_WEIGHTS", async () => {
    const weights = conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" });
    // A packing the loader does not read natively, so the bad trit arrives through decodeRows
    // (int8 bytes with a bad trit: src/native-packing.test.ts).
    const bad = {
      ...weights.layers[0]!.q,
      packing: "int8 (decoded)",
      decodeRows: (start: number, count: number, out: Int8Array) => {
        weights.layers[0]!.q.decodeRows(start, count, out);
        out[0] = 2;
      },
    };
    const broken: ModelWeights = { ...weights, layers: [{ ...weights.layers[0]!, q: bad }, ...weights.layers.slice(1)] };
    expect(await codeOf(() => createBackend({ threads: 2 }).loadModel(broken, { contextLength: 8 }))).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
  });

  it("reports its kernel path, huge pages and head type; int8 and int4 heads on request", async () => {
    const weights = conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" });
    for (const [isa, lmHead] of availableIsas().flatMap(
      (isa) =>
        [
          [isa, "int8"],
          [isa, "int4"],
        ] as const,
    )) {
      const model = (await createBackend({ threads: 2, isa, lmHead }).loadModel(weights, { contextLength: 8 })) as CpuLoadedModel;
      const info = model.nativeInfo();
      expect(info.isa).toBe(isa);
      expect(info.headType).toBe(lmHead);
      expect(typeof info.hugePages).toBe("boolean");
      model.dispose();
      expect(await codeOf(() => model.nativeInfo())).toBe(KernelsErrorCode.KERNELS_DISPOSED);
    }
  });

  it("dispose during an in-flight step lets that step finish; later calls throw KERNELS_DISPOSED", async () => {
    const weights = conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" });
    const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 64 });
    const slot = model.allocateSequence();
    const batch = { tokens: Int32Array.of(1, 2, 3), positions: Int32Array.of(0, 1, 2), slots: new Int32Array(3).fill(slot), logitRows: Int32Array.of(2) };
    const inFlight = model.step(batch);
    model.dispose();
    const logits = await inFlight;
    expect(logits.length).toBe(weights.config.vocabSize);
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(await codeOf(() => model.step(batch))).toBe(KernelsErrorCode.KERNELS_DISPOSED);
  });

  it("two models step concurrently on the shared pool and match their sequential results", async () => {
    const weights = conformanceModel({ seed: 2, activation: "silu", scaleKind: "row" });
    const backend = createBackend({ threads: 2 });
    const [a, b] = await Promise.all([backend.loadModel(weights, { contextLength: 64, maxSequences: 2 }), backend.loadModel(weights, { contextLength: 64 })]);
    const batch = (slot: number) => ({
      tokens: Int32Array.of(5, 6, 7, 8),
      positions: Int32Array.of(0, 1, 2, 3),
      slots: new Int32Array(4).fill(slot),
      logitRows: Int32Array.of(0, 3),
    });
    const [ra, rb] = await Promise.all([a.step(batch(a.allocateSequence())), b.step(batch(b.allocateSequence()))]);
    const alone = await a.step(batch(a.allocateSequence()));
    expect(ra).toEqual(alone);
    expect(rb).toEqual(alone);
    a.dispose();
    b.dispose();
  });
});

describe("backendFactory.create", () => {
  it("takes the cpu options and refuses any other key or a non-object with KERNELS_BAD_OPTION (checkBackendOptions)", () => {
    expect(backendFactory.create({ threads: 1, lmHead: "int8" }).name).toBe("cpu");
    expect(() => backendFactory.create({ threads: 1, splitKvTile: 4 })).toThrow(
      expect.objectContaining({
        code: KernelsErrorCode.KERNELS_BAD_OPTION,
        field: "cpu.splitKvTile",
        expected: "threads, isa, lmHead, hugePages, maxBatchTokens",
      }),
    );
    expect(() => backendFactory.create([] as never)).toThrow(expect.objectContaining({ code: KernelsErrorCode.KERNELS_BAD_OPTION, field: "cpu" }));
  });
});
