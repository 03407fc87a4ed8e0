// The loader's native fast paths (halo-v2, tq2_0, int8, i2_s, hf-packed bytes) give the same packed model (identical logits) as decodeRows.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { conformanceModel, type ModelWeights, type WeightsLayer, type WeightsTernaryTensor } from "@halo/kernels";
import { synthModel, ternaryCodec } from "@halo/h1b-format";
import { createBackend } from "./cpu-backend.js";

const HALO_V2 = ternaryCodec("halo-v2");
const TQ2_0 = ternaryCodec("tq2_0");
const I2_S = ternaryCodec("i2_s");
const HF_PACKED = ternaryCodec("hf-packed");
const TERNARY_KEYS = ["q", "k", "v", "o", "gate", "up", "down"] as const;

/** Deterministic bit noise (mulberry32) for the codes and trailing bits the format leaves free. */
function noise(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Stored = "halo-v2" | "tq2_0" | "int8" | "i2_s" | "hf-packed";

/**
 * Re-encodes a tensor in a stored packing. For halo-v2 and tq2_0 about half of the `01` (w = 0)
 * codes become the equivalent `11`, and halo-v2's unused trailing bits of each row are filled, so
 * the fast path meets every code the formats allow. `packing` names the result: the stored name
 * takes the native path, any other name the `decodeRows` path over the very same bytes.
 */
function stored(tensor: WeightsTernaryTensor, format: Stored, packing: string, seed: number): WeightsTernaryTensor {
  const { rows, cols } = tensor;
  const trits = new Int8Array(rows * cols);
  tensor.decodeRows(0, rows, trits);
  const random = noise(seed);
  let bytes: Uint8Array;
  let decodeRows: (rowStart: number, rowCount: number, out: Int8Array) => void;
  if (format === "int8") {
    bytes = new Uint8Array(trits.buffer);
    decodeRows = (rowStart, rowCount, out) => out.set(trits.subarray(rowStart * cols, (rowStart + rowCount) * cols));
  } else if (format === "halo-v2") {
    bytes = HALO_V2.encode(trits, rows, cols);
    const rowBytes = Math.ceil(cols / 4);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < rowBytes * 4; c++) {
        const at = r * rowBytes + (c >> 2);
        const shift = 2 * (c & 3);
        const code = (bytes[at]! >> shift) & 3;
        const free = c >= cols;
        if ((free || code === 1) && random() < 0.5) bytes[at] = (bytes[at]! & ~(3 << shift)) | ((free ? Math.floor(random() * 4) : 3) << shift);
      }
    }
    const b = bytes;
    decodeRows = (rowStart, rowCount, out) => HALO_V2.decodeRows(b, rows, cols, rowStart, rowCount, out);
  } else if (format === "hf-packed") {
    bytes = HF_PACKED.encode(trits, rows, cols);
    for (let at = 0; at < bytes.length; at++) {
      for (let shift = 0; shift < 8; shift += 2) if (((bytes[at]! >> shift) & 3) === 1 && random() < 0.5) bytes[at] = bytes[at]! | (3 << shift);
    }
    const b = bytes;
    decodeRows = (rowStart, rowCount, out) => HF_PACKED.decodeRows(b, rows, cols, rowStart, rowCount, out);
  } else if (format === "i2_s") {
    bytes = I2_S.encode(trits, rows, cols, { scale: { kind: "tensor", value: 1 } });
    const codeBytes = (rows * cols) / 4; // then the f32 scale and padding
    for (let at = 0; at < codeBytes; at++) {
      for (let shift = 0; shift < 8; shift += 2) if (((bytes[at]! >> shift) & 3) === 1 && random() < 0.5) bytes[at] = bytes[at]! | (3 << shift);
    }
    const b = bytes;
    decodeRows = (rowStart, rowCount, out) => I2_S.decodeRows(b, rows, cols, rowStart, rowCount, out);
  } else {
    bytes = TQ2_0.encode(trits, rows, cols, { scale: { kind: "tensor", value: 1 } });
    for (let at = 0; at < bytes.length; at++) {
      if (at % 66 >= 64) continue; // the block's f16 d
      for (let shift = 0; shift < 8; shift += 2) if (((bytes[at]! >> shift) & 3) === 1 && random() < 0.5) bytes[at] = bytes[at]! | (3 << shift);
    }
    const b = bytes;
    decodeRows = (rowStart, rowCount, out) => TQ2_0.decodeRows(b, rows, cols, rowStart, rowCount, out);
  }
  const out = bytes;
  return { rows, cols, packing, scale: tensor.scale, bytes: () => out, decodeRows };
}

function withPacking(weights: ModelWeights, format: Stored, packing: string, seed: number): ModelWeights {
  const layers = weights.layers.map((layer, l) => {
    const copy: Record<string, unknown> = { ...layer };
    TERNARY_KEYS.forEach((key, i) => (copy[key] = stored(layer[key], format, packing, seed * 1000 + l * 10 + i)));
    return copy as unknown as WeightsLayer;
  });
  return { ...weights, layers };
}

async function logitsOf(weights: ModelWeights, threads: number): Promise<Float32Array> {
  const model = await createBackend({ threads }).loadModel(weights, { contextLength: 64 });
  try {
    const slot = model.allocateSequence();
    const tokens = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % weights.config.vocabSize);
    return await model.step({
      tokens,
      positions: Int32Array.from(tokens, (_, i) => i),
      slots: new Int32Array(tokens.length).fill(slot),
      logitRows: Int32Array.from(tokens, (_, i) => i),
    });
  } finally {
    model.dispose();
  }
}

async function expectSameLogits(weights: ModelWeights, seed: number, threads: number, formats: readonly Stored[]): Promise<void> {
  const original = await logitsOf(weights, threads);
  expect(Array.from(original).every(Number.isFinite)).toBe(true);
  for (const format of formats) {
    const fast = await logitsOf(withPacking(weights, format, format, seed), threads);
    const decoded = await logitsOf(withPacking(weights, format, `${format} via decodeRows`, seed), threads);
    expect(fast, `${format} via bytes() vs decodeRows`).toEqual(decoded);
    expect(fast, `${format} vs the original weights`).toEqual(original);
  }
}

describe("native repacking from stored bytes", () => {
  it.each([
    ["synth tiny relu2", synthModel({ shape: "tiny", seed: 11 }), ["halo-v2", "tq2_0", "int8", "i2_s", "hf-packed"]],
    [
      "synth tiny-gqa silu untied",
      synthModel({ shape: "tiny-gqa", activation: "silu", untiedHead: true, seed: 12 }),
      ["halo-v2", "tq2_0", "int8", "i2_s", "hf-packed"],
    ],
    ["conformance, cols not a multiple of 4", conformanceModel({ seed: 5, hiddenSize: 50, intermediateSize: 83, scaleKind: "tensor" }), ["halo-v2", "int8"]],
  ] as const)("%s: identical logits via bytes() and via decodeRows", async (_name, weights, formats) => {
    for (const threads of [1, 2, 3]) await expectSameLogits(weights, threads, threads, formats);
  });

  it("any shape: identical logits (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 1000 }),
        async (half, intermediate, seed) => {
          const weights = conformanceModel({ seed, hiddenSize: 2 * half, intermediateSize: intermediate, numLayers: 1, scaleKind: "tensor" });
          await expectSameLogits(weights, seed, 1 + (seed % 3), ["halo-v2", "int8"]);
        },
      ),
      { numRuns: 12 },
    );
  });

  it("tq2_0 with cols a multiple of 256, any row count (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 1000 }),
        async (blocks, intermediate, seed) => {
          const weights = conformanceModel({
            seed,
            hiddenSize: 256 * blocks,
            intermediateSize: 256 * Math.ceil(intermediate / 100),
            numHeads: 2,
            numKvHeads: 1,
            headDim: 128,
            numLayers: 1,
            scaleKind: "tensor",
          });
          await expectSameLogits(weights, seed, 1 + (seed % 3), ["tq2_0"]);
        },
      ),
      { numRuns: 6 },
    );
  });

  it("refuses stored bytes shorter than the rows need, and int8 trits outside {-1, 0, 1}", async () => {
    for (const format of ["halo-v2", "tq2_0", "int8", "hf-packed"] as const) {
      const weights = withPacking(synthModel({ shape: "tiny", seed: 13 }), format, format, 1);
      const layer = weights.layers[0]!;
      const short: WeightsTernaryTensor = { ...layer.o, bytes: () => layer.o.bytes().subarray(1) };
      const broken: ModelWeights = { ...weights, layers: [{ ...layer, o: short }, ...weights.layers.slice(1)] };
      await expect(createBackend({ threads: 2 }).loadModel(broken, { contextLength: 64 })).rejects.toMatchObject({ code: "KERNELS_BAD_ARGUMENT" });
    }
    const weights = withPacking(synthModel({ shape: "tiny", seed: 13 }), "int8", "int8", 1);
    const layer = weights.layers[0]!;
    const bad = Uint8Array.from(layer.down.bytes());
    bad[bad.length - 7] = 2;
    const broken: ModelWeights = { ...weights, layers: [{ ...layer, down: { ...layer.down, bytes: () => bad } }, ...weights.layers.slice(1)] };
    await expect(createBackend({ threads: 2 }).loadModel(broken, { contextLength: 64 })).rejects.toMatchObject({ code: "KERNELS_BAD_WEIGHTS" });
  });
});
