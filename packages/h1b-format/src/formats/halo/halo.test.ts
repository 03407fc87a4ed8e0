// Round trips, alignment, provenance, zero-copy views and checksum verification of the .halo container.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { codeOf } from "../../error-code.test-support.js";
import "../../index.js";
import { memorySource } from "../../core/byte-source.js";
import { floatTensor, ternaryTensor } from "../../core/tensors.js";
import { checkCodecs, ternaryCodec, ternaryPackings } from "../../codecs/registry.js";
import { verifyModelWeights } from "../../core/verify-weights.js";
import { testBackendCodec } from "../../codecs/backend-codec.test-support.js";
import { haloV2Codec } from "../../codecs/seed.js";
import { HALO_DEFAULT_PACKING } from "./choose-packing.js";
import { bf16ToF32, f32ToBf16 } from "../../core/half.js";
import { synthModel } from "../../synth/synth-model.js";
import { NORM_ROLES, TERNARY_ROLES, type HaloModel, type TernaryTensor } from "../../core/model.js";
import { HALO_MAGIC, hasHaloMagic } from "./halo-layout.js";
import { HALO_PROVENANCE_KEY, readHalo, readHaloHeader } from "./read-halo.js";
import { f32BitsFitF16, writeHalo } from "./write-halo.js";
import { f16Table } from "../../codecs/plain.js";
import { f32ToF16 } from "../../core/half.js";
import { verifyHalo } from "./verify-halo.js";

const dir = mkdtempSync(join(tmpdir(), "halo-container-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function trits(t: TernaryTensor): Int8Array {
  const out = new Int8Array(t.rows * t.cols);
  t.decodeRows(0, t.rows, out);
  return out;
}

/** Asserts two models hold the same weights, tokenizer and config (packings may differ). */
function expectSameModel(a: HaloModel, b: HaloModel): void {
  expect(b.config).toEqual(a.config);
  expect(b.tokenizer).toEqual(a.tokenizer);
  expect(b.chatTemplate).toBe(a.chatTemplate);
  expect(Buffer.from(b.tokenEmbedding.bytes()).equals(Buffer.from(a.tokenEmbedding.bytes()))).toBe(true);
  expect(Buffer.from(b.outputNorm.bytes()).equals(Buffer.from(a.outputNorm.bytes()))).toBe(true);
  expect(b.lmHead === null).toBe(a.lmHead === null);
  if (a.lmHead !== null) expect(Buffer.from(b.lmHead!.bytes()).equals(Buffer.from(a.lmHead.bytes()))).toBe(true);
  a.layers.forEach((layer, l) => {
    const other = b.layers[l]!;
    for (const role of NORM_ROLES) expect(other[role].toFloat32()).toEqual(layer[role].toFloat32());
    for (const role of TERNARY_ROLES) {
      expect(other[role].scale).toEqual(layer[role].scale);
      expect(trits(other[role])).toEqual(trits(layer[role]));
    }
  });
}

describe("writeHalo / readHalo", () => {
  it("round-trips the tiny synthetic model, repacking int8 to halo-v2 by default (no codecs passed)", async () => {
    const model = synthModel({ shape: "tiny", seed: 5 });
    const path = join(dir, "tiny.halo");
    const report = await writeHalo(model, path);
    expect(HALO_DEFAULT_PACKING).toBe("halo-v2");
    expect(report.changes).toEqual(["ternary packing int8 → halo-v2 (14 tensors)"]);
    expect(report.lossy).toBe(false);
    const bytes = readFileSync(path);
    expect(report.byteLength).toBe(bytes.byteLength);
    expect([...bytes.subarray(0, 8)]).toEqual([...HALO_MAGIC]);
    const back = readHalo(path);
    expect(back.layers[0]!.q.packing).toBe(HALO_DEFAULT_PACKING);
    expect(back.layers[0]!.q.bytes()).toEqual(haloV2Codec.encode(trits(model.layers[0]!.q), model.layers[0]!.q.rows, model.layers[0]!.q.cols));
    expect(back.source).toEqual({ format: "halo", version: 1, path });
    expectSameModel(model, back);
    const provenance = JSON.parse(back.metadata[HALO_PROVENANCE_KEY]!);
    expect(provenance).toMatchObject({ sourceFormat: "halo", sourcePath: "<synthetic seed 5>", changes: report.changes });
    expect(provenance.converter).toMatch(/^@halo\/h1b-format \d+\.\d+\.\d+/);
    const { [HALO_PROVENANCE_KEY]: _, ...rest } = back.metadata;
    expect(rest).toEqual(model.metadata);
    back.close();
  });

  it("aligns every tensor and blob and lays scales out first", async () => {
    const path = join(dir, "aligned.halo");
    await writeHalo(synthModel({ shape: "tiny-gqa", seed: 1 }), path, { alignment: 4096 });
    const { header, preamble } = readHaloHeader(path);
    expect(header.alignment).toBe(4096);
    expect(preamble.dataOffset % 4096).toBe(0);
    for (const t of [...header.tensors, ...header.blobs]) expect(t.offset % 4096).toBe(0);
    const firstWeight = Math.min(...header.tensors.filter((t) => t.kind !== "scale").map((t) => t.offset));
    expect(header.tensors.filter((t) => t.kind === "scale").every((t) => t.offset < firstWeight)).toBe(true);
  });

  it("gives zero-copy, aligned views over a memory source", async () => {
    const path = join(dir, "views.halo");
    await writeHalo(synthModel({ seed: 2 }), path);
    const file = new Uint8Array(readFileSync(path));
    const model = readHalo(memorySource(file, path));
    const q = model.layers[1]!.q.bytes();
    expect(q.buffer).toBe(file.buffer);
    expect((q.byteOffset - file.byteOffset) % 64).toBe(0);
    expect(model.tokenEmbedding.bytes().buffer).toBe(file.buffer);
  });

  it("transcodes to a requested packing, keeps the source's with a function, and records it", async () => {
    const model = synthModel({ seed: 3 });
    const tq1 = join(dir, "tq1.halo");
    const r1 = await writeHalo(model, tq1, { packing: "tq1-v4" });
    expect(r1.changes).toEqual(["ternary packing int8 → tq1-v4 (14 tensors)"]);
    const back = readHalo(tq1);
    expect(back.layers[0]!.down.packing).toBe("tq1-v4");
    const again = join(dir, "tq1-again.halo");
    const r2 = await writeHalo(back, again, { packing: (t) => t.packing }); // keep every source packing
    expect(r2.changes).toEqual([]);
    const twice = readHalo(again);
    expect(twice.layers[1]!.gate.packing).toBe("tq1-v4");
    expectSameModel(model, twice);
    const provenance = JSON.parse(twice.metadata[HALO_PROVENANCE_KEY]!);
    expect(provenance.sourceFormat).toBe("halo");
    expect(provenance.previous.changes).toEqual(r1.changes);
    const auto = join(dir, "tq1-auto.halo");
    const r3 = await writeHalo(twice, auto); // "auto" without codecs re-packs any source into halo-v2
    expect(r3.changes).toEqual(["ternary packing tq1-v4 → halo-v2 (14 tensors)"]);
    const third = readHalo(auto);
    expect(third.layers[1]!.gate.packing).toBe("halo-v2");
    expectSameModel(model, third);
    const kept = join(dir, "v2-again.halo");
    expect((await writeHalo(third, kept)).changes).toEqual([]); // already in the default: copied verbatim
  });

  it('"auto" stores the first passed codec\'s layout from every source packing, inline-scale ones included, losslessly', async () => {
    const cpu = testBackendCodec("halo-i2x256");
    const model = synthModel({ seed: 14 });
    const decoded = model.layers.map((layer) => new Map(TERNARY_ROLES.map((role) => [role, trits(layer[role])])));
    const blockScaled = (t: TernaryTensor): TernaryTensor => ({
      ...t,
      scale: { kind: "block", blockSize: 256, values: new Float32Array((t.rows * t.cols) / 256).fill(0.5) },
    });
    const sources = ["halo-v2", "tq1-v4", "tq2_0", "i2_s", "hf-packed", "bonsai-tq2"] as const;
    for (const packing of sources) {
      const repacked: HaloModel = {
        ...model,
        layers: model.layers.map((layer, l) => {
          const copy: Record<string, unknown> = { ...layer };
          for (const role of TERNARY_ROLES) {
            const t = packing === "tq2_0" || packing === "bonsai-tq2" ? blockScaled(layer[role]) : layer[role];
            const codec = ternaryCodec(packing);
            const bytes = codec.encode(decoded[l]!.get(role)!, t.rows, t.cols, { scale: t.scale });
            copy[role] = ternaryTensor(t.name, packing, t.rows, t.cols, t.scale, { data: bytes });
          }
          return copy as unknown as HaloModel["layers"][number];
        }),
      };
      const path = join(dir, `auto-from-${packing}.halo`);
      const report = await writeHalo(repacked, path, { codecs: [cpu] });
      expect(report.changes).toEqual([`ternary packing ${packing} → halo-i2x256 (14 tensors)`]);
      const back = readHalo(path, { codecs: [cpu] });
      back.layers.forEach((layer, l) => {
        for (const role of TERNARY_ROLES) {
          expect(layer[role].packing).toBe("halo-i2x256");
          expect(layer[role].scale).toEqual(repacked.layers[l]![role].scale);
          // Buffer comparison: toEqual over every element of every matrix dominates the run time.
          expect(Buffer.from(trits(layer[role]).buffer).equals(Buffer.from(decoded[l]!.get(role)!.buffer))).toBe(true);
        }
      });
      back.close();
    }
  });

  it("refuses a lossy packing unless forced, then reports the changed weights", async () => {
    const model = synthModel({ seed: 4 });
    const path = join(dir, "sherry.halo");
    await expect(writeHalo(model, path, { packing: "sherry" })).rejects.toMatchObject({ code: "H1B_LOSSY_CONVERSION" });
    expect(() => readFileSync(path)).toThrow(); // nothing left behind
    const report = await writeHalo(model, path, { packing: "sherry", force: true });
    expect(report.lossy).toBe(true);
    expect(report.changedWeights).toBeGreaterThan(0);
    expect(report.changes.at(-1)).toMatch(/ternary weights changed/);
    expect(readHalo(path).layers[0]!.q.packing).toBe("sherry");
  });

  it("refuses to transcode into a packing with inline scales", async () => {
    await expect(writeHalo(synthModel(), join(dir, "x.halo"), { packing: "bonsai-tq2" })).rejects.toMatchObject({ code: "H1B_UNSUPPORTED" });
  });

  it("stores untied heads, row and block scales, every tokenizer kind and extras", async () => {
    const base = synthModel({ seed: 6, untiedHead: true });
    const rowScaled = (t: TernaryTensor, l: number): TernaryTensor => ({
      ...t,
      scale:
        l === 0
          ? { kind: "row", values: Float32Array.from({ length: t.rows }, (_, i) => 0.01 * (i + 1)) }
          : { kind: "block", blockSize: 128, values: Float32Array.from({ length: (t.rows * t.cols) / 128 }, (_, i) => i / 7) },
    });
    const htok = {
      kind: "htok" as const,
      tokens: [Uint8Array.of(), Uint8Array.of(0x41, 0x42), Uint8Array.of(0xff)],
      merges: Uint32Array.of(1, 2, 3, 4, 5, 6),
      bosTokenId: 1,
      eosTokenId: 2,
    };
    const model: HaloModel = {
      ...base,
      layers: base.layers.map((layer, l) => ({ ...layer, q: rowScaled(layer.q, l), down: rowScaled(layer.down, l) })),
      tokenizer: htok,
      extras: new Map([["h1b.trailing", Uint8Array.of(9, 8, 7)]]),
    };
    const path = join(dir, "variants.halo");
    await writeHalo(model, path);
    const back = readHalo(path);
    expectSameModel(model, back);
    expect(back.lmHead).not.toBeNull();
    expect([...back.extras!.get("h1b.trailing")!]).toEqual([9, 8, 7]);

    const gguf = {
      kind: "gguf" as const,
      model: "gpt2",
      pre: null,
      tokens: ["a", "b", "ab"],
      merges: ["a b"],
      tokenTypes: [1, 1, 1],
      bosTokenId: 0,
      eosTokenId: null,
      addBosToken: true,
    };
    await writeHalo({ ...base, tokenizer: gguf }, path);
    expect(readHalo(path).tokenizer).toEqual(gguf);
    await writeHalo({ ...base, tokenizer: null, chatTemplate: null }, path);
    expect(readHalo(path).tokenizer).toBeNull();
  });

  it("round-trips random small models, packings and alignments (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 0, max: 1000 }),
          packing: fc.constantFrom("auto", "int8", "halo-v2", "halo-i2x256", "tq1-v4"),
          withCodec: fc.boolean(),
          alignment: fc.constantFrom(64, 128, 1024),
          untiedHead: fc.boolean(),
          layers: fc.integer({ min: 1, max: 2 }),
          activation: fc.constantFrom("relu2" as const, "silu" as const),
        }),
        async (p) => {
          const config = { ...synthModel().config, numLayers: p.layers, hiddenSize: 128, intermediateSize: 256, numHeads: 2, numKvHeads: 1, vocabSize: 512 };
          const model = synthModel({ shape: config, seed: p.seed, untiedHead: p.untiedHead, activation: p.activation });
          const path = join(dir, `prop-${p.seed}.halo`);
          const codecs = p.withCodec ? [testBackendCodec("halo-i2x256")] : [];
          if (p.packing === "halo-i2x256" && !p.withCodec) {
            await expect(writeHalo(model, path, { packing: p.packing })).rejects.toMatchObject({ code: "H1B_UNKNOWN_DTYPE" });
            return;
          }
          await writeHalo(model, path, { packing: p.packing, alignment: p.alignment, codecs });
          const back = readHalo(path, { codecs });
          if (p.packing === "auto") expect(back.layers[0]!.q.packing).toBe(p.withCodec ? "halo-i2x256" : "halo-v2");
          expectSameModel(model, back);
          expect(verifyHalo(path).bytesChecked).toBeGreaterThan(0);
          back.close();
        },
      ),
      { numRuns: 12 },
    );
  });

  it("narrows an f32 embedding to f16 or bf16 only when every value converts exactly", async () => {
    const base = synthModel({ seed: 13 });
    const withEmbedding = (values: Float32Array): HaloModel => ({
      ...base,
      tokenEmbedding: floatTensor("token_embd", "f32", base.tokenEmbedding.shape, { data: new Uint8Array(values.buffer) }),
    });
    const f16Exact = base.tokenEmbedding.toFloat32(); // synth values are f16 numbers
    const bf16Exact = f16Exact.map((v, i) => (i === 7 ? 1e-30 : v)); // 1e-30 → bf16 fine, f16 underflows
    bf16Exact[7] = bf16ToF32(f32ToBf16(1e-30));
    const bf16Only = bf16Exact.map((v) => bf16ToF32(f32ToBf16(v)));
    const inexact = f16Exact.map((v, i) => (i === 3 ? v + 1e-7 : v));
    const cases: Array<[Float32Array, string, boolean]> = [
      [f16Exact, "f16", true],
      [bf16Only, "bf16", true],
      [inexact, "f32", true],
      [f16Exact, "f32", false],
    ];
    for (const [values, dtype, narrowFloats] of cases) {
      const path = join(dir, `narrow-${dtype}-${narrowFloats}.halo`);
      const report = await writeHalo(withEmbedding(values), path, { narrowFloats });
      const back = readHalo(path);
      expect(back.tokenEmbedding.dtype).toBe(dtype);
      expect(back.tokenEmbedding.toFloat32()).toEqual(values);
      expect(report.changes.some((c) => c.startsWith("token_embd f32 →"))).toBe(dtype !== "f32");
      back.close();
    }
  });

  it("tests f16 exactness on bit patterns exactly like an f32 → f16 → f32 round trip (property)", () => {
    const table = f16Table();
    const bits = new Uint32Array(1);
    const value = new Float32Array(bits.buffer);
    const agree = (x: number): void => {
      bits[0] = x;
      if (Number.isNaN(value[0]!)) return;
      expect(f32BitsFitF16(x)).toBe(Object.is(table[f32ToF16(value[0]!)], value[0]!));
    };
    fc.assert(fc.property(fc.nat({ max: 0xffffffff }), agree), { numRuns: 20_000 });
    // Every f16 value itself, widened to f32, and its neighbours one f32 ulp away.
    for (let h = 0; h < 0x10000; h++) {
      value[0] = table[h]!;
      const x = bits[0]!;
      agree(x);
      agree((x + 1) >>> 0);
      agree((x - 1) >>> 0);
    }
  });

  it("refuses a model whose tensors do not match its config", async () => {
    const model = synthModel({ seed: 12 });
    const short = { ...model, layers: model.layers.slice(0, 1) };
    await expect(writeHalo(short, join(dir, "short.halo"))).rejects.toMatchObject({ code: "H1B_BAD_TENSOR", field: "layers" });
    const wrong = { ...model, layers: [model.layers[0]!, { ...model.layers[1]!, k: model.layers[1]!.q }] };
    await expect(writeHalo(wrong, join(dir, "wrong.halo"))).rejects.toMatchObject({ code: "H1B_BAD_TENSOR", field: "layer 1 k" });
  });

  it("writes byte-identical files for the same model and creation time", async () => {
    const createdAt = new Date("2026-01-01T00:00:00Z");
    const a = join(dir, "det-a.halo");
    const b = join(dir, "det-b.halo");
    await writeHalo(synthModel({ seed: 9 }), a, { createdAt });
    await writeHalo(synthModel({ seed: 9 }), b, { createdAt });
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  });
});

describe("a backend's packing, passed per call", () => {
  const cpu = testBackendCodec("halo-i2x256");

  it('is stored by "auto" when passed, decodes only when passed, and maps (bytes, fileRange) without it', async () => {
    const model = synthModel({ seed: 31 });
    const path = join(dir, "backend.halo");
    const report = await writeHalo(model, path, { codecs: [cpu] });
    expect(report.changes).toEqual(["ternary packing int8 → halo-i2x256 (14 tensors)"]);
    const withCodec = readHalo(path, { codecs: [cpu] });
    expectSameModel(model, withCodec);
    const q = model.layers[0]!.q;
    expect(withCodec.layers[0]!.q.bytes()).toEqual(cpu.encode(trits(q), q.rows, q.cols));

    // Opened without the codec (as any tool that knows no backend does): the file opens, its
    // bytes and file ranges are there for the backend to map, decoding says how to pass the codec.
    const plain = readHalo(path);
    const t = plain.layers[0]!.q;
    expect(t.packing).toBe("halo-i2x256");
    expect(t.byteLength).toBe(cpu.byteLength(t.rows, t.cols));
    expect(t.bytes()).toEqual(withCodec.layers[0]!.q.bytes());
    expect(t.fileRange()).toEqual(withCodec.layers[0]!.q.fileRange());
    const error = (() => {
      try {
        t.decodeRows(0, 1, new Int8Array(t.cols));
      } catch (e) {
        return e as Error & { code?: string };
      }
      return null;
    })();
    expect(error).toMatchObject({ code: "H1B_UNKNOWN_DTYPE", field: "blk.0.q" });
    expect(error!.message).toMatch(/openModel\(path, \{ codecs: backendFactory\.packings \}\)/);
    expect(error!.message).toMatch(/install @halo\/kernels-cpu/);
    // Load-time verification (CRC-32s, finite floats and scales) never decodes a matrix.
    expect((await verifyModelWeights(plain, { cacheDir: null })).checksums).toBe(plain.checksums!.length);
    expect(verifyHalo(path).bytesChecked).toBeGreaterThan(0);
    // With the codec the directory's lengths are checked against its sizes too.
    expect(verifyHalo(path, { codecs: [cpu] }).bytesChecked).toBeGreaterThan(0);
    expect(codeOf(() => verifyHalo(path, { codecs: [{ ...cpu, byteLength: (rows: number, cols: number) => rows * cols }] }))).toBe("H1B_BAD_TENSOR");
    // Copying its bytes needs no codec; re-packing it does.
    const copy = join(dir, "backend-copy.halo");
    expect((await writeHalo(plain, copy, { packing: (x) => x.packing })).changes).toEqual([]);
    expect(readHalo(copy, { codecs: [cpu] }).layers[1]!.down.bytes()).toEqual(withCodec.layers[1]!.down.bytes());
    await expect(writeHalo(plain, join(dir, "backend-v2.halo"))).rejects.toMatchObject({ code: "H1B_UNKNOWN_DTYPE" });
    await writeHalo(readHalo(path, { codecs: [cpu] }), join(dir, "backend-v2.halo"));
    expectSameModel(model, readHalo(join(dir, "backend-v2.halo")));
    plain.close();
    withCodec.close();
  });

  it("is never registered: a codec passed to one call is unknown to the next", async () => {
    const model = synthModel({ seed: 32 });
    await writeHalo(model, join(dir, "once.halo"), { packing: cpu });
    expect(readHalo(join(dir, "once.halo")).layers[0]!.q.packing).toBe("halo-i2x256");
    expect(ternaryPackings()).not.toContain("halo-i2x256");
    expect(codeOf(() => ternaryCodec("halo-i2x256"))).toBe("H1B_UNKNOWN_DTYPE");
    expect(ternaryCodec("halo-i2x256", [cpu])).toBe(cpu);
    await expect(writeHalo(model, join(dir, "twice.halo"), { packing: "halo-i2x256" })).rejects.toMatchObject({ code: "H1B_UNKNOWN_DTYPE", field: "packing" });
    await writeHalo(model, join(dir, "twice.halo"), { packing: "halo-i2x256", codecs: [cpu] });
  });

  it("refuses codecs that are malformed, shadow a format packing or share a name", async () => {
    const model = synthModel({ seed: 33 });
    const path = join(dir, "refused.halo");
    const fake = { ...testBackendCodec(), packing: "tq2_0" };
    const cases: unknown[] = [[fake], [cpu, testBackendCodec("halo-i2x256")], [{ ...cpu, decodeRows: undefined }], [null], "codecs"];
    for (const codecs of cases) {
      await expect(writeHalo(model, path, { codecs: codecs as never })).rejects.toMatchObject({ code: "H1B_BAD_ARGUMENT" });
      expect(codeOf(() => checkCodecs(codecs))).toBe("H1B_BAD_ARGUMENT");
    }
    expect(checkCodecs([cpu, cpu, haloV2Codec])).toEqual([cpu, cpu, haloV2Codec]); // the same object twice, or a format packing's own codec
  });
});

describe("verifyHalo", () => {
  it("passes a sound file and names the tensor whose bytes changed", async () => {
    const path = join(dir, "verify.halo");
    await writeHalo(synthModel({ seed: 8 }), path);
    const report = verifyHalo(path, { checksums: true });
    expect(report.bytesChecked).toBeGreaterThan(200_000);
    expect(report.tensors).toBe(2 + 2 * 11 + 2 * 7);
    const { header } = readHaloHeader(path);
    const target = header.tensors.find((t) => t.name === "blk.1.up")!;
    const bytes = readFileSync(path);
    bytes[target.offset + 17]! ^= 0x10;
    const bad = join(dir, "verify-bad.halo");
    writeFileSync(bad, bytes);
    expect(() => readHalo(bad)).not.toThrow(); // opening does not read weights
    expect(() => verifyHalo(bad, { checksums: false })).not.toThrow();
    expect(() => verifyHalo(bad)).toThrow(/tensor blk\.1\.up checksum mismatch/);
    expect(codeOf(() => verifyHalo(bad))).toBe("H1B_CHECKSUM_MISMATCH");
  });

  it("tells a .halo file from seed .h1b, GGUF and safetensors by its magic", () => {
    expect(hasHaloMagic(Buffer.from("H1B\0\x02\0\0\0"))).toBe(false);
    expect(hasHaloMagic(Buffer.from("GGUF\x03\0\0\0"))).toBe(false);
    expect(codeOf(() => readHalo(memorySource(Buffer.from("H1B\0\x02\0\0\0".padEnd(80, "\0")))))).toBe("H1B_BAD_MAGIC");
  });
});
