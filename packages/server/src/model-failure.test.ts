import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "@halo/kernels";
import { synthModel } from "@halo/h1b-format";
import { loadModel, type Engine } from "@halo/engine";
import { createServer, silentLogger, type HaloServer } from "./index.js";
import { postJson, readSseRecords, referenceWithStep } from "../test/tiny-server.js";

// A model whose forward pass yields NaN logits (as a corrupt weight file or a broken kernel does):
// the reference backend's real step, with its output overwritten.
function nanBackend(): Backend {
  return referenceWithStep("nan-logits", async (inner, batch) => (await inner.step(batch)).fill(Number.NaN));
}

let engine: Engine;
let app: HaloServer;
let url: string;

beforeAll(async () => {
  engine = await loadModel(synthModel({ seed: 3 }), { backend: nanBackend(), contextLength: 128, maxSequences: 2 });
  app = createServer({ engine, parallel: 2, logger: silentLogger, modelId: "tiny" });
  url = (await app.listen(0, "127.0.0.1")).url;
});
afterAll(async () => {
  await app.close({ graceMs: 1000 });
  engine.dispose();
});

describe("a model that produces non-finite logits", () => {
  it("answers 500 model_error (SERVER_MODEL_FAILED), never a 400 that blames the request", async () => {
    for (const temperature of [0, 0.8]) {
      const response = await postJson(`${url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature });
      expect(response.status).toBe(500);
      const { error } = (await response.json()) as { error: Record<string, unknown> };
      expect(error).toMatchObject({ type: "api_error", code: "model_error", halo_code: "SERVER_MODEL_FAILED", param: null });
    }
  });

  it("ends a stream with a model_error record and [DONE]", async () => {
    const response = await postJson(`${url}/v1/completions`, { prompt: "hi", max_tokens: 4, stream: true });
    const records = await readSseRecords(response);
    expect(records.at(-1)).toBe("[DONE]");
    expect(JSON.parse(records.at(-2)!)).toMatchObject({ error: { code: "model_error", halo_code: "SERVER_MODEL_FAILED" } });
  });
});
