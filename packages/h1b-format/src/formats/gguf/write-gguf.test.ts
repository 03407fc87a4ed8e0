// readGguf(writeGguf(model)) round trips: trits, f16-rounded scales, config, tokenizer, embedding types.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "../../synth/synth-model.js";
import { f16ToF32, f32ToF16 } from "../../core/half.js";
import { TERNARY_ROLES, NORM_ROLES, type HaloModel, type LayerTensors, type TernaryTensor } from "../../core/model.js";
import { ternaryTensor } from "../../core/tensors.js";
import { toGgufTokenizer } from "../../core/tokenizer-payload.js";
import { readGguf } from "./read-gguf.js";
import { readGgufHeader } from "./gguf-header.js";
import { writeGguf } from "./write-gguf.js";
import { memorySource } from "../../core/byte-source.js";

/** f16 rounding of a normal scale changes it by at most 2^-11 relative. */
const MAX_REL_ERROR_F16 = 2 ** -11;
/** q8_0: |x − q·d| ≤ d/2 with d = amax/127 (plus f16 rounding of d); synth embeddings have |x| < 0.5. */
const MAX_ABS_ERROR_Q8_0_SYNTH = 0.5 / 127;

const dir = mkdtempSync(join(tmpdir(), "halo-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectSameWeights(a: HaloModel, b: HaloModel, checkScales = true): void {
  expect(b.config).toEqual(a.config);
  for (let l = 0; l < a.config.numLayers; l++) {
    for (const role of TERNARY_ROLES) {
      const x = a.layers[l]![role];
      const y = b.layers[l]![role];
      expect([y.rows, y.cols]).toEqual([x.rows, x.cols]);
      const tx = new Int8Array(x.rows * x.cols);
      const ty = new Int8Array(y.rows * y.cols);
      x.decodeRows(0, x.rows, tx);
      y.decodeRows(0, y.rows, ty);
      expect(Buffer.from(ty).equals(Buffer.from(tx))).toBe(true);
      expect(y.scale.kind).toBe("block");
      if (!checkScales) continue;
      if (y.scale.kind !== "block" || x.scale.kind !== "tensor") throw new Error("unexpected scale kinds");
      const rounded = f16ToF32(f32ToF16(x.scale.value));
      expect(y.scale.blockSize).toBe(256);
      expect(y.scale.values.every((v) => v === rounded)).toBe(true);
      expect(Math.abs(rounded - x.scale.value) / x.scale.value).toBeLessThanOrEqual(MAX_REL_ERROR_F16);
    }
    for (const role of NORM_ROLES) expect(b.layers[l]![role].toFloat32()).toEqual(a.layers[l]![role].toFloat32());
  }
  expect(b.outputNorm.toFloat32()).toEqual(a.outputNorm.toFloat32());
}

describe("writeGguf → readGguf", () => {
  for (const ternaryType of ["tq2_0", "tq1_0"] as const) {
    it(`${ternaryType}: identical trits, f16-rounded scales, config, embedding, tokenizer, template`, async () => {
      const model = synthModel({ shape: "tiny", activation: "silu", seed: 11 });
      const path = join(dir, `tiny-${ternaryType}.gguf`);
      const report = await writeGguf(model, path, { ternaryType });
      const back = readGguf(path);
      try {
        expect(back.source).toEqual({ format: "gguf", version: 3, path });
        expectSameWeights(model, back);
        // Synth embeddings are f16-representable: f16 storage is exact.
        expect(back.tokenEmbedding.dtype).toBe("f16");
        expect(back.tokenEmbedding.toFloat32()).toEqual(model.tokenEmbedding.toFloat32());
        expect(back.lmHead).toBeNull();
        expect(back.chatTemplate).toBe(model.chatTemplate);
        const tok = toGgufTokenizer(model.tokenizer!);
        expect(back.tokenizer).toMatchObject({ kind: "gguf", model: "gpt2", pre: "llama-bpe", tokens: tok.tokens, merges: tok.merges });
        expect(report.bytes).toBe(readFileSync(path).length);
        expect(report.tensorCount).toBe(3 + 11 * model.config.numLayers - 1);
        expect(report.scaleRounding.blocks).toBeGreaterThan(0);
        expect(report.scaleRounding.maxRelativeError).toBeLessThanOrEqual(MAX_REL_ERROR_F16);
        expect(back.metadata["halo.synthetic.seed"]).toBe("11");
      } finally {
        back.close();
      }
    });
  }

  it("relu2 models carry bitnet.hidden_activation; untied heads and q8_0/f32 embeddings round trip", async () => {
    const model = synthModel({ shape: "tiny", activation: "relu2", seed: 3, untiedHead: true });
    for (const embeddingType of ["f32", "q8_0"] as const) {
      const path = join(dir, `relu2-${embeddingType}.gguf`);
      const report = await writeGguf(model, path, { ternaryType: "tq2_0", embeddingType });
      expect(report.notes.join("\n")).toMatch(/hidden_activation/);
      const back = readGguf(path);
      try {
        expect(back.config.activation).toBe("relu2");
        expect(back.config.tiedEmbeddings).toBe(false);
        expectSameWeights(model, back);
        const a = model.lmHead!.toFloat32();
        const b = back.lmHead!.toFloat32();
        expect(back.lmHead!.dtype).toBe(embeddingType);
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        if (embeddingType === "f32") expect(worst).toBe(0);
        else expect(worst).toBeLessThanOrEqual(MAX_ABS_ERROR_Q8_0_SYNTH);
      } finally {
        back.close();
      }
    }
  });

  it("writeGguf(readGguf(file)) is byte-identical to the file (tq1_0, q8_0 embedding, relu2)", async () => {
    const first = join(dir, "first.gguf");
    const second = join(dir, "second.gguf");
    await writeGguf(synthModel({ shape: "tiny", activation: "relu2", seed: 8 }), first, { ternaryType: "tq1_0", embeddingType: "q8_0" });
    const read = readGguf(first);
    try {
      const report = await writeGguf(read, second, { ternaryType: "tq1_0", embeddingType: "q8_0" });
      // The scales are already f16: nothing is rounded the second time.
      expect(report.scaleRounding.changedBlocks).toBe(0);
    } finally {
      read.close();
    }
    expect(Buffer.compare(readFileSync(second), readFileSync(first))).toBe(0);
  });

  it("per-row scales (seed .h1b style) become per-block f16 d's of their row", async () => {
    const base = synthModel({ shape: "tiny", activation: "silu", seed: 4 });
    const withRowScales = (t: TernaryTensor): TernaryTensor => {
      const trits = new Int8Array(t.rows * t.cols);
      t.decodeRows(0, t.rows, trits);
      const values = Float32Array.from({ length: t.rows }, (_, r) => Math.fround(0.01 + r * 1e-4));
      return ternaryTensor(t.name, "int8", t.rows, t.cols, { kind: "row", values }, { data: new Uint8Array(trits.buffer) });
    };
    const layers = base.layers.map((layer) => {
      const out: Record<string, unknown> = { ...layer };
      for (const role of TERNARY_ROLES) out[role] = withRowScales(layer[role]);
      return out as unknown as LayerTensors;
    });
    const path = join(dir, "rows.gguf");
    const report = await writeGguf({ ...base, layers }, path, { ternaryType: "tq2_0" });
    expect(report.scaleRounding.maxRelativeError).toBeLessThanOrEqual(MAX_REL_ERROR_F16);
    const back = readGguf(path);
    try {
      const down = back.layers[1]!.down;
      if (down.scale.kind !== "block") throw new Error("expected block scales");
      const perRow = down.cols / 256;
      for (let r = 0; r < down.rows; r++) {
        const expected = f16ToF32(f32ToF16(Math.fround(0.01 + r * 1e-4)));
        for (let b = 0; b < perRow; b++) expect(down.scale.values[r * perRow + b]).toBe(expected);
      }
      expectSameWeights({ ...base, layers }, back, false);
    } finally {
      back.close();
    }
  });

  it("writes a header llama.cpp expects: arch bitnet, v3, aligned contiguous tensors, file type", async () => {
    const path = join(dir, "header.gguf");
    await writeGguf(synthModel({ shape: "tiny", activation: "silu", seed: 2 }), path, { ternaryType: "tq1_0" });
    const header = readGgufHeader(memorySource(readFileSync(path)));
    expect(header.version).toBe(3);
    expect(header.metadata.get("general.architecture")?.value).toBe("bitnet");
    expect(header.metadata.get("general.file_type")?.value).toBe(36);
    expect(header.metadata.get("bitnet.hidden_activation")).toBeUndefined();
    let expected = 0;
    for (const t of header.tensors) {
      expect(t.relativeOffset).toBe(expected);
      expected = Math.ceil((t.relativeOffset + t.byteLength) / 32) * 32;
    }
    expect(header.tensors.find((t) => t.name === "blk.0.ffn_down.weight")?.dims).toEqual([512, 256]);
  });

  it("refuses unknown ternary types and shapes TQ cannot hold", async () => {
    const model = synthModel({ shape: "tiny", seed: 1 });
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return "none";
      } catch (error) {
        return isHaloError(error) ? error.code : `non-HaloError ${String(error)}`;
      }
    };
    expect(await code(writeGguf(model, join(dir, "x.gguf"), { ternaryType: "q4_0" as never }))).toBe("H1B_BAD_ARGUMENT");
    const odd = synthModel({
      shape: { ...model.config, hiddenSize: 192, numHeads: 3, numKvHeads: 1, headDim: 64, intermediateSize: 384 },
      seed: 1,
    });
    expect(await code(writeGguf(odd, join(dir, "odd.gguf"), { ternaryType: "tq2_0" }))).toBe("H1B_BAD_DIMENSION");
  });
});
