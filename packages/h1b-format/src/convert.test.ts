// convertModel into every format and openModel back: same trits, scales within the format's precision, honest reports.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import "./index.js";
import { synthModel } from "./synth/synth-model.js";
import { TERNARY_ROLES, type HaloModel, type TernaryTensor } from "./core/model.js";
import { scaleAt } from "./core/tensors.js";
import { convertModel, type ConvertFormat } from "./convert.js";
import { openModel, sniffFormat, readTokenizerFile } from "./open.js";
import { testBackendCodec } from "./codecs/backend-codec.test-support.js";

/** f16 has 11 significant bits: a rounded scale is within 2^-11 relative. */
const MAX_REL_ERROR_F16_SCALE = 2 ** -11;

const dir = mkdtempSync(join(tmpdir(), "halo-convert-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let model: HaloModel;

beforeAll(() => {
  model = synthModel({ shape: "tiny", seed: 21 });
});

function trits(t: TernaryTensor): Int8Array {
  const out = new Int8Array(t.rows * t.cols);
  t.decodeRows(0, t.rows, out);
  return out;
}

function expectSameWeights(a: HaloModel, b: HaloModel, scaleTolerance: number): void {
  expect(b.config.hiddenSize).toBe(a.config.hiddenSize);
  expect(b.config.numLayers).toBe(a.config.numLayers);
  expect(b.config.activation).toBe(a.config.activation);
  expect(b.tokenEmbedding.toFloat32()).toEqual(a.tokenEmbedding.toFloat32());
  a.layers.forEach((layer, l) => {
    expect(b.layers[l]!.ffnSubNorm.toFloat32()).toEqual(layer.ffnSubNorm.toFloat32());
    for (const role of TERNARY_ROLES) {
      const x = layer[role];
      const y = b.layers[l]![role];
      expect(trits(y)).toEqual(trits(x));
      for (const [r, c] of [
        [0, 0],
        [x.rows - 1, x.cols - 1],
        [x.rows >> 1, 0],
      ] as const) {
        const s = scaleAt(x.scale, x.cols, r, c);
        expect(Math.abs(scaleAt(y.scale, y.cols, r, c) - s) / s).toBeLessThanOrEqual(scaleTolerance);
      }
    }
  });
}

const cases: Array<{ format: ConvertFormat; file: string; sourceFormat: string; force: boolean; tolerance: number }> = [
  { format: "halo", file: "m.halo", sourceFormat: "halo", force: false, tolerance: 0 },
  { format: "h1b-v2", file: "m2.h1b", sourceFormat: "h1b", force: false, tolerance: 0 },
  { format: "h1b-v4", file: "m4.h1b", sourceFormat: "h1b", force: false, tolerance: 0 },
  { format: "gguf-tq2_0", file: "m2.gguf", sourceFormat: "gguf", force: true, tolerance: MAX_REL_ERROR_F16_SCALE },
  { format: "gguf-tq1_0", file: "m1.gguf", sourceFormat: "gguf", force: true, tolerance: MAX_REL_ERROR_F16_SCALE },
  { format: "gguf-i2_s", file: "mi2s.gguf", sourceFormat: "gguf", force: false, tolerance: 0 },
  { format: "hf-packed", file: "snapshot", sourceFormat: "hf-snapshot", force: false, tolerance: 0 },
];

describe("convertModel → openModel", () => {
  for (const c of cases) {
    it(`${c.format}: sniffed back as ${c.sourceFormat} with the same trits and scales`, async () => {
      const out = join(dir, c.file);
      const report = await convertModel(model, out, { format: c.format, force: c.force });
      expect(report.format).toBe(c.format);
      expect(report.bytes).toBeGreaterThan(100_000);
      expect(sniffFormat(out).format).toBe(c.sourceFormat);
      const back = await openModel(out);
      expect(back.source.format).toBe(c.sourceFormat);
      expectSameWeights(model, back, c.tolerance);
      back.close();
    });
  }

  it("refuses lossy targets without force and reports what changed with it", async () => {
    const code = async (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => "ok",
        (e: unknown) => (isHaloError(e) ? e.code : String(e)),
      );
    expect(await code(convertModel(model, join(dir, "x.gguf"), { format: "gguf-tq2_0" }))).toBe("H1B_LOSSY_CONVERSION");
    expect(await code(convertModel(model, join(dir, "x3.h1b"), { format: "h1b-v3" }))).toBe("H1B_LOSSY_CONVERSION");
    expect(await code(convertModel(model, join(dir, "bf16"), { format: "hf-bf16" }))).toBe("H1B_LOSSY_CONVERSION");
    const forced = await convertModel(model, join(dir, "x.gguf"), { format: "gguf-tq2_0", force: true });
    expect(forced.lossy).toBe(true);
    expect(forced.changes.join("\n")).toMatch(/scale values rounded to f16/);
    const sherry = await convertModel(model, join(dir, "x3.h1b"), { format: "h1b-v3", force: true });
    expect(sherry.lossy).toBe(true);
    expect(sherry.changes.join("\n")).toMatch(/ternary weights changed/);
  });

  it("reports a lossless conversion as not lossy, with its re-packing", async () => {
    const report = await convertModel(model, join(dir, "r.halo"), { format: "halo" });
    expect(report.lossy).toBe(false);
    expect(report.changes).toEqual(["ternary packing int8 → halo-v2 (14 tensors)"]);
    const backend = await convertModel(model, join(dir, "r-backend.halo"), { format: "halo", codecs: [testBackendCodec("halo-i2x256")] });
    expect(backend.changes).toEqual(["ternary packing int8 → halo-i2x256 (14 tensors)"]);
    const h1b = await convertModel(model, join(dir, "r.h1b"), { format: "h1b" });
    expect(h1b.lossy).toBe(false);
    expect(h1b.changes.join("\n")).toMatch(/chat template not stored/);
  });

  it("is a lossless intermediate: .h1b → .halo → .h1b and GGUF → .halo → GGUF are byte-identical", async () => {
    const codecs = [testBackendCodec("halo-i2x256")];
    for (const [format, file, packing] of [
      ["h1b-v2", "m2.h1b", "halo-v2"],
      ["gguf-tq2_0", "m2.gguf", "tq2_0"],
    ] as const) {
      const original = join(dir, file);
      const source = await openModel(original);
      const viaHalo = join(dir, `via-${file}.halo`);
      // Seed .h1b widens the f16 embedding to f32; the container narrows it back, exactly. The
      // ternary matrices are re-packed into a backend's layout (the codec passed) and back, losslessly.
      const expected = [...(format === "h1b-v2" ? ["token_embd f32 → f16 (every value exact)"] : []), `ternary packing ${packing} → halo-i2x256 (14 tensors)`];
      expect((await convertModel(source, viaHalo, { format: "halo", codecs })).changes).toEqual(expected);
      source.close();
      const container = await openModel(viaHalo, { codecs });
      const back = join(dir, `back-${file}`);
      await convertModel(container, back, { format, force: true });
      container.close();
      expect(readFileSync(back).equals(readFileSync(original))).toBe(true);
    }
  });

  it("rejects an unknown format name", async () => {
    await expect(convertModel(model, join(dir, "y"), { format: "onnx" as ConvertFormat })).rejects.toMatchObject({ code: "H1B_BAD_ARGUMENT" });
  });
});

describe("sniffFormat / openModel", () => {
  it("names what it found and what it accepts for unknown files", () => {
    const junk = join(dir, "junk.bin");
    writeFileSync(junk, Buffer.from("PK\x03\x04 not a model"));
    expect(() => sniffFormat(junk)).toThrow(/unrecognised model file.*expected a \.halo container, a seed \.h1b.*found first bytes 50 4b 03 04/);
    const empty = join(dir, "empty.dat");
    writeFileSync(empty, "");
    expect(() => sniffFormat(empty)).toThrow(/an empty file/);
    const emptyDir = join(dir, "not-a-snapshot");
    mkdirSync(emptyDir, { recursive: true });
    expect(() => sniffFormat(emptyDir)).toThrow(expect.objectContaining({ code: "H1B_UNKNOWN_FORMAT" }));
    expect(() => sniffFormat(join(dir, "missing.gguf"))).toThrow(expect.objectContaining({ code: "H1B_MISSING_FILE" }));
  });

  it("trusts bytes over names, and the name when the bytes are foreign", async () => {
    const disguised = join(dir, "really-halo.gguf");
    writeFileSync(disguised, readFileSync(join(dir, "m.halo")));
    expect(sniffFormat(disguised).format).toBe("halo");
    const broken = join(dir, "broken.gguf");
    writeFileSync(broken, Buffer.alloc(64, 1));
    expect(sniffFormat(broken)).toMatchObject({ format: "gguf", evidence: "extension .gguf" });
    await expect(openModel(broken)).rejects.toMatchObject({ code: "H1B_BAD_MAGIC" });
  });

  it("opens a snapshot from its model.safetensors and overrides the tokenizer from a file", async () => {
    expect(sniffFormat(join(dir, "snapshot", "model.safetensors"))).toMatchObject({ format: "hf-snapshot", path: join(dir, "snapshot") });
    const tokenizerPath = join(dir, "snapshot", "tokenizer.json");
    const payload = readTokenizerFile(tokenizerPath);
    expect(payload.kind).toBe("hf-json");
    const opened = await openModel(join(dir, "m4.h1b"), { tokenizer: tokenizerPath });
    expect(opened.tokenizer).toEqual(payload);
    opened.close();
    expect(() => readTokenizerFile(join(dir, "junk.bin"))).toThrow(expect.objectContaining({ code: "H1B_BAD_METADATA" }));
  });
});
