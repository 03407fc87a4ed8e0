// Speculative decoding through the server: the per-request `speculative` field, its counters in the answer, /metrics and /_live/stats.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Engine } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { createServer, silentLogger, type HaloServer } from "./index.js";
import { parseChatRequest, parseCompletionRequest } from "./parse-request.js";
import { postJson, readSseRecords } from "../test/tiny-server.js";

// A prompt that repeats itself: the n-gram drafter finds continuations in it, so requests draft from the first step.
const PROMPT = Array.from({ length: 40 }, (_, i) => 10 + (i % 7));
const GREEDY = { prompt: PROMPT, max_tokens: 48, temperature: 0, ignore_eos: true };

interface Completion {
  readonly choices: Array<{ text: string; finish_reason: string }>;
  readonly usage: { completion_tokens: number };
  readonly halo: {
    context_tokens: number;
    speculative?: {
      drafter: string;
      decode_steps: number;
      verify_steps: number;
      drafted_tokens: number;
      accepted_tokens: number;
      acceptance_rate: number;
      tokens_per_step: number;
    };
  };
}

interface ErrorBody {
  readonly error: { message: string; type: string; param: string | null; code: string; halo_code: string };
}

async function serve(engine: Engine): Promise<{ app: HaloServer; url: string }> {
  const app = createServer({ engine, logger: silentLogger, modelId: "tiny" });
  const { url } = await app.listen(0, "127.0.0.1");
  return { app, url };
}

/** The value of an unlabelled sample of `name` in a Prometheus exposition, or undefined when absent. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("the speculative request field", () => {
  it("reads false, true and { max_draft, policy } into the engine's option; null or absent leaves it out", () => {
    const chat = (speculative: unknown) => parseChatRequest({ messages: [{ role: "user", content: "hi" }], speculative }, 512).options.speculative;
    expect(chat(false)).toBe(false);
    expect(chat(true)).toBe(true);
    expect(chat({ max_draft: 2, policy: "always" })).toEqual({ maxDraft: 2, policy: "always" });
    expect(chat({})).toEqual({});
    expect(chat(null)).toBeUndefined();
    expect(parseCompletionRequest({ prompt: "x" }, 512).options.speculative).toBeUndefined();
    expect(parseCompletionRequest({ prompt: "x", speculative: { max_draft: 6 } }, 512).options.speculative).toEqual({ maxDraft: 6 });
  });

  it("refuses a wrong value naming the field", () => {
    const cases: Array<[unknown, string]> = [
      ["yes", "speculative"],
      [[1], "speculative"],
      [{ max_draft: 0 }, "speculative.max_draft"],
      [{ max_draft: 2.5 }, "speculative.max_draft"],
      [{ policy: "sometimes" }, "speculative.policy"],
      [{ drafter: "ngram" }, "speculative.drafter"],
    ];
    for (const [value, field] of cases) {
      let thrown: { field?: string; code?: string } | undefined;
      try {
        parseCompletionRequest({ prompt: "x", speculative: value }, 512);
      } catch (error) {
        thrown = error as { field?: string; code?: string };
      }
      expect(thrown?.field, JSON.stringify(value)).toBe(field);
      expect(thrown?.code, JSON.stringify(value)).toMatch(/^SERVER_(BAD_REQUEST|UNKNOWN_FIELD)$/);
    }
  });
});

describe("a server whose model drafts with n-grams", () => {
  let engine: Engine;
  let app: HaloServer;
  let url: string;
  beforeAll(async () => {
    engine = await loadModel(synthModel({ seed: 3 }), {
      backend: "reference",
      contextLength: 256,
      maxSequences: 2,
      speculative: { drafter: "ngram", policy: "always" },
    });
    ({ app, url } = await serve(engine));
  });
  afterAll(async () => {
    await app.close({ graceMs: 2000 });
    engine.dispose();
  });

  it("answers speculative: false with the same greedy text as the default (which drafts), and reports the counters in halo.speculative", async () => {
    const drafted = (await (await postJson(`${url}/v1/completions`, GREEDY)).json()) as Completion;
    const plain = (await (await postJson(`${url}/v1/completions`, { ...GREEDY, speculative: false })).json()) as Completion;
    const shorter = (await (await postJson(`${url}/v1/completions`, { ...GREEDY, speculative: { max_draft: 1 } })).json()) as Completion;
    expect(drafted.usage.completion_tokens).toBe(48);
    expect(plain.choices[0]!.text).toBe(drafted.choices[0]!.text);
    expect(shorter.choices[0]!.text).toBe(drafted.choices[0]!.text);
    expect(plain.halo.speculative).toBeUndefined();
    const s = drafted.halo.speculative!;
    expect(s.drafter).toBe("ngram");
    expect(s.drafted_tokens).toBeGreaterThan(0);
    expect(s.accepted_tokens).toBeGreaterThan(0);
    expect(s.accepted_tokens).toBeLessThanOrEqual(s.drafted_tokens);
    expect(s.acceptance_rate).toBeCloseTo(s.accepted_tokens / s.drafted_tokens, 10);
    // Fewer steps than tokens: every accepted draft saved one.
    expect(s.decode_steps).toBeLessThan(48);
    expect(s.tokens_per_step).toBeGreaterThan(1);
    expect(s.verify_steps).toBeGreaterThan(0);
    // max_draft 1 drafts at most one token per verifying step.
    expect(shorter.halo.speculative!.drafted_tokens).toBeLessThanOrEqual(shorter.halo.speculative!.verify_steps);
  });

  it("reports the counters in a chat stream's finish chunk and in its usage chunk (include_usage)", async () => {
    const body = { messages: [{ role: "user", content: "ab ab ab ab ab ab ab ab ab" }], max_tokens: 24, temperature: 0, ignore_eos: true };
    const response = await postJson(`${url}/v1/chat/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
    const records = await readSseRecords(response);
    expect(records.at(-1)).toBe("[DONE]");
    const chunks = records.slice(0, -1).map((r) => JSON.parse(r) as Record<string, unknown>);
    const finish = chunks.find((c) => (c["choices"] as Array<{ finish_reason: string | null }>)[0]?.finish_reason != null)!;
    const usage = chunks.at(-1)! as { usage: { completion_tokens: number }; halo: { speculative: { decode_steps: number; drafter: string } } };
    expect((finish["halo"] as { speculative: unknown }).speculative).toEqual(usage.halo.speculative);
    expect(usage.halo.speculative.drafter).toBe("ngram");
    expect(usage.usage.completion_tokens).toBe(24);
    expect(usage.halo.speculative.decode_steps).toBeGreaterThan(0);
    // The same chat without drafting streams the same text.
    const text = (list: Array<Record<string, unknown>>): string =>
      list.map((c) => (c["choices"] as Array<{ delta?: { content?: string } }>)[0]?.delta?.content ?? "").join("");
    const plain = await readSseRecords(await postJson(`${url}/v1/chat/completions`, { ...body, stream: true, speculative: false }));
    expect(text(plain.slice(0, -1).map((r) => JSON.parse(r) as Record<string, unknown>))).toBe(text(chunks));
  });

  it("exposes the drafter's counters and rates on /metrics, matching the engine's", async () => {
    await (await postJson(`${url}/v1/completions`, GREEDY)).json();
    const text = await (await fetch(`${url}/metrics`)).text();
    const stats = engine.stats().speculative!;
    expect(stats.draftedTokens).toBeGreaterThan(0);
    expect(sample(text, "halo_speculative_drafted_tokens_total")).toBe(stats.draftedTokens);
    expect(sample(text, "halo_speculative_accepted_tokens_total")).toBe(stats.acceptedTokens);
    expect(sample(text, "halo_speculative_verify_steps_total")).toBe(stats.verifySteps);
    expect(sample(text, "halo_speculative_decode_steps_total")).toBe(stats.decodeSteps);
    expect(sample(text, "halo_speculative_acceptance_ratio")).toBeCloseTo(stats.acceptanceRate, 10);
    expect(sample(text, "halo_speculative_tokens_per_step")).toBeCloseTo(stats.tokensPerStep, 10);
    expect(text).toContain('halo_speculative_info{drafter="ngram",label="ngram 2-4"} 1');
    expect(text).toMatch(/# TYPE halo_speculative_drafted_tokens_total counter/);
    // A second scrape after more work shows the counters grown, not doubled.
    await (await postJson(`${url}/v1/completions`, GREEDY)).json();
    const again = await (await fetch(`${url}/metrics`)).text();
    expect(sample(again, "halo_speculative_drafted_tokens_total")).toBe(engine.stats().speculative!.draftedTokens);
  });

  it("shows the drafter, acceptance and tokens per step in the stats snapshot (/_live/stats)", async () => {
    await (await postJson(`${url}/v1/completions`, GREEDY)).json();
    const s = app.stats().speculative!;
    expect(s.drafter).toBe("ngram");
    expect(s.label).toBe("ngram 2-4");
    expect(s.draftedTokens).toBeGreaterThan(0);
    expect(s.acceptanceRate).toBeCloseTo(s.acceptedTokens / s.draftedTokens, 10);
    expect(s.tokensPerStep).toBeGreaterThan(1);
    const controller = new AbortController();
    const response = await fetch(`${url}/_live/stats`, { signal: controller.signal });
    const reader = response.body!.getReader();
    let text = "";
    while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const record = JSON.parse(
      text
        .split("\n")
        .find((l) => l.startsWith("data: "))!
        .slice(6),
    ) as { speculative: { label: string; tokensPerStep: number } };
    expect(record.speculative.label).toBe("ngram 2-4");
    expect(record.speculative.tokensPerStep).toBeGreaterThan(1);
  });

  it("answers a max_draft above the engine's limit with 400 in OpenAI's shape, param speculative.max_draft", async () => {
    const response = await postJson(`${url}/v1/completions`, { ...GREEDY, speculative: { max_draft: 1000 } });
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorBody;
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.param).toBe("speculative.max_draft");
    expect(body.error.halo_code).toBe("SPECULATIVE_BAD_OPTION");
    expect(body.error.message).toMatch(/max_draft/);
    expect(body.error.message).not.toMatch(/maxDraft/);
  });

  it("answers a malformed speculative field with 400 naming it", async () => {
    for (const [speculative, param, code] of [
      ["on", "speculative", "invalid_value"],
      [{ policy: "never" }, "speculative.policy", "invalid_value"],
      [{ max_draft: 2, draft: 1 }, "speculative.draft", "unknown_field"],
    ] as const) {
      const response = await postJson(`${url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }], speculative });
      expect(response.status, JSON.stringify(speculative)).toBe(400);
      const body = (await response.json()) as ErrorBody;
      expect(body.error.param).toBe(param);
      expect(body.error.code).toBe(code);
      expect(body.error.type).toBe("invalid_request_error");
    }
  });
});

describe("a server whose model runs without a drafter", () => {
  let engine: Engine;
  let app: HaloServer;
  let url: string;
  beforeAll(async () => {
    engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 256, maxSequences: 1 });
    ({ app, url } = await serve(engine));
  });
  afterAll(async () => {
    await app.close({ graceMs: 2000 });
    engine.dispose();
  });

  it("accepts speculative: false, refuses true or an object with 400, and has no speculative metrics or stats", async () => {
    const plain = await postJson(`${url}/v1/completions`, { ...GREEDY, max_tokens: 4, speculative: false });
    expect(plain.status).toBe(200);
    expect(((await plain.json()) as Completion).halo.speculative).toBeUndefined();
    for (const speculative of [true, { max_draft: 2 }]) {
      const response = await postJson(`${url}/v1/completions`, { ...GREEDY, max_tokens: 4, speculative });
      expect(response.status).toBe(400);
      const body = (await response.json()) as ErrorBody;
      expect(body.error.param).toBe("speculative");
      expect(body.error.halo_code).toBe("SERVER_BAD_REQUEST");
      expect(body.error.message).toMatch(/without a drafter/);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toMatch(/halo_speculative_/);
    expect(app.stats().speculative).toBeNull();
  });
});
