// A backend plugs in by being installed: the server serves a model on the test package @halo/kernels-example
// (found on HALO_BACKEND_PATH by the engine's discovery) without a line of the server naming it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel } from "@halo/engine";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { installExampleBackend, type InstalledExample } from "../../engine/test/example-backend.js";
import { createServer } from "./index.js";

let installed: InstalledExample;
let dir: string;
let modelPath: string;
const previousPath = process.env.HALO_BACKEND_PATH;

beforeAll(async () => {
  installed = installExampleBackend();
  process.env.HALO_BACKEND_PATH = installed.nodeModules;
  dir = mkdtempSync(join(tmpdir(), "halo-server-plugin-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 4 }), modelPath);
});

afterAll(() => {
  if (previousPath === undefined) delete process.env.HALO_BACKEND_PATH;
  else process.env.HALO_BACKEND_PATH = previousPath;
  installed.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe("a server over an installed backend package", () => {
  it("serves a chat completion on the example backend, and says so in /v1/models and its stats", async () => {
    const engine = await loadModel(modelPath, { contextLength: 128, maxSequences: 2 });
    expect(engine.backend).toBe("example");
    const app = createServer({ engine, modelId: "tiny", parallel: 2 });
    const { url } = await app.listen(0, "127.0.0.1");
    try {
      await app.ready;
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, temperature: 0 }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
      expect(typeof body.choices[0]!.message.content).toBe("string");
      const card = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: { backend: string } }> };
      expect(card.data[0]!.meta.backend).toBe("example");
      expect(app.stats().backend).toBe("example");
    } finally {
      await app.close({ graceMs: 0 });
      engine.dispose();
    }
  });
});
