// The native model at its limits: a vocabulary past the device top-k merge, a context past the attention grid, steps of
// more rows than one attention chunk, a failed rewrite step, info() while the first step runs, a refused finalize.
import { afterEach, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode, conformanceModel, sequenceBatch } from "@halo/kernels";
import { createBackend, finalizeModel } from "./hip-backend.js";
import type { HipLoadedModel } from "./hip-loaded-model.js";
import { ATTN_ROWS_MAX, DEVICE_TOPK_MAX_VOCAB } from "./hip-memory.js";
import { codeDirectory, NativeStatus, tryNativeBinding, type GpuModelHandle, type HipNativeBinding, type NativeGpuConfig } from "./native-binding.js";
import { needNative, SMALL_CONFIG as SMALL } from "./native.test-support.js";

afterEach(() => {
  tryNativeBinding().native?.injectFault("launch", -1);
});

/** xorshift32 in [0, 1): the hand-built models' weights. */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/**
 * A native model built through the binding alone: random ternary matrices with per-row scales, norms near 1, and the
 * embedding and head the caller gives (`head` null: tied). `setNorms` false leaves the norms unset (finalize refuses).
 */
function handBuilt(
  native: HipNativeBinding,
  config: NativeGpuConfig,
  embedding: Float32Array,
  head: Float32Array | null,
  options: { seed?: number; finalize?: boolean; setNorms?: boolean } = {},
): GpuModelHandle {
  const model = new native.GpuModel(config, "emulator", codeDirectory());
  expect(model.openStatus(), model.lastError()).toBe(NativeStatus.OK);
  const next = random(options.seed ?? 7);
  const q = config.heads * config.headDim;
  const kv = config.kvHeads * config.headDim;
  const shapes = [
    [q + 2 * kv, config.hidden],
    [config.hidden, q],
    [2 * config.intermediate, config.hidden],
    [config.hidden, config.intermediate],
  ] as const;
  for (let l = 0; l < config.layers; l++) {
    shapes.forEach(([rows, cols], role) => {
      const scales = Float32Array.from({ length: rows }, () => (0.5 + next()) / Math.sqrt(cols));
      expect(model.setMatrix(l, role, rows, cols, 0, scales), model.lastError()).toBe(NativeStatus.OK);
      const trits = Int8Array.from({ length: rows * cols }, () => Math.floor(next() * 3) - 1);
      expect(model.packRows(l, role, 0, trits, rows), model.lastError()).toBe(NativeStatus.OK);
    });
    if (options.setNorms !== false) {
      const widths = [config.hidden, q, config.hidden, config.intermediate];
      widths.forEach((width, which) =>
        expect(
          model.setNorm(
            l,
            which,
            Float32Array.from({ length: width }, () => 0.8 + 0.4 * next()),
          ),
        ).toBe(NativeStatus.OK),
      );
    }
  }
  expect(model.setNorm(-1, 0, new Float32Array(config.hidden).fill(1))).toBe(NativeStatus.OK);
  expect(model.setEmbedding(embedding, "f32"), model.lastError()).toBe(NativeStatus.OK);
  expect(head === null ? model.setHead("tied", null) : model.setHead("f32", head), model.lastError()).toBe(NativeStatus.OK);
  if (options.finalize !== false) expect(model.finalize(), model.lastError()).toBe(NativeStatus.OK);
  return model;
}

function randomTable(rows: number, cols: number, seed: number): Float32Array {
  const next = random(seed);
  return Float32Array.from({ length: rows * cols }, () => 2 * next() - 1);
}

const ints = (...values: number[]) => Int32Array.from(values);

describe("a vocabulary larger than the device top-k merges", () => {
  it("argmax past 1024 · 4096 ids is ranked on the host: the winner in the 1025th span is found, with no ranking launches", async (context) => {
    const native = needNative(context, "host ranking");
    // hidden 2 keeps the 4.2 M-row tables small (33 MB each); the emulator's LM head over them still takes ~10 s.
    const vocab = DEVICE_TOPK_MAX_VOCAB + 4;
    const config: NativeGpuConfig = { ...SMALL, hidden: 2, intermediate: 2, heads: 1, kvHeads: 1, headDim: 2, vocab, maxBatchTokens: 2 };
    const embedding = new Float32Array(vocab * 2);
    embedding.set([1.5, -0.25], 3 * 2);
    // Every logit is 0 but those of the last four ids, all in the span past the 1024th: ±s·x0 and ±s·x1 of the normed row.
    const head = new Float32Array(vocab * 2);
    const base = DEVICE_TOPK_MAX_VOCAB;
    head.set([4, 0, -4, 0, 0, 4, 0, -4], base * 2);
    const model = handBuilt(native, config, embedding, head);
    try {
      const result = await model.step(ints(3), ints(0), ints(0), ints(0), { output: "argmax", hiddenRows: ints(0) });
      expect(result.status, "message" in result ? result.message : "").toBe(0);
      if (!("logits" in result)) return;
      // The output norm keeps each element's sign and the order of their magnitudes (weights 1): the best is the larger
      // |x_i| with its sign (ties to the lower id).
      const [x0, x1] = [result.hidden![0]!, result.hidden![1]!];
      const by0 = base + (x0 > 0 ? 0 : 1);
      const by1 = base + (x1 > 0 ? 2 : 3);
      const want = Math.abs(x0) > Math.abs(x1) ? by0 : Math.abs(x1) > Math.abs(x0) ? by1 : Math.min(by0, by1);
      expect(result.argmax).toEqual(ints(want));
      // The embedding, 11 launches a layer, the output norm and the LM head: no device top-k phases.
      const info = model.info();
      expect(typeof info === "number" ? info : info.launchesPerStep).toBe(1 + 11 + 2);
    } finally {
      model.dispose();
    }
  });
});

describe("a context past the attention grid", () => {
  it("is refused by the native config check (65535 blocks of 64 positions) and, earlier, by loadModel", async (context) => {
    const native = needNative(context, "long context");
    const limit = 65535 * 64;
    const refused = new native.GpuModel({ ...SMALL, context: limit + 1 }, "emulator", codeDirectory());
    expect(refused.openStatus()).toBe(NativeStatus.BAD_ARGUMENT);
    expect(refused.lastError()).toContain(`at most ${limit} positions`);
    refused.dispose();
    // At the limit the config holds (nothing is allocated before finalize).
    const accepted = new native.GpuModel({ ...SMALL, context: limit }, "emulator", codeDirectory());
    expect(accepted.openStatus(), accepted.lastError()).toBe(NativeStatus.OK);
    accepted.dispose();
    const weights = conformanceModel({ seed: 1, maxPositionEmbeddings: 2 ** 23 });
    const error = await createBackend({ device: "emulator" })
      .loadModel(weights, { contextLength: limit + 1 })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, field: "contextLength" });
  });
});

describe("steps of more rows than one attention chunk", () => {
  it("a 100-row prefill (attention in chunks of 64 and 36) gives every row's logits bit for bit as ten 10-row steps", async (context) => {
    needNative(context, "attention chunks");
    const weights = conformanceModel({ seed: 5, numHeads: 4, numKvHeads: 2 });
    const vocab = weights.config.vocabSize;
    const tokens = Array.from({ length: 100 }, (_, i) => (i * 37 + 11) % vocab);
    const backend = createBackend({ device: "emulator", maxBatchTokens: 100 });
    const model = (await backend.loadModel(weights, { contextLength: 128, maxSequences: 2 })) as HipLoadedModel;
    try {
      const whole = model.allocateSequence();
      const once = await model.step(sequenceBatch(whole, tokens, 0, "all"));
      const layers = weights.config.numLayers;
      // The embedding; per layer 9 launches besides attention, and attention + merge per chunk; output norm and head.
      expect(ATTN_ROWS_MAX).toBe(64);
      expect(model.nativeInfo().launchesPerStep).toBe(1 + layers * (9 + 2 * 2) + 2);
      const pieces = model.allocateSequence();
      const parts: Float32Array[] = [];
      for (let start = 0; start < 100; start += 10) parts.push(await model.step(sequenceBatch(pieces, tokens.slice(start, start + 10), start, "all")));
      expect(model.nativeInfo().launchesPerStep).toBe(1 + layers * 11 + 2);
      const joined = new Float32Array(100 * vocab);
      parts.forEach((part, i) => joined.set(part, i * 10 * vocab));
      expect(Buffer.from(once.buffer, once.byteOffset, once.byteLength).equals(Buffer.from(joined.buffer))).toBe(true);
    } finally {
      model.dispose();
    }
  });
});

describe("a failed step", () => {
  it("that rewrote a slot below its length leaves the slot holding only the positions before its first row", async (context) => {
    const native = needNative(context, "failed rewrite");
    const model = handBuilt(native, { ...SMALL, graphs: false }, randomTable(SMALL.vocab, SMALL.hidden, 3), null);
    try {
      const prefill = await model.step(ints(1, 2, 3, 4, 5, 6), ints(0, 1, 2, 3, 4, 5), ints(0, 0, 0, 0, 0, 0), ints(5), { output: "logits" });
      expect(prefill.status).toBe(0);
      const kv = SMALL.layers * SMALL.kvHeads * SMALL.headDim;
      const exported = (length: number) => model.exportSlot(0, length, new Float32Array(length * kv), new Float32Array(length * kv));
      expect(exported(6)).toBe(NativeStatus.OK);
      // Rewrite positions 2 and 3 (after a truncation on the TypeScript side); the 5th launch (layer 0's attention)
      // fails after the RoPE + KV write has stored them.
      expect(native.injectFault("launch", 4)).toBe(0);
      const failed = await model.step(ints(7, 8), ints(2, 3), ints(0, 0), ints(1), { output: "logits" });
      expect(failed.status).toBe(NativeStatus.DEVICE_ERROR);
      native.injectFault("launch", -1);
      // Positions 2 … 5 may be half rewritten: the slot holds 2, so neither an export of 6 nor a step at 6 is allowed.
      expect(exported(6)).toBe(NativeStatus.BAD_ARGUMENT);
      expect(model.lastError()).toContain("holds 2 positions");
      expect(exported(2)).toBe(NativeStatus.OK);
      const past = await model.step(ints(9), ints(6), ints(0), ints(0), { output: "logits" });
      expect(past.status).toBe(NativeStatus.BAD_ARGUMENT);
      // Rewriting from 2 again works.
      expect((await model.step(ints(7, 8), ints(2, 3), ints(0, 0), ints(1), { output: "logits" })).status).toBe(0);
      expect(exported(4)).toBe(NativeStatus.OK);
    } finally {
      model.dispose();
    }
  });
});

describe("info() while the first step runs", () => {
  it("answers the loaded model's numbers (no launches yet), not a refusal; after the step, its launches", async (context) => {
    const native = needNative(context, "info during the first step");
    const model = handBuilt(native, SMALL, randomTable(SMALL.vocab, SMALL.hidden, 4), null);
    try {
      const step = model.step(ints(1, 2), ints(0, 1), ints(0, 0), ints(1), { output: "logits" });
      const during = model.info();
      expect(typeof during).toBe("object");
      if (typeof during === "number") return;
      expect(during).toMatchObject({ kind: "emulator", launchesPerStep: 0, launches: 0, graphReplays: 0 });
      expect(during.kvBytes).toBeGreaterThan(0);
      expect((await step).status).toBe(0);
      const after = model.info();
      expect(typeof after === "number" ? after : after.launchesPerStep).toBe(1 + 11 * SMALL.layers + 2);
      expect(typeof after === "number" ? after : after.kvBytes).toBe(during.kvBytes);
    } finally {
      model.dispose();
    }
  });
});

describe("a finalize the device refuses", () => {
  it("is KERNELS_BAD_WEIGHTS saying the model never finished loading and what is missing, not KERNELS_DISPOSED", (context) => {
    const native = needNative(context, "refused finalize");
    const model = handBuilt(native, SMALL, randomTable(SMALL.vocab, SMALL.hidden, 5), null, { finalize: false, setNorms: false });
    try {
      let caught: unknown;
      try {
        finalizeModel(model);
      } catch (error) {
        caught = error;
      }
      expect(isHaloError(caught)).toBe(true);
      expect(caught).toMatchObject({ code: KernelsErrorCode.KERNELS_BAD_WEIGHTS });
      expect((caught as Error).message).toContain("never finished loading");
      expect(String((caught as { actual?: unknown }).actual)).toContain("attn_norm was never set");
    } finally {
      model.dispose();
    }
  });
});
