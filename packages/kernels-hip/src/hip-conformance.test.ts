// The @halo/kernels conformance suite on the GPU backend, run on the CPU emulator (the same kernel source the GPUs run).
import { describe, it } from "vitest";
import { conformanceModel, defaultConformanceModels, runConformance } from "@halo/kernels";
import { createBackend } from "./hip-backend.js";
import { nativeMissingReason, needNative } from "./native.test-support.js";

// The suite's own three models at its default settings (prompts of 9, 16 greedy tokens, context 64: one and two
// split-KV tiles), plus one that reaches the per-64-block scale matmul path (the suite's block model has 256-blocks):
// widths that are multiples of 64, silu, GQA 2:1 and an untied head. About 20 s on 2 cores under the emulator.
const MODELS = [
  ...defaultConformanceModels(),
  {
    name: "gqa-silu-block64-untied",
    weights: conformanceModel({
      seed: 12,
      activation: "silu",
      scaleKind: "block",
      blockSize: 64,
      tiedEmbeddings: false,
      hiddenSize: 64,
      intermediateSize: 128,
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 83,
    }),
  },
];

if (nativeMissingReason() === null) {
  runConformance(() => createBackend({ device: "emulator", maxBatchTokens: 64 }), { describe, it }, { name: "hip emulator", hasOps: false, models: MODELS });
} else {
  describe("conformance: hip emulator", () => {
    it("needs the native addon", (context) => {
      needNative(context, "conformance on the emulator");
    });
  });
}
