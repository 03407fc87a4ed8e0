// estimateMemory: the formula on a real model shape, and (with the addon) against what a loaded model holds on the emulated device.
import { describe, expect, it } from "vitest";
import { conformanceModel, type ModelWeights, type WeightsConfig } from "@halo/kernels";
import { shapeConfig, synthModel } from "@halo/h1b-format";
import { createBackend, estimateHipMemory } from "./hip-backend.js";
import { ATTN_PARTIAL_BUDGET, attentionRows, DEVICE_TOPK_MAX_VOCAB, g2MatrixBytes, hipMemoryEstimate, normBytes, scratchBytes } from "./hip-memory.js";
import type { HipLoadedModel } from "./hip-loaded-model.js";
import { needNative } from "./native.test-support.js";

/** BitNet b1.58 2B-4T's shape. */
const bitnet2b: WeightsConfig = {
  architecture: "bitnet",
  hiddenSize: 2560,
  intermediateSize: 6912,
  numLayers: 30,
  numHeads: 20,
  numKvHeads: 5,
  headDim: 128,
  vocabSize: 128256,
  maxPositionEmbeddings: 4096,
  ropeTheta: 500000,
  rmsNormEps: 1e-5,
  activation: "relu2",
  tiedEmbeddings: true,
};

describe("hip estimateMemory (formula)", () => {
  it("BitNet 2B: 2 bits a weight, a tied head counted once, KV = 2·layers·context·kvDim·2 bytes·sequences", () => {
    const e = estimateHipMemory(bitnet2b, { contextLength: 4096, maxSequences: 4, kvDtype: "f16" });
    // Every K is a multiple of 64: exactly 2 bits a weight. Per layer: q|k|v 3840×2560, o 2560×2560, gate|up 13824×2560, down 2560×6912.
    const weightsPerLayer = 3840 * 2560 + 2560 * 2560 + 13824 * 2560 + 2560 * 6912;
    expect(g2MatrixBytes(bitnet2b)).toBe((30 * weightsPerLayer) / 4);
    const scales = 30 * (3840 + 2560 + 13824 + 2560) * 4;
    const embedding = 128256 * 2560 * 2;
    expect(e.headBytes).toBe(embedding);
    expect(e.weightsBytes).toBe((30 * weightsPerLayer) / 4 + scales + normBytes(bitnet2b) + embedding);
    expect(e.kvBytesPerPosition).toBe(2 * 30 * 5 * 128 * 2);
    expect(e.kvBytes).toBe(2 * 30 * 4096 * 640 * 2 * 4);
    expect(e.totalBytes).toBe(e.weightsBytes + e.kvBytes + e.scratchBytes);
    expect(e.decodeReadBytes).toBe((30 * weightsPerLayer) / 4 + scales + normBytes(bitnet2b) + embedding + 2560 * 2);
    // At 512 rows and 4096 positions a logit row per row dominates the step's buffers. The float64 split-KV partials are
    // held for one attention chunk only: a row's are [20 heads][64 splits][130] = 1.33 MB, so 50 rows fit the 64 MiB
    // budget (512 rows' would be 681 MB); everything else is under 80 MB.
    expect(attentionRows(bitnet2b, 512, 4096)).toBe(50);
    const logits = 512 * 128256 * 4;
    const partials = 50 * 20 * 64 * 130 * 8;
    expect(partials).toBeLessThanOrEqual(ATTN_PARTIAL_BUDGET);
    expect(e.scratchBytes).toBeGreaterThan(logits + partials);
    expect(e.scratchBytes).toBeLessThan(logits + partials + 80e6);
    expect(e.weightsBytes / 2 ** 30).toBeCloseTo(1.14, 1);
  });

  it("an untied head is counted besides the embedding; f32 tables take 4 bytes a weight; f32 KV twice f16's", () => {
    const untied = { ...bitnet2b, tiedEmbeddings: false };
    const tied = estimateHipMemory(bitnet2b, { contextLength: 64 });
    const e = estimateHipMemory(untied, { contextLength: 64, embeddingDtype: "f32", headDtype: "bf16" });
    expect(e.headBytes).toBe(128256 * 2560 * 2);
    expect(e.weightsBytes - tied.weightsBytes).toBe(128256 * 2560 * 2 + 128256 * 2560 * 2);
    const f32 = estimateHipMemory(bitnet2b, { contextLength: 64, kvDtype: "f32" });
    const f16 = estimateHipMemory(bitnet2b, { contextLength: 64, kvDtype: "f16" });
    expect(f32.kvBytes).toBe(2 * f16.kvBytes);
    expect(estimateHipMemory(bitnet2b, { contextLength: 64, maxBatchTokens: 1 }).scratchBytes).toBeLessThan(f16.scratchBytes);
  });

  it("attention chunks: at most 64 rows, fewer for long contexts (one at least), never more than a step's rows", () => {
    expect(attentionRows(bitnet2b, 1, 4096)).toBe(1);
    expect(attentionRows(bitnet2b, 512, 64)).toBe(64);
    expect(attentionRows(bitnet2b, 40, 64)).toBe(40);
    // 128 K positions: a row's partials are 20·2048·130·8 = 42.6 MB, still one row; 4 M positions: 1.4 GB, still one.
    expect(attentionRows(bitnet2b, 512, 131072)).toBe(1);
    expect(attentionRows(bitnet2b, 512, 4194240)).toBe(1);
  });

  it("a vocabulary past what the device top-k merges holds no candidate buffers", () => {
    const big = { ...bitnet2b, vocabSize: DEVICE_TOPK_MAX_VOCAB + 1 };
    const atLimit = { ...bitnet2b, vocabSize: DEVICE_TOPK_MAX_VOCAB };
    const perRow = (c: WeightsConfig) => scratchBytes(c, 2, 64) - scratchBytes(c, 1, 64);
    // One more vocabulary id costs a logit (4 bytes) a row; losing the candidates saves 1024 blocks · 64 · 8 + 64 · 8 bytes a row.
    expect(perRow(big) - perRow(atLimit)).toBe(4 - (1024 * 64 * 8 + 64 * 8));
  });

  it("rows padded to 64 weights: an awkward K costs whole chunks", () => {
    const c = shapeConfig("tiny", "relu2");
    const awkward = { ...c, hiddenSize: 200, intermediateSize: 300, numHeads: 5, numKvHeads: 1, headDim: 40 };
    const rows = (k: number) => Math.ceil(k / 64) * 16;
    expect(g2MatrixBytes(awkward)).toBe(awkward.numLayers * ((200 + 80) * rows(200) + 200 * rows(200) + 600 * rows(200) + 200 * rows(300)));
    expect(hipMemoryEstimate(awkward, { contextLength: 8, maxSequences: 1, kvDtype: "f16", batchTokens: 4 }).kvBytesPerPosition).toBe(
      2 * awkward.numLayers * 40 * 2,
    );
  });
});

/** Models whose bytes the estimate must match exactly: tied and untied, f16 and f32 KV, awkward widths, f32 and f16 tables. */
const cases: ReadonlyArray<{ name: string; weights: () => ModelWeights; kvDtype: "f16" | "f32"; embeddingDtype: string; headDtype: string }> = [
  { name: "conformance tiny, tied f32 tables, f32 KV", weights: () => conformanceModel({ seed: 1 }), kvDtype: "f32", embeddingDtype: "f32", headDtype: "f32" },
  {
    name: "conformance GQA, untied f32 head, f16 KV",
    weights: () => conformanceModel({ seed: 2, scaleKind: "row", tiedEmbeddings: false, hiddenSize: 64, intermediateSize: 96, numHeads: 4, numKvHeads: 2 }),
    kvDtype: "f16",
    embeddingDtype: "f32",
    headDtype: "f32",
  },
  {
    name: "synth tiny, untied f16 tables, f16 KV",
    weights: () =>
      synthModel({
        shape: { ...shapeConfig("tiny", "silu"), hiddenSize: 200, intermediateSize: 300, numHeads: 5, numKvHeads: 1, headDim: 40, vocabSize: 333 },
        untiedHead: true,
        seed: 3,
      }),
    kvDtype: "f16",
    embeddingDtype: "f16",
    headDtype: "f16",
  },
];

describe("hip estimateMemory against the emulated device", () => {
  it.for(cases)("$name: the estimate is what the loaded model holds", async ({ weights: make, kvDtype, embeddingDtype, headDtype }, context) => {
    needNative(context, "estimateMemory vs the device");
    const weights = make();
    const backend = createBackend({ device: "emulator", maxBatchTokens: 24 });
    const options = { contextLength: 96, maxSequences: 3, kvDtype };
    const estimate = estimateHipMemory(weights.config, { ...options, maxBatchTokens: 24, embeddingDtype, headDtype });
    expect(weights.tokenEmbedding.dtype).toBe(embeddingDtype);
    const model = (await backend.loadModel(weights, options)) as HipLoadedModel;
    try {
      const info = model.nativeInfo();
      const tied = weights.config.tiedEmbeddings;
      expect(info.headBytes).toBe(tied ? 0 : estimate.headBytes);
      if (tied) expect(estimate.headBytes).toBe(info.embeddingBytes);
      expect(estimate.weightsBytes).toBe(info.weightsBytes + info.embeddingBytes + info.headBytes);
      expect(estimate.kvBytes).toBe(info.kvBytes);
      expect(estimate.scratchBytes).toBe(info.scratchBytes);
      // What backend.estimateMemory answers from the config alone (tables assumed 16-bit) differs only in the tables.
      const fromConfig = backend.estimateMemory!(weights.config, options);
      expect(fromConfig.kvBytes).toBe(estimate.kvBytes);
      expect(fromConfig.scratchBytes).toBe(estimate.scratchBytes);
    } finally {
      model.dispose();
    }
  });

  it("a long context: attention chunks of fewer than 64 rows, and the partials the device holds are the estimate's", async (context) => {
    needNative(context, "estimateMemory vs the device");
    // A row's partials: 4 heads · 2048 splits · 34 · 8 bytes = 2.2 MB, so 30 rows fit the 64 MiB budget.
    const weights = conformanceModel({ seed: 4, numLayers: 1, numHeads: 4, numKvHeads: 1, headDim: 32, maxPositionEmbeddings: 131072 });
    const options = { contextLength: 131072, maxSequences: 1, kvDtype: "f16" as const };
    expect(attentionRows(weights.config, 100, options.contextLength)).toBe(30);
    const backend = createBackend({ device: "emulator", maxBatchTokens: 100 });
    const estimate = estimateHipMemory(weights.config, { ...options, maxBatchTokens: 100, embeddingDtype: "f32", headDtype: "f32" });
    const model = (await backend.loadModel(weights, options)) as HipLoadedModel;
    try {
      const info = model.nativeInfo();
      expect(estimate.scratchBytes).toBe(info.scratchBytes);
      expect(estimate.kvBytes).toBe(info.kvBytes);
    } finally {
      model.dispose();
    }
  });

  it("block scales: one f32 a block on the device", async (context) => {
    needNative(context, "estimateMemory vs the device");
    const weights = conformanceModel({
      seed: 3,
      activation: "silu",
      scaleKind: "block",
      blockSize: 128,
      hiddenSize: 256,
      intermediateSize: 512,
      numLayers: 1,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 64,
      vocabSize: 101,
    });
    const model = (await createBackend({ device: "emulator", maxBatchTokens: 8 }).loadModel(weights, { contextLength: 16 })) as HipLoadedModel;
    try {
      const c = weights.config;
      const qDim = c.numHeads * c.headDim;
      const kvDim = c.numKvHeads * c.headDim;
      // [rows][cols / 128] of q|k|v, o, gate|up and down.
      const scales =
        ((qDim + 2 * kvDim) * c.hiddenSize + c.hiddenSize * qDim + 2 * c.intermediateSize * c.hiddenSize + c.hiddenSize * c.intermediateSize) / 128;
      expect(model.nativeInfo().weightsBytes).toBe(g2MatrixBytes(c) + scales * 4 + normBytes(c));
    } finally {
      model.dispose();
    }
  });
});
