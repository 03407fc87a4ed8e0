import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { IGNORED_FIELDS_HEADER_BYTES, ignoredFieldsHeader, parseChatRequest, parseCompletionRequest } from "./parse-request.js";

const VOCAB = 512;
const messages = [{ role: "user", content: "Hi" }];

describe("parseChatRequest", () => {
  it("maps OpenAI snake_case fields to the engine's camelCase options", () => {
    const request = parseChatRequest(
      {
        model: "m",
        messages,
        max_tokens: 10,
        temperature: 0.5,
        top_p: 0.9,
        top_k: 40,
        min_p: 0.05,
        presence_penalty: 0.1,
        frequency_penalty: 0.2,
        repeat_penalty: 1.1,
        logit_bias: { "7": -100 },
        seed: 3,
        stop: "\n",
        logprobs: true,
        top_logprobs: 2,
        user: "u1",
        stream: true,
        stream_options: { include_usage: true },
      },
      VOCAB,
    );
    expect(request).toMatchObject({ kind: "chat", model: "m", maxTokens: 10, stream: true, includeUsage: true, logprobs: true, topLogprobs: 2, user: "u1" });
    expect(request.options).toEqual({
      temperature: 0.5,
      topP: 0.9,
      topK: 40,
      minP: 0.05,
      presencePenalty: 0.1,
      frequencyPenalty: 0.2,
      repeatPenalty: 1.1,
      logitBias: { "7": -100 },
      seed: 3,
      stop: ["\n"],
      logprobs: true,
      topLogprobs: 2,
    });
  });

  it("reads null as absent, prefers max_completion_tokens, maps developer to system and joins text parts", () => {
    const request = parseChatRequest(
      {
        messages: [
          { role: "developer", content: "be brief" },
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "text", text: "b" },
            ],
          },
          { role: "assistant", content: null },
        ],
        max_tokens: 5,
        max_completion_tokens: 7,
        temperature: null,
        stream_options: null,
      },
      VOCAB,
    );
    expect(request.maxTokens).toBe(7);
    expect(request.options).toEqual({});
    expect(request.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "a\nb" },
      { role: "assistant", content: "" },
    ]);
  });

  it("top_p 0 keeps only the most likely token; include_usage only applies to streams", () => {
    expect(parseChatRequest({ messages, top_p: 0 }, VOCAB).options.topP).toBe(Number.MIN_VALUE);
    expect(parseChatRequest({ messages, stream_options: { include_usage: true } }, VOCAB).includeUsage).toBe(false);
  });

  it("never throws anything but a SERVER_ HaloError, whatever JSON arrives", () => {
    const json = fc.jsonValue({ maxDepth: 3 });
    const body = fc.record(
      {
        messages: fc.oneof(json, fc.array(fc.record({ role: fc.constantFrom("user", "system", "x"), content: json }, { requiredKeys: [] }))),
        temperature: json,
        top_p: json,
        top_k: json,
        max_tokens: json,
        stop: json,
        logit_bias: json,
        seed: json,
        n: json,
        stream: json,
        stream_options: json,
        logprobs: json,
        top_logprobs: json,
        tools: json,
        response_format: json,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(body, (candidate) => {
        try {
          parseChatRequest(candidate as Record<string, unknown>, VOCAB);
        } catch (error) {
          return isHaloError(error) && /^SERVER_(BAD_REQUEST|UNSUPPORTED|UNKNOWN_FIELD)$/.test(error.code) && typeof error.field === "string";
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseCompletionRequest", () => {
  it("accepts a string, a one-string array, token ids and a one-array nesting", () => {
    expect(parseCompletionRequest({ prompt: "x" }, VOCAB).prompt).toBe("x");
    expect(parseCompletionRequest({ prompt: ["x"] }, VOCAB).prompt).toBe("x");
    expect(parseCompletionRequest({ prompt: [1, 2] }, VOCAB).prompt).toEqual([1, 2]);
    expect(parseCompletionRequest({ prompt: [[1, 2]] }, VOCAB).prompt).toEqual([1, 2]);
    expect(parseCompletionRequest({ prompt: "x", echo: true, logprobs: 3 }, VOCAB)).toMatchObject({ echo: true, logprobs: true, topLogprobs: 3 });
  });

  it("refuses token ids outside the vocabulary and several prompts", () => {
    expect(() => parseCompletionRequest({ prompt: [1, VOCAB] }, VOCAB)).toThrow(/token ids in \[0, 512\)/);
    expect(() => parseCompletionRequest({ prompt: ["a", "b"] }, VOCAB)).toThrow(/several prompts/);
  });
});

describe("ignoredFieldsHeader", () => {
  it("lists each field once and cuts the list at IGNORED_FIELDS_HEADER_BYTES with the count left out", () => {
    expect(ignoredFieldsHeader(["store", "messages[*].name", "store", "messages[*].name"])).toBe("store, messages[*].name");
    const fields = Array.from({ length: 500 }, (_, i) => `field_${i}`);
    const header = ignoredFieldsHeader(fields);
    const shown = header.split(", ").filter((f) => f.startsWith("field_")).length;
    expect(Buffer.byteLength(header)).toBeLessThanOrEqual(IGNORED_FIELDS_HEADER_BYTES + 32);
    expect(header.endsWith(`, …and ${500 - shown} more`)).toBe(true);
    expect(shown).toBeGreaterThan(50);
  });
});
