// Zero-copy loads: halo-i2x256 matrices and f16/f32 embeddings borrowed from a mapping of the model file give the
// same logits as the copying paths; bad ranges and bad codes are refused with a HaloError, never a crash.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ModelWeights, type WeightsFloatTensor, type WeightsLayer, type WeightsTernaryTensor } from "@halo/kernels";
import { openModel, synthModel, writeHalo } from "@halo/h1b-format";
import { createBackend } from "./cpu-backend.js";
import { backendFactory } from "./cpu-factory.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";

const TERNARY_KEYS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const dir = mkdtempSync(join(tmpdir(), "halo-mapped-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** halo-i2x256 bytes of trits `[rows][cols]`, written from the spec in native/halo_cpu.h (independent of the codec). */
function encodeI2x256(trits: Int8Array, rows: number, cols: number): Uint8Array {
  const nb = Math.ceil(cols / 256);
  const out = new Uint8Array(rows * nb * 64).fill(0x55); // code 1 (w = 0) in every slot, padding included
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const at = r * nb * 64 + (k >> 8) * 64 + (k & 63);
      const shift = 2 * ((k & 255) >> 6);
      out[at] = (out[at]! & ~(3 << shift)) | ((trits[r * cols + k]! + 1) << shift);
    }
  }
  return out;
}

interface Layout {
  /** Bytes of zeros before each ternary part (a gap breaks the adjacency of fused parts). */
  readonly gap: number;
  /** Corrupt one code of this layer's `q` to 3. */
  readonly corrupt?: boolean;
}

/**
 * Writes the model's ternary matrices (halo-i2x256) and its f16 embedding to one file and returns weights whose
 * tensors point into it through fileRange().
 */
function mappedWeights(weights: ModelWeights, name: string, layout: Layout): ModelWeights {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const place = (bytes: Uint8Array, gap: number): number => {
    const pad = (64 - (size % 64)) % 64;
    chunks.push(new Uint8Array(pad + gap));
    size += pad + gap;
    const offset = size;
    chunks.push(bytes);
    size += bytes.byteLength;
    return offset;
  };
  const path = join(dir, name);
  const embeddingBytes = weights.tokenEmbedding.bytes();
  const embeddingOffset = place(embeddingBytes, 0);
  const tokenEmbedding: WeightsFloatTensor = {
    ...weights.tokenEmbedding,
    bytes: () => weights.tokenEmbedding.bytes(),
    toFloat32: () => weights.tokenEmbedding.toFloat32(),
    fileRange: () => ({ path, offset: embeddingOffset, length: embeddingBytes.byteLength }),
  };
  const layers = weights.layers.map((layer, l) => {
    const copy: Record<string, unknown> = { ...layer };
    for (const key of TERNARY_KEYS) {
      const tensor: WeightsTernaryTensor = layer[key];
      const trits = new Int8Array(tensor.rows * tensor.cols);
      tensor.decodeRows(0, tensor.rows, trits);
      const bytes = encodeI2x256(trits, tensor.rows, tensor.cols);
      if (layout.corrupt === true && l === 0 && key === "q") bytes[5] = bytes[5]! | 0x0c;
      const offset = place(bytes, layout.gap);
      copy[key] = {
        rows: tensor.rows,
        cols: tensor.cols,
        packing: "halo-i2x256",
        scale: tensor.scale,
        bytes: () => bytes,
        decodeRows: (rowStart: number, rowCount: number, out: Int8Array) =>
          out.set(trits.subarray(rowStart * tensor.cols, (rowStart + rowCount) * tensor.cols)),
        fileRange: () => ({ path, offset, length: bytes.byteLength }),
      } satisfies WeightsTernaryTensor;
    }
    return copy as unknown as WeightsLayer;
  });
  const file = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    file.set(chunk, at);
    at += chunk.byteLength;
  }
  writeFileSync(path, file);
  return { ...weights, tokenEmbedding, layers };
}

/** Logits of 10 prompt rows, and the bytes the model borrowed from file mappings. */
async function logitsOf(weights: ModelWeights): Promise<{ logits: Float32Array; mappedBytes: number }> {
  const model = (await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 64 })) as CpuLoadedModel;
  try {
    const slot = model.allocateSequence();
    const tokens = Int32Array.from({ length: 10 }, (_, i) => (i * 11 + 5) % weights.config.vocabSize);
    const logits = await model.step({
      tokens,
      positions: Int32Array.from(tokens, (_, i) => i),
      slots: new Int32Array(tokens.length).fill(slot),
      logitRows: Int32Array.from(tokens, (_, i) => i),
    });
    return { logits, mappedBytes: model.nativeInfo().mappedBytes };
  } finally {
    model.dispose();
  }
}

describe("zero-copy loads from a mapped file", () => {
  for (const [label, weights] of [
    ["tiny relu2, tied", synthModel({ shape: "tiny", seed: 21 })],
    ["tiny-gqa silu", synthModel({ shape: "tiny-gqa", activation: "silu", seed: 22 })],
  ] as const) {
    it(`${label}: mapped (adjacent parts) and copied (parts with gaps) give the logits of the in-memory weights`, async () => {
      const original = await logitsOf(weights);
      expect(original.mappedBytes).toBe(0);
      const c = weights.config;
      const blockBytes = (cols: number): number => Math.ceil(cols / 256) * 64;
      const q = c.numHeads * c.headDim,
        kv = c.numKvHeads * c.headDim;
      const perLayer = {
        qkv: (q + 2 * kv) * blockBytes(c.hiddenSize),
        o: c.hiddenSize * blockBytes(q),
        gateUp: 2 * c.intermediateSize * blockBytes(c.hiddenSize),
        down: c.hiddenSize * blockBytes(c.intermediateSize),
      };
      // A tied embedding is the LM head, read whole every token: it is copied out of the mapping into huge pages
      // (HALO_CPU_COPY_HEAD=0 keeps it borrowed); an untied one is only looked up by row and stays borrowed.
      const embedding = c.tiedEmbeddings ? 0 : weights.tokenEmbedding.bytes().byteLength;
      const adjacentWeights = mappedWeights(weights, `${label}-adjacent.bin`, { gap: 0 });
      const adjacent = await logitsOf(adjacentWeights);
      expect(adjacent.logits).toEqual(original.logits);
      // Everything else borrowed: every matrix (fused parts adjacent in the file) and the embedding.
      const matrices = c.numLayers * (perLayer.qkv + perLayer.o + perLayer.gateUp + perLayer.down);
      expect(adjacent.mappedBytes).toBe(embedding + matrices);
      const gaps = await logitsOf(mappedWeights(weights, `${label}-gaps.bin`, { gap: 64 }));
      expect(gaps.logits).toEqual(original.logits);
      // Fused q|k|v and gate|up fall back to arena copies; single-part matrices and the embedding stay borrowed.
      expect(gaps.mappedBytes).toBe(embedding + c.numLayers * (perLayer.o + perLayer.down));
      const saved = process.env.HALO_CPU_COPY_HEAD;
      process.env.HALO_CPU_COPY_HEAD = "0";
      try {
        const borrowed = await logitsOf(adjacentWeights);
        expect(borrowed.logits).toEqual(original.logits);
        expect(borrowed.mappedBytes).toBe(weights.tokenEmbedding.bytes().byteLength + matrices);
      } finally {
        if (saved === undefined) delete process.env.HALO_CPU_COPY_HEAD;
        else process.env.HALO_CPU_COPY_HEAD = saved;
      }
    });
  }

  it("copies a tied head into huge pages in the background: steps read the mapping until the copy is switched to, with the same logits", async () => {
    const weights = synthModel({ shape: "tiny", seed: 21 });
    const original = await logitsOf(weights);
    const mapped = mappedWeights(weights, "background-copy.bin", { gap: 0 });
    // What a load that ran a step reports (the adjacent case above: the matrices; the tied head counts as copied).
    const { mappedBytes } = await logitsOf(mapped);
    const model = (await createBackend({ threads: 2 }).loadModel(mapped, { contextLength: 64 })) as CpuLoadedModel;
    try {
      expect(typeof model.nativeInfo().headCopyPending).toBe("boolean");
      const slot = model.allocateSequence();
      const tokens = Int32Array.from({ length: 10 }, (_, i) => (i * 11 + 5) % weights.config.vocabSize);
      const batch = {
        tokens,
        positions: Int32Array.from(tokens, (_, i) => i),
        slots: new Int32Array(tokens.length).fill(slot),
        logitRows: Int32Array.from(tokens, (_, i) => i),
      };
      // The copy runs at idle priority: steps (with pauses for it) until the one that switches to it, each step's
      // logits those of the in-memory weights, whether it read the mapping or the copy.
      const started = performance.now();
      let steps = 0;
      for (;;) {
        expect(await model.step(batch)).toEqual(original.logits);
        model.truncateSequence(slot, 0);
        steps++;
        if (!model.nativeInfo().headCopyPending) break;
        expect(performance.now() - started, "the background head copy never finished").toBeLessThan(20_000);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(await model.step(batch)).toEqual(original.logits);
      expect(steps).toBeGreaterThan(0);
      // Counted as copied from the load on, before and after the switch alike.
      expect(model.nativeInfo().mappedBytes).toBe(mappedBytes);
    } finally {
      model.dispose();
    }
  });

  it(".halo end to end: written with the backend's packings it loads mapped, with the logits of a repacked load, codec passed or not", async () => {
    const model = synthModel({ shape: "tiny-gqa", activation: "silu", seed: 25 });
    const c = model.config;
    const cpuPath = join(dir, "cpu-packing.halo");
    const portablePath = join(dir, "portable.halo");
    const report = await writeHalo(model, cpuPath, { codecs: backendFactory.packings ?? [] });
    expect(report.changes).toContain(`ternary packing int8 → halo-i2x256 (${c.numLayers * TERNARY_KEYS.length} tensors)`);
    await writeHalo(model, portablePath); // no codecs: h1b-format's own halo-v2, repacked at load
    const withCodec = await openModel(cpuPath, { codecs: backendFactory.packings ?? [] });
    const withoutCodec = await openModel(cpuPath); // what a tool that knows no backend opens: still mappable
    const portable = await openModel(portablePath);
    try {
      expect(withCodec.layers[0]!.q.packing).toBe("halo-i2x256");
      expect(portable.layers[0]!.q.packing).toBe("halo-v2");
      const repacked = await logitsOf(portable);
      const mapped = await logitsOf(withCodec);
      const mappedWithout = await logitsOf(withoutCodec);
      const blockBytes = (cols: number): number => Math.ceil(cols / 256) * 64;
      const q = c.numHeads * c.headDim,
        kv = c.numKvHeads * c.headDim;
      const matrices =
        c.numLayers *
        ((q + 2 * kv) * blockBytes(c.hiddenSize) +
          c.hiddenSize * blockBytes(q) +
          2 * c.intermediateSize * blockBytes(c.hiddenSize) +
          c.hiddenSize * blockBytes(c.intermediateSize));
      // Both files map the same embedding (or none); the halo-i2x256 file maps every matrix on top of it.
      expect(mapped.mappedBytes).toBeGreaterThan(0);
      expect(mapped.mappedBytes - repacked.mappedBytes).toBe(matrices);
      expect(mappedWithout.mappedBytes).toBe(mapped.mappedBytes);
      expect(mapped.logits).toEqual(repacked.logits);
      expect(mappedWithout.logits).toEqual(repacked.logits);
    } finally {
      withCodec.close();
      withoutCodec.close();
      portable.close();
    }
  });

  it("refuses a code of 3 in mapped rows with a HaloError", async () => {
    const weights = mappedWeights(synthModel({ shape: "tiny", seed: 23 }), "corrupt.bin", { gap: 0, corrupt: true });
    await expect(createBackend({ threads: 2 }).loadModel(weights, { contextLength: 64 })).rejects.toMatchObject({ name: "HaloError" });
  });

  it("refuses a file range past the end of the file, or a missing file, with a HaloError", async () => {
    const base = synthModel({ shape: "tiny", seed: 24 });
    for (const broken of ["past-end", "missing"] as const) {
      const weights = mappedWeights(base, `${broken}.bin`, { gap: 0 });
      const layer0 = weights.layers[0]!;
      const q = layer0.q;
      const range = q.fileRange!()!;
      const bad: WeightsTernaryTensor = {
        ...q,
        fileRange: () => (broken === "missing" ? { ...range, path: join(dir, "no-such-file.bin") } : { ...range, offset: range.offset + 1_000_000 }),
      };
      const layers = [{ ...layer0, q: bad }, ...weights.layers.slice(1)];
      await expect(createBackend({ threads: 1 }).loadModel({ ...weights, layers }, { contextLength: 64 })).rejects.toMatchObject({
        name: "HaloError",
        code: "KERNELS_BAD_ARGUMENT",
        field: "layers[0].q|k|v",
      });
    }
  });
});
