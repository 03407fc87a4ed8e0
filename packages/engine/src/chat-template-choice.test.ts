// Which template a model chats with (the caller's, the file's, or inferred) and template variables through chat and sessions.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel, type HaloModel } from "@halo/h1b-format";
import { chooseChatTemplate, loadModel, PLAIN_TURN_STOP, type GenerateEvent } from "./index.js";

/** A synthetic model whose file and tokenizer config carry no chat template. */
function bareModel(seed = 3): HaloModel {
  const model = synthModel({ seed });
  if (model.tokenizer?.kind !== "hf-json") throw new Error("synthetic models carry a tokenizer.json");
  const config = JSON.parse(model.tokenizer.tokenizerConfigJson!) as Record<string, unknown>;
  delete config["chat_template"];
  return { ...model, chatTemplate: null, tokenizer: { ...model.tokenizer, tokenizerConfigJson: JSON.stringify(config) } };
}

/** {@link bareModel} with the Llama-3 special tokens renamed, so the vocabulary implies no template. */
function foreignVocabularyModel(): HaloModel {
  const model = bareModel();
  if (model.tokenizer?.kind !== "hf-json") throw new Error("unreachable");
  const rename = (text: string): string =>
    text
      .replaceAll("<|begin_of_text|>", "<s>")
      .replaceAll("<|end_of_text|>", "</s>")
      .replaceAll("<|eot_id|>", "<unused_0>")
      .replaceAll("<|start_header_id|>", "<unused_1>")
      .replaceAll("<|end_header_id|>", "<unused_2>");
  const config = { ...(JSON.parse(rename(model.tokenizer.tokenizerConfigJson!)) as object), eos_token: "</s>" };
  return { ...model, tokenizer: { ...model.tokenizer, tokenizerJson: rename(model.tokenizer.tokenizerJson), tokenizerConfigJson: JSON.stringify(config) } };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isHaloError(error)) return error.code;
    throw error;
  }
  return "no error";
}

async function promptTokens(stream: AsyncIterable<GenerateEvent>): Promise<number> {
  let count = -1;
  for await (const event of stream) if (event.type === "request-start") count = event.promptTokens;
  return count;
}

describe("chooseChatTemplate", () => {
  it("takes the model file's own template first, then the tokenizer config's", () => {
    const model = synthModel({ seed: 1 });
    expect(chooseChatTemplate(model)).toMatchObject({ name: "bitnet", origin: "file", reason: "from the model file" });
    const custom = "{% for m in messages %}{{ m.content }}{% endfor %}";
    expect(chooseChatTemplate({ ...model, chatTemplate: custom })).toEqual({
      name: "embedded",
      origin: "file",
      reason: "from the model file",
      source: custom,
      stopStrings: [],
    });
    expect(chooseChatTemplate({ ...model, chatTemplate: null })).toMatchObject({ name: "bitnet", origin: "file", reason: "from the tokenizer's config" });
  });

  it("infers bitnet for the BitNet architecture with the Llama-3 vocabulary, llama3 for Llama, plain otherwise", () => {
    const bare = bareModel();
    expect(chooseChatTemplate(bare)).toMatchObject({ name: "bitnet", origin: "inferred", reason: "inferred: BitNet architecture with Llama-3 vocabulary" });
    expect(chooseChatTemplate({ ...bare, config: { architecture: "llama" } })).toMatchObject({
      name: "llama3",
      origin: "inferred",
      reason: "inferred: Llama architecture with Llama-3 vocabulary",
    });
    expect(chooseChatTemplate({ ...bare, config: { architecture: "qwen2" } })).toMatchObject({ name: "plain", origin: "inferred" });
    const foreign = chooseChatTemplate(foreignVocabularyModel());
    expect(foreign).toMatchObject({ name: "plain", origin: "inferred" });
    expect(foreign.reason).toBe(
      "inferred: BitNet architecture with no Llama-3 vocabulary (<|begin_of_text|>, <|eot_id|> absent); plain fallback, turns end with EOS",
    );
    expect(chooseChatTemplate({ ...bare, tokenizer: null }).reason).toMatch(/^inferred: BitNet architecture with no tokenizer; plain fallback/);
  });

  it("passes over a file template that does not parse, and says so", () => {
    const choice = chooseChatTemplate({ ...bareModel(), chatTemplate: "{% for x in %}" });
    expect(choice).toMatchObject({ name: "bitnet", origin: "inferred" });
    expect(choice.reason).toMatch(/^the template in the model file does not parse \(.+\); inferred: BitNet architecture with Llama-3 vocabulary$/);
  });

  it("uses the caller's choice: a built-in name, or Jinja that parses", () => {
    const model = synthModel({ seed: 1 });
    expect(chooseChatTemplate(model, { requested: "plain" })).toMatchObject({ name: "plain", origin: "option" });
    const jinja = "{{ messages[0].content }}";
    expect(chooseChatTemplate(model, { requested: jinja })).toMatchObject({ name: "custom", origin: "option", source: jinja });
    expect(codeOf(() => chooseChatTemplate(model, { requested: "{% for x in %}" }))).toBe("TOKENIZER_BAD_TEMPLATE");
    expect(codeOf(() => chooseChatTemplate(model, { requested: " " }))).toBe("ENGINE_BAD_OPTION");
    expect(codeOf(() => chooseChatTemplate(model, { requested: 7 as unknown as string }))).toBe("ENGINE_BAD_OPTION");
  });
});

describe("loadModel's chat template", () => {
  it("a model without a template chats with the inferred one, and Engine.chatTemplate says so", async () => {
    await using engine = await loadModel(bareModel(), { backend: "reference", contextLength: 128 });
    expect(engine.chatTemplate).toMatchObject({ name: "bitnet", origin: "inferred" });
    expect(engine.renderChat([{ role: "user", content: "Hi" }])).toBe("User: Hi<|eot_id|>Assistant: ");
    const count = await promptTokens(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 2, temperature: 0 }));
    expect(count).toBe(engine.tokenizer!.encodeChat([{ role: "user", content: "Hi" }], { template: "bitnet" }).length);
  });

  it("a vocabulary without Llama-3 tokens chats with the plain template, turns ended by EOS", async () => {
    await using engine = await loadModel(foreignVocabularyModel(), { backend: "reference", contextLength: 128 });
    expect(engine.chatTemplate.name).toBe("plain");
    expect(
      engine.renderChat([
        { role: "system", content: "Be brief." },
        { role: "user", content: " Hi " },
      ]),
    ).toBe("system: Be brief.</s>\nuser: Hi</s>\nassistant: ");
    const ids = engine.tokenizer!.encodeChat([{ role: "user", content: "Hi" }], { template: "plain" });
    expect(ids[0]).toBe(engine.tokenizer!.tokenToId("<s>"));
    expect(ids).toContain(engine.tokenizer!.eosTokenId);
    expect(await promptTokens(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 2, temperature: 0 }))).toBe(ids.length);
  });

  it("plain with a tokenizer that has no EOS stops at the next user turn; chat and sessions add it to the caller's stop", async () => {
    const model = foreignVocabularyModel();
    if (model.tokenizer?.kind !== "hf-json") throw new Error("unreachable");
    // No token the loader takes for EOS: "</s>" renamed too, and no eos_token in the config.
    const rename = (text: string): string => text.replaceAll("</s>", "<unused_3>");
    const config = JSON.parse(rename(model.tokenizer.tokenizerConfigJson!)) as Record<string, unknown>;
    delete config["eos_token"];
    const noEos: HaloModel = {
      ...model,
      tokenizer: { ...model.tokenizer, tokenizerJson: rename(model.tokenizer.tokenizerJson), tokenizerConfigJson: JSON.stringify(config) },
    };
    expect(chooseChatTemplate(model).stopStrings).toEqual([]); // EOS ends its turns
    expect(chooseChatTemplate(synthModel({ seed: 1 }), { requested: "plain" }).stopStrings).toEqual([]);
    await using engine = await loadModel(noEos, { backend: "reference", contextLength: 128 });
    expect(engine.tokenizer!.eosTokenId).toBeNull();
    expect(engine.chatTemplate).toMatchObject({ name: "plain", stopStrings: [PLAIN_TURN_STOP] });
    expect(engine.renderChat([{ role: "user", content: "Hi" }])).toBe("user: Hi\nassistant: ");
    // What reaches the scheduler: the caller's stop strings, then the template's.
    const seen: Array<readonly string[] | undefined> = [];
    const run = (engine as unknown as { run: (...args: unknown[]) => unknown }).run.bind(engine);
    (engine as unknown as { run: unknown }).run = (prompt: unknown, options: { stop?: readonly string[] }, ...rest: unknown[]) => (
      seen.push(options.stop),
      run(prompt, options, ...rest)
    );
    await promptTokens(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 2, temperature: 0, stop: ["###"] }));
    await promptTokens(engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 2, temperature: 0 }));
    await promptTokens(
      engine.chat([{ role: "user", content: "Hi" }], { maxTokens: 2, temperature: 0, template: "{% for m in messages %}{{ m.content }}{% endfor %}" }),
    );
    const session = engine.createSession();
    await promptTokens(session.chat("Hi", { maxTokens: 2, temperature: 0, stop: [PLAIN_TURN_STOP] }));
    session.dispose();
    expect(seen).toEqual([["###", PLAIN_TURN_STOP], [PLAIN_TURN_STOP], undefined, [PLAIN_TURN_STOP]]);
  });

  it("chatTemplate names a built-in or gives Jinja; a bad one is refused before the weights load", async () => {
    await using engine = await loadModel(synthModel({ seed: 1 }), { backend: "reference", contextLength: 64, chatTemplate: "llama3" });
    expect(engine.chatTemplate).toMatchObject({ name: "llama3", origin: "option" });
    expect(engine.renderChat([{ role: "user", content: "Hi" }])).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    await expect(loadModel(synthModel({ seed: 1 }), { backend: "reference", chatTemplate: "{% if %}" })).rejects.toMatchObject({
      code: "TOKENIZER_BAD_TEMPLATE",
    });
    await expect(loadModel(synthModel({ seed: 1 }), { backend: "reference", chatTemplate: "" })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      field: "chatTemplate",
    });
  });
});

describe("template variables", () => {
  const template =
    "{% if date_string is defined %}Today is {{ date_string }}.{% endif %}{% if tools %} Tools: {{ tools | map(attribute='name') | join(', ') }}.{% endif %}" +
    "{% for m in messages %} {{ m.role }}: {{ m.content }}{% endfor %}{% if add_generation_prompt %} assistant:{% endif %}";

  it("reach the template through renderChat, chat and sessions (a turn's merged over the session's)", async () => {
    await using engine = await loadModel(synthModel({ seed: 2 }), { backend: "reference", contextLength: 256, chatTemplate: template });
    const messages = [{ role: "user", content: "Hi" }];
    const variables = { date_string: "26 Jul 2024", tools: [{ name: "weather" }, { name: "clock" }] };
    const text = engine.renderChat(messages, undefined, variables);
    expect(text).toBe("Today is 26 Jul 2024. Tools: weather, clock. user: Hi assistant:");
    expect(engine.renderChat(messages)).toBe(" user: Hi assistant:");
    const expected = engine.tokenize(text, { allowSpecial: true }).length;
    expect(await promptTokens(engine.chat(messages, { maxTokens: 1, temperature: 0, templateVariables: variables }))).toBe(expected);

    const session = engine.createSession({ templateVariables: { date_string: "1 Jan 2025", tools: [{ name: "weather" }] } });
    const sessionText = engine.renderChat(messages, undefined, { date_string: "2 Jan 2025", tools: [{ name: "weather" }] });
    expect(await promptTokens(session.chat("Hi", { maxTokens: 1, temperature: 0, templateVariables: { date_string: "2 Jan 2025" } }))).toBe(
      engine.tokenize(sessionText, { allowSpecial: true }).length,
    );
    session.dispose();
  });

  it("must be a plain object that leaves messages and add_generation_prompt alone (ENGINE_BAD_OPTION)", async () => {
    await using engine = await loadModel(synthModel({ seed: 2 }), { backend: "reference", contextLength: 64 });
    const messages = [{ role: "user", content: "Hi" }];
    for (const bad of [[1, 2], null, "tools", new Map(), { messages: [] }, { add_generation_prompt: false }]) {
      expect(codeOf(() => engine.chat(messages, { templateVariables: bad as Record<string, unknown> }))).toBe("ENGINE_BAD_OPTION");
      expect(codeOf(() => engine.createSession({ templateVariables: bad as Record<string, unknown> }))).toBe("ENGINE_BAD_OPTION");
    }
    expect(codeOf(() => engine.renderChat(messages, undefined, [] as unknown as Record<string, unknown>))).toBe("ENGINE_BAD_OPTION");
    expect(codeOf(() => engine.chat(messages, { templateVariables: Object.create(null) as Record<string, unknown>, maxTokens: 1 }))).toBe("no error");
  });
});
