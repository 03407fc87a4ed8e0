// A backend that stops for good (its model file changed: KERNELS_CPU_MODEL_FILE_CHANGED) mid-stream: the stream ends
// with model_error, later requests get 500 model_error, /health reports the failure, and the server keeps answering.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HaloError } from "@halo/errors";
import type { Backend } from "@halo/kernels";
import { synthModel } from "@halo/h1b-format";
import { loadModel, type Engine } from "@halo/engine";
import { createServer, type HaloServer, type Logger } from "./index.js";
import { postJson, readSseRecords, referenceWithStep } from "../test/tiny-server.js";

const MESSAGE = "step: the model file changed while the model was loaded (/models/model.halo); found size 586304 → 0 bytes";

// The reference backend's real steps until `stopped` is set, then the CPU backend's sticky rejection.
const state = { steps: 0, stopAfter: Number.POSITIVE_INFINITY };
function stoppingBackend(): Backend {
  return referenceWithStep("stopping", async (inner, batch) => {
    if (++state.steps > state.stopAfter) throw new HaloError("KERNELS_CPU_MODEL_FILE_CHANGED", MESSAGE);
    return inner.step(batch);
  });
}

const logged: Array<{ msg: string; fields: Readonly<Record<string, unknown>> }> = [];
const logger: Logger = { log: (_level, msg, fields = {}) => logged.push({ msg, fields }) };
let engine: Engine;
let app: HaloServer;
let url: string;

beforeAll(async () => {
  engine = await loadModel(synthModel({ seed: 3 }), { backend: stoppingBackend(), contextLength: 128, maxSequences: 2 });
  app = createServer({ engine, parallel: 2, logger, modelId: "tiny" });
  url = (await app.listen(0, "127.0.0.1")).url;
});
afterAll(async () => {
  await app.close({ graceMs: 1000 });
  engine.dispose();
});

describe("a model that stops because its file changed", () => {
  it("ends the running stream with model_error, refuses later requests with 500 model_error and reports it on /health", async () => {
    expect((await fetch(`${url}/health`)).status).toBe(200);
    state.stopAfter = state.steps + 3;
    const response = await postJson(`${url}/v1/completions`, { prompt: "hi", max_tokens: 20, temperature: 0, ignore_eos: true, stream: true });
    const records = await readSseRecords(response);
    expect(records.length).toBeGreaterThan(3); // tokens streamed before the failure
    expect(records.at(-1)).toBe("[DONE]");
    expect(JSON.parse(records.at(-2)!)).toMatchObject({ error: { code: "model_error", halo_code: "SERVER_MODEL_FAILED", message: MESSAGE } });

    const again = await postJson(`${url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    expect(again.status).toBe(500);
    expect(((await again.json()) as { error: unknown }).error).toMatchObject({ code: "model_error", halo_code: "SERVER_MODEL_FAILED", message: MESSAGE });

    for (let i = 0; i < 2; i++) {
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(500);
      const { error } = (await health.json()) as { error: { code: string; halo_code: string; message: string } };
      expect(error).toMatchObject({ code: "model_error", halo_code: "SERVER_MODEL_FAILED" });
      expect(error.message).toContain(MESSAGE);
    }
    expect((await fetch(`${url}/v1/models`)).status).toBe(200);
    // Logged once, however many requests hit it.
    expect(logged.filter((entry) => entry.msg === "model-failed")).toEqual([{ msg: "model-failed", fields: { error: MESSAGE } }]);
  });
});
