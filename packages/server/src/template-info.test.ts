import { describe, expect, it } from "vitest";
import { loadModel, PLAIN_TURN_STOP } from "@halo/engine";
import { synthModel, type HaloModel } from "@halo/h1b-format";
import { createServer } from "./index.js";

// What /v1/models, the stats and the model-ready log say about the chat template and where it came from.
async function served(chatTemplate: string | undefined) {
  const engine = await loadModel(synthModel({ seed: 3 }), {
    backend: "reference",
    contextLength: 64,
    maxSequences: 1,
    ...(chatTemplate !== undefined ? { chatTemplate } : {}),
  });
  const logs: Array<Record<string, unknown>> = [];
  const app = createServer({ engine, modelId: "tiny", parallel: 1, logger: { log: (level, msg, fields = {}) => logs.push({ level, msg, ...fields }) } });
  const { url } = await app.listen(0, "127.0.0.1");
  try {
    await app.ready;
    const card = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: { chat_template: Record<string, string> } }> };
    return {
      card: card.data[0]!.meta.chat_template,
      stats: app.stats().chatTemplate,
      ready: logs.find((l) => l["msg"] === "model-ready")!,
      engineReason: engine.chatTemplate.reason,
    };
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

describe("the plain template without EOS", () => {
  it("a chat stops at the next user turn as Engine.chat does (merged with the request's stop); a text completion does not", async () => {
    const model = synthModel({ seed: 3 });
    if (model.tokenizer?.kind !== "hf-json") throw new Error("synthetic models carry a tokenizer.json");
    // No token the tokenizer takes for EOS.
    const rename = (text: string): string => text.replaceAll("<|end_of_text|>", "<unused_9>").replaceAll("</s>", "<unused_8>");
    const config = JSON.parse(rename(model.tokenizer.tokenizerConfigJson!)) as Record<string, unknown>;
    delete config["eos_token"];
    const noEos: HaloModel = {
      ...model,
      tokenizer: { ...model.tokenizer, tokenizerJson: rename(model.tokenizer.tokenizerJson), tokenizerConfigJson: JSON.stringify(config) },
    };
    const engine = await loadModel(noEos, { backend: "reference", contextLength: 64, maxSequences: 1, chatTemplate: "plain" });
    expect(engine.tokenizer!.eosTokenId).toBeNull();
    const seen: Array<readonly string[] | undefined> = [];
    const generate = engine.generate.bind(engine);
    engine.generate = (request) => (seen.push(request.stop), generate(request));
    const app = createServer({ engine, modelId: "tiny", parallel: 1, logger: { log: () => {} } });
    const { url } = await app.listen(0, "127.0.0.1");
    try {
      const post = (path: string, body: object) =>
        fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      expect((await post("/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }], max_tokens: 2, stop: "###" })).status).toBe(200);
      expect((await post("/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }], max_tokens: 2 })).status).toBe(200);
      expect((await post("/v1/completions", { prompt: "Hi", max_tokens: 2 })).status).toBe(200);
      expect(seen).toEqual([["###", PLAIN_TURN_STOP], [PLAIN_TURN_STOP], undefined]);
    } finally {
      await app.close({ graceMs: 0 });
      engine.dispose();
    }
  });
});
