import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { memorySource } from "../../core/byte-source.js";
import { TERNARY_ROLES, type HaloModel, type TernaryTensor } from "../../core/model.js";
import { ternaryTensor } from "../../core/tensors.js";
import { ternaryCodec, ternaryPackings } from "../../codecs/registry.js";
import "../../index.js";
import { synthModel } from "../../synth/synth-model.js";
import { handBuiltH1b } from "./h1b-fixtures.js";
import { readH1b } from "./read-h1b.js";
import { encodeH1b, writeH1b } from "./write-h1b.js";
import { writeHtok } from "./htok.js";
import { caught } from "../../error-code.test-support.js";

const SMALL = { hs: 32, is: 64, layers: 2, heads: 2, kvHeads: 1, vocab: 8 } as const;

function trits(tensor: TernaryTensor): Int8Array {
  const out = new Int8Array(tensor.rows * tensor.cols);
  tensor.decodeRows(0, tensor.rows, out);
  return out;
}

/** Effective per-weight scale of row r (tensor or row scales only). */
function rowScale(tensor: TernaryTensor, r: number): number {
  const s = tensor.scale;
  return s.kind === "tensor" ? s.value : s.kind === "row" ? s.values[r]! : s.values[(r * tensor.cols) / s.blockSize]!;
}

/** Bitwise equality of two typed arrays (vitest's deep equality is far too slow for whole tensors). */
function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectSameWeights(a: HaloModel, b: HaloModel): void {
  expect(same(b.tokenEmbedding.toFloat32(), a.tokenEmbedding.toFloat32())).toBe(true);
  expect(same(b.outputNorm.toFloat32(), a.outputNorm.toFloat32())).toBe(true);
  a.layers.forEach((la, l) => {
    const lb = b.layers[l]!;
    for (const norm of ["attnNorm", "ffnNorm", "attnSubNorm", "ffnSubNorm"] as const)
      expect(same(lb[norm].toFloat32(), la[norm].toFloat32()), `${l}.${norm}`).toBe(true);
    for (const role of TERNARY_ROLES) {
      expect(same(trits(lb[role]), trits(la[role])), `${l}.${role} trits`).toBe(true);
      const rows = la[role].rows;
      const want = Float32Array.from({ length: rows }, (_, r) => rowScale(la[role], r));
      const got = Float32Array.from({ length: rows }, (_, r) => rowScale(lb[role], r));
      expect(same(got, want), `${l}.${role} scales`).toBe(true);
    }
  });
}

/** The config fields .h1b stores (BOS/EOS live in the .htok sidecar). */
function storedConfig(model: HaloModel): object {
  const { bosTokenId: _b, eosTokenIds: _e, ...rest } = model.config;
  return rest;
}

describe("writeH1b: read(write(model)) keeps config, trits and scales", () => {
  for (const version of [1, 2, 4] as const) {
    it(`synth tiny → v${version}`, () => {
      const model = synthModel({ shape: "tiny", seed: version });
      const back = readH1b(memorySource(encodeH1b(model, { version })));
      expect(storedConfig(back)).toEqual(storedConfig(model));
      expectSameWeights(model, back);
      expect(back.layers[0]!.q.packing).toBe(version === 4 ? "tq1-v4" : "halo-v2");
    });
  }

  it("synth tiny-gqa (Hadamard flag) → v2 and Bonsai TQ2, and back", () => {
    const base = synthModel({ shape: "tiny-gqa", seed: 5 });
    const model: HaloModel = { ...base, config: { ...base.config, hadamardRotated: true } };
    const v2 = readH1b(memorySource(encodeH1b(model, { version: 2 })));
    expect(v2.config.hadamardRotated).toBe(true);
    expect(v2.metadata["h1b.flags"]).toBe("1");
    expectSameWeights(model, v2);
    // Synth tensor scales are not fp16-exact: Bonsai refuses unless forced.
    expect(caught(() => encodeH1b(model, { version: 2, flags: 0x9 })).code).toBe("H1B_LOSSY_CONVERSION");
    const tq2 = readH1b(memorySource(encodeH1b(v2, { version: 2, flags: 0x9, force: true })));
    expect(tq2.layers[2]!.down.packing).toBe("bonsai-tq2");
    expect(same(trits(tq2.layers[2]!.down), trits(model.layers[2]!.down))).toBe(true);
  });

  it("Sherry: refuses a non-3:4 model, and with force reports the changed weights", () => {
    const model = synthModel({ shape: "tiny", seed: 9 });
    const error = caught(() => encodeH1b(model, { version: 3 }));
    expect(error.code).toBe("H1B_LOSSY_CONVERSION");
    expect(error.field).toBe("blk.0.q");
    const bytes = encodeH1b(model, { version: 3, force: true });
    const back = readH1b(memorySource(bytes));
    const q = trits(back.layers[0]!.q);
    for (let i = 0; i < q.length; i += 4) expect(q.subarray(i, i + 4).filter((t) => t === 0).length).toBe(1);
  });

  it("converts between every seed format losslessly when the weights allow it (3:4 hand-built file)", () => {
    const built = handBuiltH1b({ ...SMALL, version: 3, hs: 128, is: 128 });
    const sherry = readH1b(memorySource(built.bytes));
    for (const version of [1, 2, 4] as const) {
      const other = readH1b(memorySource(encodeH1b(sherry, { version })));
      expectSameWeights(sherry, other);
      // and back to Sherry byte-identically (same header fields, same canonical packing)
      expect(Buffer.from(encodeH1b(other, { version: 3 })).equals(Buffer.from(built.bytes))).toBe(true);
    }
  });

  it("per-block scales: equal within rows are exact, otherwise lossy unless forced", () => {
    const base = synthModel({ shape: "tiny", seed: 2 });
    const swap = (scaleFor: (t: TernaryTensor) => Float32Array, blockSize: number): HaloModel => ({
      ...base,
      layers: base.layers.map((layer) => {
        const out: Record<string, unknown> = { ...layer };
        for (const role of TERNARY_ROLES) {
          const t = layer[role];
          out[role] = ternaryTensor(t.name, "int8", t.rows, t.cols, { kind: "block", blockSize, values: scaleFor(t) }, { data: t.bytes() });
        }
        return out as unknown as HaloModel["layers"][number];
      }),
    });
    const perRow = swap((t) => Float32Array.from({ length: (t.rows * t.cols) / 64 }, (_, i) => Math.floor((i * 64) / t.cols) + 1), 64);
    const back = readH1b(memorySource(encodeH1b(perRow)));
    expectSameWeights(perRow, back);
    const varying = swap((t) => Float32Array.from({ length: (t.rows * t.cols) / 64 }, (_, i) => (i % 2) + 1), 64);
    expect(caught(() => encodeH1b(varying)).code).toBe("H1B_LOSSY_CONVERSION");
    const forced = readH1b(memorySource(encodeH1b(varying, { force: true })));
    expect((forced.layers[0]!.q.scale as { values: Float32Array }).values[0]).toBe(1.5);
  });

  it("takes ternary tensors in every registered packing (hf-packed, GGUF types, …) and writes them exactly", () => {
    const base = synthModel({ shape: "tiny", seed: 4 });
    const scale = { kind: "tensor", value: 2 ** -5 } as const; // exact in f16, f32 and bf16
    const packings = ternaryPackings();
    expect(packings).toEqual(expect.arrayContaining(["int8", "halo-v2", "sherry", "tq1-v4", "bonsai-tq2", "bonsai-q1"]));
    for (const packing of packings.filter((p) => p !== "sherry" && p !== "bonsai-q1")) {
      const codec = ternaryCodec(packing);
      const model: HaloModel = {
        ...base,
        layers: base.layers.map((layer) => {
          const out: Record<string, unknown> = { ...layer };
          for (const role of TERNARY_ROLES) {
            const t = layer[role];
            const bytes = codec.encode(trits(t), t.rows, t.cols, { scale });
            out[role] = ternaryTensor(t.name, packing, t.rows, t.cols, scale, { data: bytes });
          }
          return out as unknown as HaloModel["layers"][number];
        }),
      };
      for (const version of [2, 4] as const) {
        const back = readH1b(memorySource(encodeH1b(model, { version })));
        expectSameWeights(model, back);
        expect(same(trits(back.layers[1]!.gate), trits(base.layers[1]!.gate)), `${packing} → v${version}`).toBe(true);
      }
    }
  });

  it("refuses what .h1b cannot hold unless forced", () => {
    const silu = synthModel({ activation: "silu" });
    expect(caught(() => encodeH1b(silu)).code).toBe("H1B_LOSSY_CONVERSION");
    const untied = synthModel({ untiedHead: true });
    expect(caught(() => encodeH1b(untied)).code).toBe("H1B_LOSSY_CONVERSION");
    const forced = readH1b(memorySource(encodeH1b(untied, { force: true })));
    expect(forced.metadata["h1b.tie_embeddings"]).toBe("0");
    const odd = synthModel();
    expect(caught(() => encodeH1b({ ...odd, config: { ...odd.config, ropeTheta: 10000 } }, { version: 1 })).code).toBe("H1B_LOSSY_CONVERSION");
    expect(caught(() => encodeH1b(odd, { flags: 0x1 })).code).toBe("H1B_BAD_ARGUMENT");
    expect(caught(() => encodeH1b(odd, { flags: 0xc })).code).toBe("H1B_BAD_FLAGS");
  });

  it("property: random trits, shapes and versions survive write → read", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(1, 2, 4), fc.double({ min: 0, max: 0.9, noNaN: true }), (seed, version, zeroFraction) => {
        const model = synthModel({
          seed,
          zeroFraction,
          shape: { ...synthModel().config, hiddenSize: 64, intermediateSize: 96, numHeads: 2, numKvHeads: 1, headDim: 32, vocabSize: 300, numLayers: 1 },
        });
        const back = readH1b(memorySource(encodeH1b(model, { version: version as 1 | 2 | 4 })));
        expectSameWeights(model, back);
      }),
      { numRuns: 25 },
    );
  });
});

describe("writeH1b: write(read(file)) is byte-identical", () => {
  const variants = [
    { ...SMALL, version: 1 as const },
    { ...SMALL, version: 2 as const, flags: 0x1, ropeTheta: 10000, eps: 1e-6 },
    { ...SMALL, version: 3 as const, flags: 0x2 },
    { ...SMALL, version: 4 as const, maxSeq: -5, tie: 0, magic3: 9 },
    { ...SMALL, version: 2 as const, legacyFill: 3.5, trailing: Uint8Array.of(9, 8, 7, 6, 5), ropeTheta: -1, eps: 0 },
    { hs: 128, is: 128, layers: 1, heads: 2, kvHeads: 1, vocab: 4, version: 2 as const, flags: 0x8 },
    { hs: 128, is: 128, layers: 1, heads: 2, kvHeads: 1, vocab: 4, version: 4 as const, flags: 0x5 },
  ];
  for (const variant of variants) {
    it(`hand-built v${variant.version} flags ${variant.flags ?? 0}${"legacyFill" in variant ? " with odd legacy slots and trailing bytes" : ""}`, () => {
      const built = handBuiltH1b(variant);
      const bytes = encodeH1b(readH1b(memorySource(built.bytes)));
      expect(Buffer.from(bytes).equals(Buffer.from(built.bytes))).toBe(true);
    });
  }

  it("keeps non-canonical codes (HaloV2 code 11) verbatim", () => {
    const built = handBuiltH1b({ ...SMALL, version: 2 });
    const model = readH1b(memorySource(built.bytes));
    const qOffset = 52 + (8 * 32 + 32) * 4 + (8 * 32 + 64) * 4; // header, embedding, final norm, layer-0 norms + legacy + ffn_sub
    const odd = built.bytes.slice();
    odd[qOffset] = 0xff;
    expect(trits(readH1b(memorySource(odd)).layers[0]!.q).subarray(0, 4)).toEqual(new Int8Array(4));
    expect(Buffer.from(encodeH1b(readH1b(memorySource(odd)))).equals(Buffer.from(odd))).toBe(true);
    expect(model.layers[0]!.q.bytes()[0]).not.toBe(0xff);
  });

  it("synth → file → read → file is identical on disk, and the .htok sidecar travels", async () => {
    const dir = mkdtempSync(join(tmpdir(), "h1b-write-"));
    const model = synthModel({ shape: "tiny", seed: 11 });
    const first = join(dir, "a.h1b");
    const summary = await writeH1b(model, first, { version: 4 });
    expect(summary).toMatchObject({ version: 4, flags: 0, changedWeights: 0, htokPath: join(dir, "a.htok"), droppedMerges: 0 });
    // With the tokenizer converted to the sidecar, the whole config survives, BOS/EOS included.
    const reread = readH1b(first);
    expect(reread.config).toEqual(model.config);
    expect(reread.tokenizer?.kind).toBe("htok");
    reread.close();
    expect((await writeH1b(model, join(dir, "no-tok.h1b"), { htokSidecar: false })).htokPath).toBeNull();
    expect(existsSync(join(dir, "no-tok.htok"))).toBe(false);
    expect(existsSync(`${first}.tmp`)).toBe(false);
    const read = readH1b(first, { htok: false });
    const tokens = Array.from({ length: 512 }, (_, i) => Buffer.from(`t${i}`));
    const withTok: HaloModel = { ...read, tokenizer: { kind: "htok", tokens, merges: Uint32Array.of(1, 2, 3), bosTokenId: 506, eosTokenId: 507 } };
    const second = join(dir, "b.h1b");
    const again = await writeH1b(withTok, second);
    expect(again.htokPath).toBe(join(dir, "b.htok"));
    expect(readFileSync(second).equals(readFileSync(first))).toBe(true);
    const third = readH1b(second);
    expect(third.config.bosTokenId).toBe(506);
    expect(third.config.eosTokenIds).toEqual([507]);
    read.close();
    third.close();
  });

  it("removes the temporary file when a write fails", async () => {
    const dir = mkdtempSync(join(tmpdir(), "h1b-fail-"));
    const path = join(dir, "x.h1b");
    writeFileSync(path, "old");
    await expect(writeH1b(synthModel({ seed: 1 }), path, { version: 3 })).rejects.toMatchObject({ code: "H1B_LOSSY_CONVERSION" });
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(readFileSync(path, "utf8")).toBe("old");
    // The htok writer is the same function readH1b's sidecar uses.
    expect(writeHtok({ tokens: [Buffer.from("a")], merges: new Uint32Array(0), bosTokenId: 0, eosTokenId: 0 }).byteLength).toBe(23);
  });
});
