// bf16 embeddings and LM heads (what Hugging Face checkpoints ship): read as stored — mapped from the safetensors file or
// copied as 16-bit patterns — instead of widened to an f32 copy, with the reference backend's logits.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { referenceBackend, TOLERANCES, type ModelWeights } from "@halo/kernels";
import { openModel, synthModel, writeHfSnapshotSync, type HaloModel } from "@halo/h1b-format";
import { createBackend } from "./cpu-backend.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";
import { promptLogits } from "./prompt-logits.test-support.js";

const dir = mkdtempSync(join(tmpdir(), "halo-bf16-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The same weights with every fileRange() hidden, so the backend must copy. */
function inMemory(weights: ModelWeights): ModelWeights {
  const hide = <T extends object>(tensor: T): T => ({ ...tensor, fileRange: () => null });
  return { ...weights, tokenEmbedding: hide(weights.tokenEmbedding), lmHead: weights.lmHead === null ? null : hide(weights.lmHead) };
}

const cases: Array<[string, HaloModel]> = [
  ["tied relu2", synthModel({ shape: "tiny", seed: 21 })],
  ["untied silu", synthModel({ shape: "tiny", activation: "silu", untiedHead: true, seed: 22 })],
];

describe("bf16 embedding and head", () => {
  for (const [name, source] of cases) {
    it(`${name}: a bf16 Hugging Face snapshot is mapped as bf16 and matches the reference`, async () => {
      const path = join(dir, name.replace(/ /g, "-"));
      writeHfSnapshotSync(source, path, { floatDtype: "bf16", scaleDtype: "f32" });
      const weights = await openModel(path);
      try {
        expect(weights.tokenEmbedding.dtype).toBe("bf16");
        const vocab = weights.config.vocabSize;
        const tokens = Array.from({ length: 12 }, (_, i) => (i * 37 + 3) % vocab);
        const mapped = (await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 32 })) as CpuLoadedModel;
        const info = mapped.nativeInfo();
        expect(info.headType).toBe("bf16");
        // An untied embedding is borrowed from the file, 2 bytes per value; the head — an untied one, or the tied
        // embedding — is read whole every token and so copied out of the mapping into huge pages.
        const table = vocab * weights.config.hiddenSize * 2;
        expect(info.mappedBytes).toBe(weights.lmHead === null ? 0 : table);
        const got = await promptLogits(mapped, tokens);
        mapped.dispose();
        const copied = await createBackend({ threads: 2 }).loadModel(inMemory(weights), { contextLength: 32 });
        expect((copied as CpuLoadedModel).nativeInfo().mappedBytes).toBe(0);
        expect(await promptLogits(copied, tokens)).toEqual(got);
        copied.dispose();
        const reference = await referenceBackend().loadModel(weights, { contextLength: 32 });
        const want = await promptLogits(reference, tokens);
        reference.dispose();
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        expect(worst).toBeLessThanOrEqual(TOLERANCES.modelLogits);
      } finally {
        weights.close();
      }
    });
  }

  for (const head of ["int8", "int4"] as const) {
    it(`an ${head} head is built from bf16 rows`, async () => {
      const path = join(dir, `${head}-from-bf16`);
      writeHfSnapshotSync(cases[0]![1], path, { floatDtype: "bf16" });
      const weights = await openModel(path);
      try {
        const model = (await createBackend({ threads: 2, lmHead: head }).loadModel(weights, { contextLength: 16 })) as CpuLoadedModel;
        expect(model.nativeInfo().headType).toBe(head);
        const logits = await promptLogits(model, [1, 2, 3]);
        expect(logits.every(Number.isFinite)).toBe(true);
        model.dispose();
      } finally {
        weights.close();
      }
    });
  }
});
