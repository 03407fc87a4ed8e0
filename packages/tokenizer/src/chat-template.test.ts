// Golden-string tests of chat templates: the real Llama-3 template from tokenizer_config.json and BitNet-2B-4T's.
import { describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { isHaloError } from "@halo/errors";
import { llama3Files } from "../test/llama3-fixture.js";
import {
  BITNET_CHAT_TEMPLATE,
  BUILTIN_CHAT_TEMPLATE_NAMES,
  BUILTIN_CHAT_TEMPLATES,
  LLAMA3_CHAT_TEMPLATE,
  PLAIN_CHAT_TEMPLATE,
  checkChatTemplate,
  isBuiltinChatTemplate,
  renderChatTemplate,
} from "./chat-template.js";
import { Tokenizer } from "./tokenizer.js";

const files = llama3Files();
const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "  What is 2+2?\n" },
  { role: "assistant", content: "4" },
  { role: "user", content: "Thanks!" },
];

describe("built-in templates", () => {
  it("BitNet-2B-4T: `Role: content<|eot_id|>` turns, then `Assistant: `", () => {
    expect(renderChatTemplate(BITNET_CHAT_TEMPLATE, messages, true)).toBe(
      "System: You are a helpful assistant.<|eot_id|>User: What is 2+2?<|eot_id|>Assistant: 4<|eot_id|>User: Thanks!<|eot_id|>Assistant: ",
    );
    expect(renderChatTemplate(BITNET_CHAT_TEMPLATE, messages.slice(0, 2), false)).toBe(
      "System: You are a helpful assistant.<|eot_id|>User: What is 2+2?<|eot_id|>",
    );
  });

  it("Llama-3 header style with BOS and the assistant header as generation prompt", () => {
    expect(renderChatTemplate(LLAMA3_CHAT_TEMPLATE, messages.slice(0, 2), true, { bos_token: "<|begin_of_text|>" })).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(renderChatTemplate(LLAMA3_CHAT_TEMPLATE, [{ role: "user", content: "Hi" }], false, { bos_token: "<|begin_of_text|>" })).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    );
  });

  it("plain fallback: `role: content` turns ended by EOS when there is one, else by a newline, then `assistant: `", () => {
    expect(renderChatTemplate(PLAIN_CHAT_TEMPLATE, messages.slice(0, 2), true, { eos_token: "</s>" })).toBe(
      "system: You are a helpful assistant.</s>\nuser: What is 2+2?</s>\nassistant: ",
    );
    expect(renderChatTemplate(PLAIN_CHAT_TEMPLATE, messages, false)).toBe(
      "system: You are a helpful assistant.\nuser: What is 2+2?\nassistant: 4\nuser: Thanks!\n",
    );
  });

  it("names every built-in, and checks Jinja without rendering it", () => {
    expect(Object.keys(BUILTIN_CHAT_TEMPLATES)).toEqual([...BUILTIN_CHAT_TEMPLATE_NAMES]);
    expect(isBuiltinChatTemplate("plain")).toBe(true);
    expect(isBuiltinChatTemplate(PLAIN_CHAT_TEMPLATE)).toBe(false);
    expect(() => checkChatTemplate(PLAIN_CHAT_TEMPLATE)).not.toThrow();
    expect(() => checkChatTemplate("{% for x in %}")).toThrow(/does not parse/);
  });

  it("reports templates that do not parse or that raise", () => {
    for (const template of ["{% for x in %}", "{{ raise_exception('no system role') }}"]) {
      try {
        renderChatTemplate(template, messages, true);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && error.code).toBe("TOKENIZER_BAD_TEMPLATE");
      }
    }
  });
});

describe("Tokenizer chat templates", () => {
  const synth = synthTokenizerJson(512);
  const tokenizer = Tokenizer.fromJson(synth.tokenizerJson, synth.tokenizerConfigJson);

  it("renders the file's own template (the synthetic model carries BitNet's) and encodes it with BOS and special tokens", () => {
    const text = tokenizer.applyChatTemplate([{ role: "user", content: "Hi" }]);
    expect(text).toBe("User: Hi<|eot_id|>Assistant: ");
    const ids = tokenizer.encodeChat([{ role: "user", content: "Hi" }]);
    expect(ids[0]).toBe(tokenizer.bosTokenId);
    expect(ids).toContain(tokenizer.tokenToId("<|eot_id|>"));
    expect(tokenizer.decode(ids)).toBe(`<|begin_of_text|>${text}`);
  });

  it("explains a missing template", () => {
    const json = JSON.parse(synth.tokenizerConfigJson) as Record<string, unknown>;
    delete json["chat_template"];
    const bare = Tokenizer.fromJson(synth.tokenizerJson, json);
    try {
      bare.applyChatTemplate([{ role: "user", content: "Hi" }]);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/template: "bitnet"/);
    }
    expect(bare.applyChatTemplate([{ role: "user", content: "Hi" }], { template: "bitnet" })).toBe("User: Hi<|eot_id|>Assistant: ");
  });

  it("the plain fallback on a tokenizer without Llama-3 tokens ends turns with its EOS id", () => {
    const rename = (text: string): string =>
      text.replaceAll("<|begin_of_text|>", "<s>").replaceAll("<|end_of_text|>", "</s>").replaceAll("<|eot_id|>", "<unused_0>");
    const config = { ...(JSON.parse(rename(synth.tokenizerConfigJson)) as object), eos_token: "</s>", chat_template: undefined };
    const foreign = Tokenizer.fromJson(rename(synth.tokenizerJson), config);
    const ids = foreign.encodeChat([{ role: "user", content: "Hi" }], { template: "plain" });
    expect(foreign.decode(ids)).toBe("<s>user: Hi</s>\nassistant: ");
    expect(ids.filter((id) => id === foreign.eosTokenId)).toHaveLength(1);
    expect(foreign.stopTokenIds).toContain(foreign.eosTokenId);
  });
});

describe.skipIf(files === null)("the real Llama-3 template from tokenizer_config.json", () => {
  const tokenizer = files === null ? null : Tokenizer.fromJson(files.tokenizerJson, files.tokenizerConfigJson);

  it("renders the golden string", () => {
    expect(tokenizer!.applyChatTemplate(messages.slice(0, 2))).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("encodes it with one BOS and the header ids, and implies stop ids 128001 and 128009", () => {
    const ids = tokenizer!.encodeChat([{ role: "user", content: "Hi" }]);
    expect(ids.slice(0, 2)).toEqual([128000, 128006]);
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids).toContain(128007);
    expect(ids).toContain(128009);
    expect(tokenizer!.stopTokenIds).toEqual([128001, 128009]);
  });

  it("the BitNet template on the Llama-3 vocabulary (BitNet-2B-4T's tokenizer) starts with BOS when BOS is on", () => {
    const bitnet = Tokenizer.fromJson(files!.tokenizerJson, files!.tokenizerConfigJson, { addBosToken: true });
    const ids = bitnet.encodeChat([{ role: "user", content: "Hi" }], { template: "bitnet" });
    expect(ids[0]).toBe(128000);
    expect(bitnet.decode(ids)).toBe("<|begin_of_text|>User: Hi<|eot_id|>Assistant: ");
  });
});
