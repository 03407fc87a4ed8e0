import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { synthModel } from "../../synth/synth-model.js";
import { readGguf } from "./read-gguf.js";
import { readGgufHeader } from "./gguf-header.js";
import { writeGguf } from "./write-gguf.js";
import { fileSource } from "../../core/byte-source.js";

const dir = mkdtempSync(join(tmpdir(), "halo-i2s-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeGguf i2_s", () => {
  it("writes Microsoft's layout: arch bitnet-b1.58, type 36 tensors, one exact f32 scale per matrix", async () => {
    const model = synthModel({ seed: 8 });
    const path = join(dir, "m.gguf");
    const report = await writeGguf(model, path, { ternaryType: "i2_s" });
    expect(report.notes.join(" ")).toMatch(/bitnet\.cpp/);
    const source = fileSource(path);
    const header = readGgufHeader(source);
    source.close();
    const entry = (key: string) => header.metadata.get(key);
    expect(entry("general.architecture")?.value).toBe("bitnet-b1.58");
    expect(entry("general.file_type")?.value).toBe(40);
    expect(entry("bitnet-b1.58.block_count")?.value).toBe(2);
    const q = header.tensors.find((t) => t.name === "blk.0.attn_q.weight");
    expect(q?.type.id).toBe(36);
    const back = readGguf(path);
    expect(back.config.activation).toBe("relu2");
    for (const [l, layer] of back.layers.entries()) {
      const original = model.layers[l]!;
      expect(layer.gate.packing).toBe("i2_s");
      expect(layer.gate.scale).toEqual(original.gate.scale);
      const a = new Int8Array(layer.down.rows * layer.down.cols);
      const b = new Int8Array(a.length);
      layer.down.decodeRows(0, layer.down.rows, a);
      original.down.decodeRows(0, original.down.rows, b);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    }
    back.close();
  });

  it("refuses SiLU models (the arch cannot say SiLU)", async () => {
    await expect(writeGguf(synthModel({ activation: "silu" }), join(dir, "silu.gguf"), { ternaryType: "i2_s" })).rejects.toMatchObject({
      code: "H1B_LOSSY_CONVERSION",
    });
  });
});
