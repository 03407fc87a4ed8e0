// The native halo-v2 fast path of the loader gives the same packed model (identical logits) as the decodeRows path.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { conformanceModel, type ModelWeights, type WeightsLayer, type WeightsTernaryTensor } from "@halo/kernels";
import { synthModel, ternaryCodec } from "@halo/h1b-format";
import { createBackend } from "./cpu-backend.js";

const HALO_V2 = ternaryCodec("halo-v2");
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

/**
 * Re-encodes a tensor as halo-v2 bytes, turning about half of the `01` (w = 0) codes into the
 * equivalent `11` and filling the unused trailing bits of each row, so the fast path meets every
 * code the format allows. `packing` names the result: `"halo-v2"` takes the native path, any
 * other name the `decodeRows` path over the very same bytes.
 */
function asHaloV2(tensor: WeightsTernaryTensor, packing: string, seed: number): WeightsTernaryTensor {
  const { rows, cols } = tensor;
  const trits = new Int8Array(rows * cols);
  tensor.decodeRows(0, rows, trits);
  const bytes = HALO_V2.encode(trits, rows, cols);
  const random = noise(seed);
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
  return {
    rows,
    cols,
    packing,
    scale: tensor.scale,
    bytes: () => bytes,
    decodeRows: (rowStart, rowCount, out) => HALO_V2.decodeRows(bytes, rows, cols, rowStart, rowCount, out),
  };
}

function withPacking(weights: ModelWeights, packing: string, seed: number): ModelWeights {
  const layers = weights.layers.map((layer, l) => {
    const copy: Record<string, unknown> = { ...layer };
    TERNARY_KEYS.forEach((key, i) => (copy[key] = asHaloV2(layer[key], packing, seed * 1000 + l * 10 + i)));
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

async function expectSameLogits(weights: ModelWeights, seed: number, threads: number): Promise<void> {
  const fast = await logitsOf(withPacking(weights, "halo-v2", seed), threads);
  const decoded = await logitsOf(withPacking(weights, "halo-v2 via decodeRows", seed), threads);
  const original = await logitsOf(weights, threads);
  expect(Array.from(fast).every(Number.isFinite)).toBe(true);
  expect(fast).toEqual(decoded);
  expect(fast).toEqual(original);
}

describe("native halo-v2 repacking", () => {
  it.each([
    ["synth tiny relu2", synthModel({ shape: "tiny", seed: 11 })],
    ["synth tiny-gqa silu untied", synthModel({ shape: "tiny-gqa", activation: "silu", untiedHead: true, seed: 12 })],
    ["conformance, cols not a multiple of 4", conformanceModel({ seed: 5, hiddenSize: 50, intermediateSize: 83, scaleKind: "tensor" })],
  ])("%s: identical logits via bytes() and via decodeRows", async (_name, weights) => {
    for (const threads of [1, 2, 3]) await expectSameLogits(weights, threads, threads);
  });

  it("any shape: identical logits (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 1000 }), async (half, intermediate, seed) => {
        const weights = conformanceModel({ seed, hiddenSize: 2 * half, intermediateSize: intermediate, numLayers: 1, scaleKind: "tensor" });
        await expectSameLogits(weights, seed, 1 + (seed % 3));
      }),
      { numRuns: 12 },
    );
  });

  it("refuses halo-v2 bytes shorter than the rows need", async () => {
    const weights = withPacking(synthModel({ shape: "tiny", seed: 13 }), "halo-v2", 1);
    const layer = weights.layers[0]!;
    const short: WeightsTernaryTensor = { ...layer.o, bytes: () => layer.o.bytes().subarray(1) };
    const broken: ModelWeights = { ...weights, layers: [{ ...layer, o: short }, ...weights.layers.slice(1)] };
    await expect(createBackend({ threads: 2 }).loadModel(broken, { contextLength: 64 })).rejects.toMatchObject({ code: "KERNELS_BAD_ARGUMENT" });
  });
});
