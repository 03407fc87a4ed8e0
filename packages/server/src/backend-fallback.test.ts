import { describe, expect, it } from "vitest";
import { loadModel } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { referenceBackend, type Backend } from "@halo/kernels";
import { createServer } from "./index.js";

describe("a backend fallback is never silent", () => {
  it("logs a warning and reports the skipped backend, its reason and fix in /v1/models and the stats", async () => {
    const gone: Backend = {
      ...referenceBackend(),
      name: "cpu",
      probe: async () => ({ available: false, reason: "the native CPU addon could not be loaded. Fix: `npm rebuild @halo/kernels-cpu`" }),
    };
    const engine = await loadModel(synthModel({ seed: 3 }), { backend: [gone, referenceBackend()], contextLength: 64, maxSequences: 1 });
    const logs: Array<Record<string, unknown>> = [];
    const app = createServer({ engine, modelId: "tiny", parallel: 1, logger: { log: (level, msg, fields = {}) => logs.push({ level, msg, ...fields }) } });
    const { url } = await app.listen(0, "127.0.0.1");
    try {
      await app.ready;
      const card = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: { backend: string; skipped_backends?: unknown } }> };
      expect(card.data[0]!.meta.backend).toBe("reference");
      expect(card.data[0]!.meta.skipped_backends).toEqual([{ name: "cpu", reason: expect.stringContaining("npm rebuild @halo/kernels-cpu") }]);
      expect(app.stats().skippedBackends.map((s) => s.name)).toEqual(["cpu"]);
      expect(logs).toContainEqual(expect.objectContaining({ level: "warn", msg: "backend-skipped", backend: "cpu", running: "reference" }));
    } finally {
      await app.close({ graceMs: 0 });
      engine.dispose();
    }
  });
});
