import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { memorySource } from "../../core/byte-source.js";
import { TERNARY_ROLES } from "../../core/model.js";
import { handBuiltH1b, type HandBuiltOptions } from "./h1b-fixtures.js";
import { readH1b } from "./read-h1b.js";
import { writeHtok } from "./htok.js";
import { caught } from "../../error-code.test-support.js";

const SMALL = { hs: 32, is: 64, layers: 2, heads: 2, kvHeads: 1, vocab: 8 } as const;
const BONSAI = { hs: 128, is: 128, layers: 1, heads: 2, kvHeads: 1, vocab: 4 } as const;

function patch(bytes: Uint8Array, offset: number, value: number, kind: "i32" | "f32" = "i32"): Uint8Array {
  const copy = bytes.slice();
  const dv = new DataView(copy.buffer);
  if (kind === "i32") dv.setInt32(offset, value, true);
  else dv.setFloat32(offset, value, true);
  return copy;
}

function expectMatches(options: HandBuiltOptions, packing: string, scaleKind: "row" | "block"): void {
  const built = handBuiltH1b(options);
  const model = readH1b(memorySource(built.bytes, "hand.h1b"));
  expect(model.tokenEmbedding.toFloat32()).toEqual(built.embedding);
  expect(model.outputNorm.toFloat32()).toEqual(built.finalNorm);
  model.layers.forEach((layer, l) => {
    expect(layer.attnNorm.toFloat32()).toEqual(built.norms[l]!.input);
    expect(layer.ffnNorm.toFloat32()).toEqual(built.norms[l]!.post);
    expect(layer.attnSubNorm.toFloat32()).toEqual(built.norms[l]!.attnSub);
    expect(layer.ffnSubNorm.toFloat32()).toEqual(built.norms[l]!.ffnSub);
    for (const role of TERNARY_ROLES) {
      const want = built.layers[l]![role]!;
      const tensor = layer[role];
      expect([tensor.rows, tensor.cols, tensor.packing, tensor.scale.kind]).toEqual([want.rows, want.cols, packing, scaleKind]);
      const trits = new Int8Array(want.rows * want.cols);
      tensor.decodeRows(0, want.rows, trits);
      expect(trits).toEqual(want.trits);
      if (tensor.scale.kind !== "tensor") expect(tensor.scale.values).toEqual(want.scales);
      // A row range reads and decodes only those rows.
      const tail = new Int8Array(want.cols);
      tensor.decodeRows(want.rows - 1, 1, tail);
      expect(tail).toEqual(want.trits.subarray((want.rows - 1) * want.cols));
    }
  });
}

describe("readH1b: every weight format against hand-built files", () => {
  it("v1 and v2 are HaloV2 with f32 row scales", () => {
    expectMatches({ ...SMALL, version: 1 }, "halo-v2", "row");
    expectMatches({ ...SMALL, version: 2 }, "halo-v2", "row");
  });
  it("v3 is Sherry (with and without the fp16 flag)", () => {
    expectMatches({ ...SMALL, version: 3 }, "sherry", "row");
    expectMatches({ ...SMALL, version: 3, flags: 0x2 }, "sherry", "row");
  });
  it("v4 is TQ1V4", () => expectMatches({ ...SMALL, version: 4 }, "tq1-v4", "row"));
  it("flag 0x8 is Bonsai TQ2 and flag 0x4 Bonsai Q1 on any version, with inline block scales", () => {
    expectMatches({ ...BONSAI, version: 2, flags: 0x8 }, "bonsai-tq2", "block");
    expectMatches({ ...BONSAI, version: 4, flags: 0x8 }, "bonsai-tq2", "block");
    expectMatches({ ...BONSAI, version: 1, flags: 0x4 }, "bonsai-q1", "block");
  });
});

describe("readH1b: config mapping", () => {
  it("v1 gets the default rope theta and eps; v2 reads them back as the decimals that were written", () => {
    const v1 = readH1b(memorySource(handBuiltH1b({ ...SMALL, version: 1 }).bytes));
    expect([v1.config.ropeTheta, v1.config.rmsNormEps]).toEqual([500000, 1e-5]);
    const v2 = readH1b(memorySource(handBuiltH1b({ ...SMALL, version: 2, ropeTheta: 10000, eps: 1e-6 }).bytes));
    expect([v2.config.ropeTheta, v2.config.rmsNormEps]).toEqual([10000, 1e-6]);
    const zero = readH1b(memorySource(handBuiltH1b({ ...SMALL, version: 2, ropeTheta: 0, eps: -1 }).bytes));
    expect([zero.config.ropeTheta, zero.config.rmsNormEps]).toEqual([500000, 1e-5]);
  });

  it("maps dims, flags and metadata", () => {
    const m = readH1b(memorySource(handBuiltH1b({ ...SMALL, version: 3, flags: 0x3, maxSeq: 0, tie: 0 }).bytes, "x.h1b"));
    expect(m.config).toMatchObject({ hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16, vocabSize: 8 });
    expect(m.config.hadamardRotated).toBe(true);
    expect(m.config.maxPositionEmbeddings).toBe(4096);
    expect(m.config.tiedEmbeddings).toBe(true);
    expect(m.lmHead).toBeNull();
    expect(m.metadata).toMatchObject({
      "h1b.version": "3",
      "h1b.flags": "3",
      "h1b.weight_format": "sherry-fp16",
      "h1b.tie_embeddings": "0",
      "h1b.max_seq_len": "0",
    });
    expect(m.metadata["h1b.warning"]).toContain("no LM head");
    expect(m.source).toEqual({ format: "h1b", version: 3, path: "x.h1b" });
    expect(m.config.bosTokenId).toBeNull();
  });

  it("keeps legacy slots and trailing bytes in extras", () => {
    const trailing = Uint8Array.of(1, 2, 3);
    const built = handBuiltH1b({ ...SMALL, version: 2, legacyFill: 7, trailing });
    const m = readH1b(memorySource(built.bytes));
    expect(m.extras?.get("h1b.trailing")).toEqual(trailing);
    expect(new Float32Array(m.extras!.get("h1b.legacy.1")!.buffer)).toEqual(new Float32Array(5 * 32).fill(7));
    expect(m.extras?.get("h1b.header")?.byteLength).toBe(52);
    expect(m.metadata["h1b.trailing_bytes"]).toBe("3");
  });

  it("picks up <stem>.htok next to the file as the tokenizer, with BOS and EOS (+ <|eot_id|>)", () => {
    const dir = mkdtempSync(join(tmpdir(), "h1b-"));
    writeFileSync(join(dir, "m.h1b"), handBuiltH1b({ ...SMALL, version: 2 }).bytes);
    const surfaces = ["a", "b", "ab", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "c", "d"].map((s) => Buffer.from(s));
    writeFileSync(join(dir, "m.htok"), writeHtok({ tokens: surfaces, merges: Uint32Array.of(0, 1, 2), bosTokenId: 3, eosTokenId: 4 }));
    const m = readH1b(join(dir, "m.h1b"));
    expect(m.tokenizer?.kind).toBe("htok");
    expect(m.config.bosTokenId).toBe(3);
    expect(m.config.eosTokenIds).toEqual([4, 5]);
    expect(m.layers[1]!.down.scale.kind).toBe("row");
    m.close();
    expect(readH1b(join(dir, "m.h1b"), { htok: false }).tokenizer).toBeNull();
    // A sidecar whose vocabulary disagrees with the model is refused.
    writeFileSync(join(dir, "m.htok"), writeHtok({ tokens: surfaces.slice(0, 6), merges: new Uint32Array(0), bosTokenId: 3, eosTokenId: 4 }));
    expect(caught(() => readH1b(join(dir, "m.h1b"))).code).toBe("H1B_BAD_METADATA");
  });
});

describe("readH1b: §1.7 validation", () => {
  const good = handBuiltH1b({ ...SMALL, version: 2 }).bytes;
  const cases: Array<[string, Uint8Array, string, number | undefined, string | undefined]> = [
    ["bad magic", Uint8Array.from([0x47, ...good.subarray(1)]), "H1B_BAD_MAGIC", 0, "magic"],
    ["version 0", patch(good, 4, 0), "H1B_BAD_VERSION", 4, "version"],
    ["version 5", patch(good, 4, 5), "H1B_BAD_VERSION", 4, "version"],
    ["hidden 0", patch(good, 8, 0), "H1B_BAD_DIMENSION", 8, "cfg[0].hidden_size"],
    ["negative vocab", patch(good, 28, -3), "H1B_BAD_DIMENSION", 28, "cfg[5].vocab_size"],
    ["zero layers", patch(good, 16, 0), "H1B_BAD_DIMENSION", 16, "cfg[2].num_layers"],
    ["heads not dividing hidden", patch(good, 20, 3), "H1B_BAD_DIMENSION", 20, "cfg[3].num_heads"],
    ["kv heads not dividing heads", patch(patch(good, 20, 4), 24, 3), "H1B_BAD_DIMENSION", 24, "cfg[4].num_kv_heads"],
    ["Q1 + TQ2", patch(good, 40, 0xc), "H1B_BAD_FLAGS", 40, "cfg[8].flags"],
    ["unknown flag", patch(good, 40, 0x40), "H1B_BAD_FLAGS", 40, "cfg[8].flags"],
    ["post-seed flag 0x10", patch(good, 40, 0x10), "H1B_UNSUPPORTED", 40, "cfg[8].flags"],
    ["NaN rope theta", patch(good, 0x2c, NaN, "f32"), "H1B_BAD_DIMENSION", 0x2c, "rope_theta"],
    ["truncated payload", good.subarray(0, good.length - 1), "H1B_TRUNCATED", good.length - 1, "layer 1 down.scales"],
    ["truncated header", good.subarray(0, 50), "H1B_TRUNCATED", 50, "header"],
    [
      "Sherry with cols % 32 ≠ 0",
      handBuiltH1b({ ...SMALL, version: 2, hs: 16, heads: 2, is: 32 }).bytes.map((b, i) => (i === 4 ? 3 : b)),
      "H1B_BAD_DIMENSION",
      undefined,
      undefined,
    ],
    ["Bonsai with cols % 128 ≠ 0", patch(good, 40, 0x8), "H1B_BAD_DIMENSION", undefined, undefined],
    ["dimensions larger than any file", patch(patch(good, 12, 0x40000000), 16, 0x40000000), "H1B_TOO_LARGE", 8, undefined],
  ];
  for (const [name, bytes, code, offset, field] of cases) {
    it(`${name} → ${code}`, () => {
      const error = caught(() => readH1b(memorySource(bytes, "bad.h1b")));
      expect(error.code).toBe(code);
      expect(error.path).toBe("bad.h1b");
      if (offset !== undefined) expect(error.offset).toBe(offset);
      if (field !== undefined) expect(error.field).toBe(field);
      expect(error.message).toMatch(/expected .*found/);
    });
  }

  it("ignores magic byte 3 like the seed loaders, and accepts trailing bytes", () => {
    const m = readH1b(memorySource(handBuiltH1b({ ...SMALL, version: 2, magic3: 0x7f, trailing: new Uint8Array(9) }).bytes));
    expect(m.config.hiddenSize).toBe(32);
  });

  it("reports a missing file as H1B_MISSING_FILE", () => {
    expect(caught(() => readH1b(join(tmpdir(), "does-not-exist.h1b"))).code).toBe("H1B_MISSING_FILE");
  });
});
