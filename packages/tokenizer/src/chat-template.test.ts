// Golden-string tests of chat templates: the real Llama-3 template from tokenizer_config.json and BitNet-2B-4T's.
import { describe, expect, it } from "vitest";
import { synthTokenizerJson } from "@halo/h1b-format";
import { isHaloError } from "@halo/errors";
import { llama3Files } from "../test/llama3-fixture.js";
import { BITNET_CHAT_TEMPLATE, LLAMA3_CHAT_TEMPLATE, renderChatTemplate } from "./chat-template.js";
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
