// The sparse down lane on whole models: the same logits as the dense kernels, one-row steps counted, the memory it costs
// and the options it refuses. The kernels themselves are held to their scalar twin in kernels.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { conformanceModel, greedyRun, type LoadOptions } from "@halo/kernels";
import { builtIsas, isaSkipNote } from "./available-isas.js";
import { createBackend, SPARSE_DOWN_MAX_DENSITY, type CpuBackendOptions } from "./cpu-backend.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";
import { sparseDownBytes } from "./cpu-memory.js";
import { KernelsCpuErrorCode } from "./errors.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

// ReLU² (exact zeros in down's input), one scale per row, two row tiles of the sparse layout (300 = 256 + 44).
const weights = conformanceModel({ seed: 7, activation: "relu2", scaleKind: "row", hiddenSize: 300, intermediateSize: 700, numLayers: 2 });
const c = weights.config;
const LOAD: LoadOptions = { contextLength: 64, maxSequences: 2, kvDtype: "f16" };
const PROMPT = [5, 17, 3, 90, 41, 8];
const DECODE = 12;
const vectorIsas = builtIsas().filter((isa) => isa in SPARSE_DOWN_MAX_DENSITY);
/** The first of them this CPU runs (for the cases that need one, not each). */
const runnable = vectorIsas.find((isa) => isaSkipNote(isa) === "");

const savedMax = process.env.HALO_CPU_SPARSE_MAX;
afterEach(() => {
  if (savedMax === undefined) delete process.env.HALO_CPU_SPARSE_MAX;
  else process.env.HALO_CPU_SPARSE_MAX = savedMax;
});

async function run(options: CpuBackendOptions): Promise<{ tokens: number[]; logits: Float32Array[]; model: CpuLoadedModel }> {
  const model = (await createBackend({ threads: 2, ...options }).loadModel(weights, LOAD)) as CpuLoadedModel;
  const { tokens, logits } = await greedyRun(model, PROMPT, DECODE);
  return { tokens, logits, model };
}

describe("the sparse down lane (CpuBackendOptions.sparseDown)", () => {
  for (const isa of vectorIsas) {
    it.skipIf(isaSkipNote(isa) !== "")(`${isa}: every one-row step through the sparse kernel gives the dense model's logits${isaSkipNote(isa)}`, async () => {
      const dense = await run({ isa });
      // Density 1: every layer of every one-row step takes the sparse kernel, whatever its zeros.
      process.env.HALO_CPU_SPARSE_MAX = "1";
      const sparse = await run({ isa, sparseDown: true });
      try {
        expect(sparse.tokens).toEqual(dense.tokens);
        expect(sparse.logits).toEqual(dense.logits);
        const info = sparse.model.nativeInfo().sparseDown;
        // The prompt is one step of 6 rows (dense); the 11 decode steps are one row each, 2 layers each.
        expect(info.sparseCalls).toBe(2 * (DECODE - 1));
        expect(info.denseCalls).toBe(0);
        expect(info.columns).toBe(info.sparseCalls * c.intermediateSize);
        // ReLU² of random gates: about half the inputs are exact zeros, and int8 rounding adds some.
        const zeroShare = 1 - info.nonzeroColumns / info.columns;
        expect(zeroShare).toBeGreaterThan(0.3);
        expect(zeroShare).toBeLessThan(1);
        expect(info.bytes).toBe(sparseDownBytes(c));
        expect(dense.model.nativeInfo().sparseDown.bytes).toBe(0);
      } finally {
        dense.model.dispose();
        sparse.model.dispose();
      }
    });
  }

  it.skipIf(runnable === undefined)("at its measured density a layer whose input is too dense runs the dense kernel, and says so", async () => {
    const isa = runnable!;
    const dense = await run({ isa });
    const sparse = await run({ isa, sparseDown: true });
    try {
      expect(sparse.logits).toEqual(dense.logits);
      const info = sparse.model.nativeInfo().sparseDown;
      expect(info.maxDensity).toBe(SPARSE_DOWN_MAX_DENSITY[isa]);
      expect(info.sparseCalls + info.denseCalls).toBe(2 * (DECODE - 1));
      // Random gates leave ~50 % of inputs nonzero: above 30 %, so these layers go dense.
      expect(info.denseCalls).toBeGreaterThan(0);
    } finally {
      dense.model.dispose();
      sparse.model.dispose();
    }
  });

  it("costs the down matrices' bytes once more, in estimateMemory as in the model", () => {
    const isa = runnable;
    if (isa === undefined) return;
    const plain = createBackend({ threads: 1, isa }).estimateMemory!(c, LOAD);
    const lane = createBackend({ threads: 1, isa, sparseDown: true }).estimateMemory!(c, LOAD);
    expect(lane.weightsBytes - plain.weightsBytes).toBe(sparseDownBytes(c));
    // 2B-4T: 30 layers × 10 row tiles × 6,912 columns × 64 bytes.
    expect(sparseDownBytes({ ...c, numLayers: 30, hiddenSize: 2560, intermediateSize: 6912 })).toBe(132_710_400);
  });

  it("refuses a path with no vector kernel, a non-boolean and a density outside (0, 1]", async () => {
    expect(await haloCodeOf(() => createBackend({ isa: "scalar", sparseDown: true }))).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    expect(await haloCodeOf(() => createBackend({ sparseDown: "yes" as unknown as boolean }))).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    const isa = runnable;
    if (isa === undefined) return;
    for (const knob of ["0", "1.5", "many"]) {
      process.env.HALO_CPU_SPARSE_MAX = knob;
      expect(await haloCodeOf(() => createBackend({ isa, sparseDown: true })), knob).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    }
  });
});
