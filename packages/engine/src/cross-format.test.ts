import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeGguf, writeH1b, writeHalo, writeHfSnapshot } from "@halo/h1b-format";
import { loadModel } from "./index.js";

// One model, written in every format halo writes, must give bit-identical logits: the scales are
// exactly representable in bf16/f16 (exactScales), so no format changes a number.
const SEED = 21;
const TOKENS = [506, 84, 104, 101, 32, 99, 97, 112, 105, 116, 97, 108];
let dir: string;
const paths: Record<string, Record<string, string>> = { relu2: {}, silu: {} };

async function logitsOf(source: string | ReturnType<typeof synthModel>): Promise<Float32Array> {
  // f32 KV so the comparison is of the weights alone.
  const engine = await loadModel(source, { backend: "reference", contextLength: 64, kvDtype: "f32" });
  const parts: Float32Array[] = [];
  await engine.evaluate(TOKENS, (rows) => {
    parts.push(rows);
  });
  engine.dispose();
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-xformat-"));
  for (const activation of ["relu2", "silu"] as const) {
    const model = () => synthModel({ seed: SEED, activation, exactScales: true });
    const out = paths[activation]!;
    out["halo"] = join(dir, `${activation}.halo`);
    await writeHalo(model(), out["halo"]);
    // The seed format and bitnet.cpp's arch have no activation field (their runtimes assume ReLU²).
    if (activation === "relu2") {
      out["h1b-v2"] = join(dir, `${activation}.h1b`);
      await writeH1b(model(), out["h1b-v2"], { version: 2 });
      out["gguf-i2_s"] = join(dir, `${activation}-i2s.gguf`);
      await writeGguf(model(), out["gguf-i2_s"], { ternaryType: "i2_s" });
    }
    out["gguf-tq2_0"] = join(dir, `${activation}-tq2.gguf`);
    await writeGguf(model(), out["gguf-tq2_0"], { ternaryType: "tq2_0" });
    out["gguf-tq1_0"] = join(dir, `${activation}-tq1.gguf`);
    await writeGguf(model(), out["gguf-tq1_0"], { ternaryType: "tq1_0" });
    out["hf-packed"] = join(dir, `${activation}-hf`);
    await writeHfSnapshot(model(), out["hf-packed"], { variant: "packed" });
  }
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the same model from every format", () => {
  it.each(["relu2", "silu"] as const)(
    "gives identical logits at every position (%s)",
    async (activation) => {
      const expected = await logitsOf(synthModel({ seed: SEED, activation, exactScales: true }));
      expect(expected.length).toBe(TOKENS.length * 512);
      for (const [format, path] of Object.entries(paths[activation]!)) {
        const actual = await logitsOf(path);
        let maxDiff = 0;
        for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
        expect({ format, maxDiff }).toEqual({ format, maxDiff: 0 });
      }
    },
    120_000,
  );
});
