import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "@halo/h1b-format";
import { CHAT_OPTION_KEYS, GENERATE_OPTION_KEYS, LOAD_MODEL_OPTION_KEYS, loadModel, type Engine } from "./index.js";

function errorOf(run: () => unknown): { code: string; field: string | undefined; message: string } {
  try {
    run();
  } catch (error) {
    if (isHaloError(error)) return { code: error.code, field: error.field, message: error.message };
    throw error;
  }
  throw new Error("expected a throw");
}

async function rejectionOf(promise: Promise<unknown>): Promise<{ code: string; field: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isHaloError(error)) return { code: error.code, field: error.field, message: error.message };
    throw error;
  }
  throw new Error("expected a rejection");
}

let engine: Engine;
beforeAll(async () => {
  engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 64 });
});
afterAll(() => engine.dispose());

describe("option keys", () => {
  it("refuses snake_case keys of complete, chat and generate, naming the camelCase key meant", () => {
    const complete = errorOf(() => engine.complete("hi", { top_p: 0.5 } as never));
    expect(complete.code).toBe("ENGINE_BAD_OPTION");
    expect(complete.field).toBe("top_p");
    expect(complete.message).toMatch(/unknown complete option \(field top_p\).*Did you mean topP\?/);
    const chat = errorOf(() => engine.chat([{ role: "user", content: "hi" }], { max_tokens: 4 } as never));
    expect(chat.message).toMatch(/unknown chat option \(field max_tokens\).*Did you mean maxTokens\?/);
    const generate = errorOf(() => engine.generate({ prompt: "hi", ignore_eos: true } as never));
    expect(generate.message).toMatch(/unknown generate option \(field ignore_eos\).*Did you mean ignoreEos\?/);
  });

  it("refuses unrelated keys without a suggestion, and chat-only keys outside chat", () => {
    const unrelated = errorOf(() => engine.complete("hi", { frobnicate: 1 } as never));
    expect(unrelated.message).toMatch(/unknown complete option \(field frobnicate\); expected one of temperature, .*maxTokens.*\. Remove it/);
    expect(errorOf(() => engine.complete("hi", { template: "llama3" } as never)).field).toBe("template");
    expect(errorOf(() => engine.complete("hi", { prompt: "other" } as never)).field).toBe("prompt");
    expect(errorOf(() => engine.complete("hi", null as never)).message).toMatch(/must be an object/);
  });

  it("refuses them on sessions too", () => {
    const session = engine.createSession();
    try {
      expect(errorOf(() => session.chat("hi", { topK_: 3 } as never)).message).toMatch(/Did you mean topK\?/);
      expect(errorOf(() => session.generate("hi", { stop_token_ids: [1] } as never)).message).toMatch(/Did you mean stopTokenIds\?/);
    } finally {
      session.dispose();
    }
  });

  it("accepts every listed key", async () => {
    for await (const _ of engine.complete("hi", { maxTokens: 1, temperature: 0, topP: 0.9, stop: ["x"], ignoreEos: true })) void _;
    for await (const _ of engine.chat([{ role: "user", content: "hi" }], { maxTokens: 1, temperature: 0 })) void _;
    expect(CHAT_OPTION_KEYS).toEqual(expect.arrayContaining([...GENERATE_OPTION_KEYS, "template"]));
  });

  it("loadModel refuses unknown options before opening the file", async () => {
    const error = await rejectionOf(loadModel("/nonexistent/model.halo", { context_length: 128 } as never));
    expect(error.code).toBe("ENGINE_BAD_OPTION");
    expect(error.message).toMatch(/unknown loadModel option \(field context_length\).*Did you mean contextLength\?/);
    expect(LOAD_MODEL_OPTION_KEYS).toContain("backendOptions");
  });

  it("loadModel says where threads and lmHead went (each backend takes its own options)", async () => {
    const threads = await rejectionOf(loadModel("/nonexistent/model.halo", { threads: 4 } as never));
    expect(threads).toMatchObject({ code: "ENGINE_BAD_OPTION", field: "threads" });
    expect(threads.message).toMatch(/threads moved to backendOptions\.cpu\.threads/);
    expect(LOAD_MODEL_OPTION_KEYS).not.toContain("threads");
    expect(LOAD_MODEL_OPTION_KEYS).not.toContain("lmHead");
  });
});
