// estimateMemory against what a loaded model actually holds (the native side's own byte counts).
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode, type KvDtype } from "@halo/kernels";
import { shapeConfig, synthModel } from "@halo/h1b-format";
import { createBackend, type CpuLmHead } from "./cpu-backend.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";

const tiny = shapeConfig("tiny", "relu2");
/** Widths that are not multiples of 64 or 256: padded blocks, a padded int4 head row, one KV head. */
const awkward = { ...tiny, hiddenSize: 200, intermediateSize: 300, numHeads: 5, numKvHeads: 1, headDim: 40, vocabSize: 333 };

const cases: ReadonlyArray<{ shape: typeof tiny; untied: boolean; lmHead: CpuLmHead; kvDtype: KvDtype }> = [
  { shape: tiny, untied: false, lmHead: "f16", kvDtype: "f32" },
  { shape: tiny, untied: true, lmHead: "f16", kvDtype: "f16" },
  { shape: tiny, untied: false, lmHead: "int8", kvDtype: "int8" },
  { shape: tiny, untied: true, lmHead: "int4", kvDtype: "f16" },
  { shape: awkward, untied: false, lmHead: "int4", kvDtype: "int8" },
  { shape: awkward, untied: true, lmHead: "int8", kvDtype: "f32" },
  { shape: awkward, untied: false, lmHead: "f16", kvDtype: "int8" },
];

describe("cpu estimateMemory", () => {
  it.each(cases)(
    "$shape.hiddenSize-wide, untied $untied, $lmHead head, $kvDtype KV: the estimate is what the loaded model holds",
    async ({ shape, untied, lmHead, kvDtype }) => {
      const weights = synthModel({ shape, untiedHead: untied, seed: 3 });
      const backend = createBackend({ threads: 2, lmHead });
      const options = { contextLength: 96, maxSequences: 3, kvDtype };
      const estimate = backend.estimateMemory!(weights.config, options);
      const model = (await backend.loadModel(weights, options)) as CpuLoadedModel;
      const info = model.nativeInfo();
      const c = weights.config;
      expect(info.headType).toBe(lmHead === "f16" ? "f16" : lmHead);
      // The head as stored: the embedding itself for a tied float head, else its own bytes (int8: hidden + 4 a row;
      // int4: the halo_head_i4_row layout).
      const headIsEmbedding = !untied && lmHead === "f16";
      expect(info.headBytes).toBe(headIsEmbedding ? 0 : estimate.headBytes);
      if (headIsEmbedding) expect(estimate.headBytes).toBe(info.embeddingBytes);
      if (lmHead === "int8") expect(estimate.headBytes).toBe(c.vocabSize * (c.hiddenSize + 4));
      if (lmHead === "int4") expect(estimate.headBytes).toBe(c.vocabSize * (Math.ceil(c.hiddenSize / 64) * 32 + Math.ceil(c.hiddenSize / 64) + 8));
      expect(estimate.weightsBytes).toBe(info.arenaBytes + info.normAndScaleBytes + info.embeddingBytes + info.headBytes);
      expect(estimate.decodeReadBytes).toBe(info.arenaBytes + info.normAndScaleBytes + estimate.headBytes + c.hiddenSize * 2);
      // One slot holds contextLength positions (the int8 codes padded to 4 bytes before their scales).
      expect(info.kvSlotBytes - options.contextLength * estimate.kvBytesPerPosition).toBeGreaterThanOrEqual(0);
      expect(info.kvSlotBytes - options.contextLength * estimate.kvBytesPerPosition).toBeLessThan(4);
      const elem = kvDtype === "f32" ? 4 : kvDtype === "f16" ? 2 : 1;
      expect(estimate.kvBytesPerPosition).toBe(2 * c.numLayers * c.numKvHeads * (c.headDim * elem + (kvDtype === "int8" ? 4 : 0)));
      // kvBytes: every slot as allocated, the native slot rounded up to 2 MiB (Region::allocate); the rate unrounded.
      expect(estimate.kvBytes).toBe(3 * Math.ceil(info.kvSlotBytes / (2 << 20)) * (2 << 20));
      expect(estimate.kvBytes).toBeGreaterThanOrEqual(3 * 96 * estimate.kvBytesPerPosition);
      expect(estimate.scratchBytes).toBeGreaterThan(backend.capabilities().preferredBatchTokens * c.vocabSize * 4);
      expect(estimate.totalBytes).toBe(estimate.weightsBytes + estimate.kvBytes + estimate.scratchBytes);
      model.dispose();
    },
  );

  it("refuses the int4 head above hidden 65,536 as loadModel does", async () => {
    const wide = { ...tiny, hiddenSize: 65_600 };
    const backend = createBackend({ threads: 1, lmHead: "int4" });
    let refusal: unknown;
    try {
      backend.estimateMemory!(wide, { contextLength: 8 });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toMatchObject({ code: "KERNELS_CPU_BAD_OPTION", field: "lmHead", actual: 65_600 });
    expect(createBackend({ threads: 1, lmHead: "int8" }).estimateMemory!(wide, { contextLength: 8 }).headBytes).toBe(wide.vocabSize * (65_600 + 4));
  });

  it("refuses the options a load would refuse, with KERNELS_BAD_OPTION", () => {
    const backend = createBackend({ threads: 1 });
    for (const options of [
      { contextLength: tiny.maxPositionEmbeddings + 1 },
      { contextLength: 8, maxSequences: 0 },
      { contextLength: 8, kvDtype: "q4" as never },
    ]) {
      try {
        backend.estimateMemory!(tiny, options);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && error.code).toBe(KernelsErrorCode.KERNELS_BAD_OPTION);
      }
    }
  });
});
