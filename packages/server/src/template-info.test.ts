import { describe, expect, it } from "vitest";
import { loadModel } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { createServer } from "./index.js";

// What /v1/models, the stats and the model-ready log say about the chat template and where it came from.
async function served(chatTemplate: string | undefined) {
  const engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 64, maxSequences: 1, ...(chatTemplate !== undefined ? { chatTemplate } : {}) });
  const logs: Array<Record<string, unknown>> = [];
  const app = createServer({ engine, modelId: "tiny", parallel: 1, logger: { log: (level, msg, fields = {}) => logs.push({ level, msg, ...fields }) } });
  const { url } = await app.listen(0, "127.0.0.1");
  try {
    await app.ready;
    const card = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: { chat_template: Record<string, string> } }> };
    return { card: card.data[0]!.meta.chat_template, stats: app.stats().chatTemplate, ready: logs.find((l) => l["msg"] === "model-ready")!, engineReason: engine.chatTemplate.reason };
  } finally {
    await app.close({ graceMs: 0 });
    engine.dispose();
  }
}

describe("chat template origin", () => {
  it("a template the operator chose: origin under chatTemplateOrigin, the reason in server words (no JS option names)", async () => {
    for (const [option, name, reason] of [
      ["plain", "plain", "chosen by the server operator"],
      ["{{ messages[0]['content'] }}", "custom", "Jinja given by the server operator"],
    ] as const) {
      const { card, stats, ready, engineReason } = await served(option);
      expect(engineReason).toMatch(/chatTemplate option/);
      expect(card).toEqual({ name, origin: "option", reason });
      expect(stats).toEqual(card);
      expect(ready).toMatchObject({ chatTemplate: name, chatTemplateOrigin: "option", chatTemplateReason: reason });
    }
  });

  it("the file's own template keeps the engine's reason, and the log's origin is the same word as /v1/models'", async () => {
    const { card, ready, engineReason } = await served(undefined);
    expect(card).toEqual({ name: "bitnet", origin: "file", reason: engineReason });
    expect(ready).toMatchObject({ chatTemplateOrigin: "file", chatTemplateReason: "from the model file" });
  });
});
