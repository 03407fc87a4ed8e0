// TensorFileRange: tensors read from files point at bytes equal to bytes(); memory and computed tensors say null.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "../index.js";
import { synthModel } from "../synth/synth-model.js";
import { convertModel, type ConvertFormat } from "../convert.js";
import { openModel } from "../open.js";
import { fileSource, memorySource } from "./byte-source.js";
import { readHalo } from "../formats/halo/read-halo.js";
import { readGguf } from "../formats/gguf/read-gguf.js";
import { readH1b } from "../formats/h1b/read-h1b.js";
import { testBackendCodec } from "../codecs/backend-codec.test-support.js";
import { NORM_ROLES, TERNARY_ROLES, type FloatTensor, type HaloModel, type TernaryTensor } from "./model.js";

const dir = mkdtempSync(join(tmpdir(), "halo-file-range-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every weight tensor of a model: embedding, norms, head, and each layer's norms and matrices. */
function allTensors(model: HaloModel): Array<FloatTensor | TernaryTensor> {
  const out: Array<FloatTensor | TernaryTensor> = [model.tokenEmbedding, model.outputNorm];
  if (model.lmHead !== null) out.push(model.lmHead);
  for (const layer of model.layers) {
    for (const role of NORM_ROLES) out.push(layer[role]);
    for (const role of TERNARY_ROLES) out.push(layer[role]);
  }
  return out;
}

const files: Record<string, string> = {};
const targets: ReadonlyArray<readonly [ConvertFormat, string]> = [
  ["halo", "m.halo"],
  ["gguf-tq2_0", "m.gguf"],
  ["gguf-i2_s", "m-i2s.gguf"],
  ["h1b-v2", "m.h1b"],
  ["h1b-v4", "m4.h1b"],
  ["hf-packed", "snapshot"],
];

beforeAll(async () => {
  const model = synthModel({ shape: "tiny", seed: 31, untiedHead: true });
  for (const [format, name] of targets) {
    await convertModel(model, join(dir, name), { format, force: true });
    files[format] = join(dir, name);
  }
});

describe("fileRange()", () => {
  it.each(targets.map(([format]) => format))("%s: every tensor opened from the file points at bytes equal to bytes()", async (format) => {
    const model = await openModel(files[format]!);
    try {
      const cache = new Map<string, Buffer>();
      for (const tensor of allTensors(model)) {
        const range = tensor.fileRange();
        expect(range, tensor.name).not.toBeNull();
        expect(range!.path).toBe(resolve(range!.path)); // absolute
        expect(range!.length).toBe(tensor.byteLength);
        let file = cache.get(range!.path);
        if (file === undefined) {
          file = readFileSync(range!.path);
          cache.set(range!.path, file);
        }
        const stored = file.subarray(range!.offset, range!.offset + range!.length);
        expect(stored.equals(Buffer.from(tensor.bytes())), tensor.name).toBe(true);
      }
    } finally {
      model.close();
    }
  });

  it("a .halo file in a backend's packing gives matrices mappable in place, opened with or without its codec", async () => {
    const path = join(dir, "backend.halo");
    const codec = testBackendCodec("halo-i2x256");
    await convertModel(synthModel({ shape: "tiny", seed: 32 }), path, { format: "halo", codecs: [codec] });
    for (const codecs of [[codec], []]) {
      const model = readHalo(path, { codecs });
      const q = model.layers[0]!.q;
      expect(q.packing).toBe("halo-i2x256");
      expect(q.fileRange()).toEqual({ path: resolve(path), offset: expect.any(Number), length: q.byteLength });
      expect(q.fileRange()!.offset % 64).toBe(0);
      const range = q.fileRange()!;
      expect(
        readFileSync(path)
          .subarray(range.offset, range.offset + range.length)
          .equals(Buffer.from(q.bytes())),
      ).toBe(true);
      model.close();
    }
  });

  it("is null for memory sources, even when they were read from a file and named after it", () => {
    const halo = readHalo(memorySource(new Uint8Array(readFileSync(files["halo"]!)), files["halo"]!));
    const gguf = readGguf(new Uint8Array(readFileSync(files["gguf-tq2_0"]!)));
    const h1b = readH1b(memorySource(new Uint8Array(readFileSync(files["h1b-v2"]!)), files["h1b-v2"]!), { htok: false });
    for (const model of [halo, gguf, h1b]) {
      for (const tensor of allTensors(model)) expect(tensor.fileRange(), tensor.name).toBeNull();
      model.close();
    }
    expect(memorySource(new Uint8Array(4)).filePath).toBeNull();
    const source = fileSource(files["halo"]!);
    expect(source.filePath).toBe(resolve(files["halo"]!));
    source.close();
  });

  it("is null for computed tensors: synthetic models and HF master weights ternarised on load", async () => {
    for (const tensor of allTensors(synthModel({ seed: 2 }))) expect(tensor.fileRange()).toBeNull();
    const snapshot = join(dir, "bf16");
    await convertModel(synthModel({ shape: "tiny", seed: 31 }), snapshot, { format: "hf-bf16", force: true });
    const model = await openModel(snapshot);
    try {
      for (const role of TERNARY_ROLES) expect(model.layers[0]![role].fileRange()).toBeNull();
      const norm = model.layers[0]!.attnNorm.fileRange();
      expect(norm).not.toBeNull(); // float tensors are still stored verbatim
      expect(
        readFileSync(norm!.path)
          .subarray(norm!.offset, norm!.offset + norm!.length)
          .equals(Buffer.from(model.layers[0]!.attnNorm.bytes())),
      ).toBe(true);
    } finally {
      model.close();
    }
  });
});
