import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { loadModel } from "@halo/engine";
import { TINY_MODEL, tinyModelPath } from "@halo/model-tiny";
import { main } from "../main.js";
import { DEMO_LABEL, DEMO_MODEL_ID, demoModelPath, serveCommand } from "./serve.js";
import { readyUrl } from "../../test/ready-url.js";
import { captureOutput } from "../../test/capture.js";

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-serve-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 11 }), modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(env: Record<string, string> = {}) {
  return captureOutput(env);
}

/** Words any stretch of English prose is full of. */
const COMMON_WORDS = new Set("the a an of to is and in for that with this be are can by it as or on not if from which".split(" "));
/** Share of an English-like answer's characters that are ASCII letters or spaces (prose with some punctuation and code). */
const MIN_LETTER_SHARE = 0.75;
/** Distinct {@link COMMON_WORDS} an English-like answer of ~24 tokens holds at least. */
const MIN_COMMON_WORDS = 3;

/** How English-like `text` is: its share of ASCII letters and spaces, and the distinct common English words in it. */
function englishness(text: string): { letterShare: number; common: string[] } {
  const letters = [...text].filter((c) => /[A-Za-z ]/.test(c)).length;
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  return { letterShare: text.length === 0 ? 0 : letters / text.length, common: [...new Set(words.filter((w) => COMMON_WORDS.has(w)))] };
}

/** Serves `args` in-process, asks one greedy chat completion of `maxTokens`, stops the server and returns the answer. */
async function askOnce(args: readonly string[], question: string, maxTokens: number): Promise<string> {
  const { out, ctx } = capture();
  const stop = new AbortController();
  const running = serveCommand([...args, "--port", "0", "--log-level", "error"], ctx, stop.signal);
  try {
    const url = await readyUrl(out);
    const chat = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: question }], max_tokens: maxTokens, temperature: 0 }),
    });
    expect(chat.status).toBe(200);
    return ((await chat.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
  } finally {
    stop.abort();
    expect(await running).toBe(0);
  }
}

describe("halo serve", () => {
  it("--demo serves halo-tiny from @halo/model-tiny, says what it is, answers the API and stops gracefully", async () => {
    expect(DEMO_MODEL_ID).toBe("halo-tiny");
    expect(DEMO_LABEL).toBe(TINY_MODEL.label);
    expect(DEMO_LABEL).toMatch(/trained on Python's documentation.*not microsoft\/bitnet-b1\.58-2B-4T/);
    const { out, err, ctx } = capture();
    const stop = new AbortController();
    const running = serveCommand(["--demo", "--port", "0", "--parallel", "2"], ctx, stop.signal);
    const url = await readyUrl(out);
    expect(out[0]).toMatch(/^halo serve: listening on http:\/\/127\.0\.0\.1:\d+ — loading the demo model \(/);
    expect(out[0]).toContain(`loading the demo model (${DEMO_LABEL})`);
    const ready = out.find((l) => l.includes("ready on "))!;
    expect(ready).toContain(`model "${DEMO_MODEL_ID}" (${DEMO_LABEL})`);
    expect(ready).toContain("2 parallel");
    // The default backend choice ("auto"), not a forced reference backend: whatever runs is the one auto picks here,
    // and a backend passed over is said on stderr (the backend notice), never silently.
    const backend = /, (\S+) backend,/.exec(ready)![1]!;
    const auto = await loadModel(tinyModelPath, { contextLength: 32, maxSequences: 1 });
    expect(backend).toBe(auto.backendFactory?.name ?? auto.backend);
    const notices = err.filter((l) => !l.startsWith("{"));
    expect(notices).toEqual(auto.skippedBackends.map((s) => expect.stringContaining(`the ${s.name} backend was not used`)));
    auto.dispose();
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; meta: { label: string } }> };
    expect(models.data[0]).toMatchObject({ id: DEMO_MODEL_ID, meta: { label: DEMO_LABEL } });
    // The chat page shows the label from the live stats feed.
    const live = (await fetch(`${url}/_live/stats`)).body!.getReader();
    expect(new TextDecoder().decode((await live.read()).value)).toContain(`"label":${JSON.stringify(DEMO_LABEL)}`);
    await live.cancel();
    const chat = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: DEMO_MODEL_ID, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    expect(chat.status).toBe(200);
    stop.abort();
    expect(await running).toBe(0);
    expect(out.at(-1)).toBe("halo serve: stopped\n");
    // Logs are JSON lines with request ids.
    const lines = err
      .filter((l) => l.startsWith("{"))
      .join("")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l["msg"] === "request" && l["path"] === "/v1/chat/completions" && typeof l["requestId"] === "string")).toBe(true);
  });

  it("--demo answers English-like text (greedy), where the old random-weights demo model answered noise", async () => {
    const question = "What is a list in Python?";
    const demo = await askOnce(["--demo"], question, 24);
    const demoScore = englishness(demo);
    expect(demoScore.letterShare, demo).toBeGreaterThanOrEqual(MIN_LETTER_SHARE);
    expect(demoScore.common.length, demo).toBeGreaterThanOrEqual(MIN_COMMON_WORDS);
    // The same check refuses a random-weights model (what --demo served before halo-tiny), so it can fail.
    const random = await askOnce(["--model", modelPath, "--backend", "reference"], question, 24);
    const randomScore = englishness(random);
    expect(randomScore.letterShare >= MIN_LETTER_SHARE && randomScore.common.length >= MIN_COMMON_WORDS, random).toBe(false);
  });

  it("a missing demo model file (a broken install) is a typed error saying what to do, before anything listens", async () => {
    const missing = join(dir, "no-such-halo-tiny.halo");
    expect(() => demoModelPath(missing)).toThrow(
      expect.objectContaining({
        code: "MODEL_TINY_FILE_MISSING",
        path: missing,
        actual: "no such file",
        message: expect.stringMatching(/the demo model \(halo-tiny\) is missing.*Reinstall halo \(npm install -g @halo\/cli\).*`pnpm install`/),
      }),
    );
    expect(() => demoModelPath(dir)).toThrow(expect.objectContaining({ code: "MODEL_TINY_FILE_MISSING", actual: "something that is not a file" }));
    expect(demoModelPath()).toBe(tinyModelPath);
  });

  it("--model with API keys from a flag, HALO_API_KEY and a key file", async () => {
    const keyFile = join(dir, "keys.txt");
    writeFileSync(keyFile, "# keys\nsk-file\n");
    const { out, ctx } = capture({ HALO_API_KEY: "sk-env" });
    const stop = new AbortController();
    const running = serveCommand(
      ["--model", modelPath, "--port", "0", "--backend", "reference", "--api-key", "sk-flag", "--api-key-file", keyFile],
      ctx,
      stop.signal,
    );
    const url = await readyUrl(out);
    expect(out[0]).toContain(`loading ${modelPath}; 3 API key(s) required`);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    for (const key of ["sk-flag", "sk-env", "sk-file"]) {
      const models = (await (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: Array<{ id: string }> };
      expect(models.data[0]!.id).toBe("tiny");
    }
    stop.abort();
    expect(await running).toBe(0);
  });

  it("keeps a prefix cache (prompt_tokens_details.cached_tokens, /metrics), and --no-prefix-cache turns it off", async () => {
    const ask = async (url: string): Promise<{ cached: number }> => {
      const answer = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "Tell me about the os module and its path helpers." }], max_tokens: 2 }),
      });
      expect(answer.status).toBe(200);
      return { cached: ((await answer.json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details.cached_tokens };
    };
    for (const off of [false, true]) {
      const { out, ctx } = capture();
      const stop = new AbortController();
      const args = ["--model", modelPath, "--port", "0", "--backend", "reference", "--log-level", "error", ...(off ? ["--no-prefix-cache"] : [])];
      const running = serveCommand(args, ctx, stop.signal);
      const url = await readyUrl(out);
      await ask(url);
      const again = (await ask(url)).cached;
      if (off) expect(again, "--no-prefix-cache").toBe(0);
      else expect(again, "default").toBeGreaterThan(0);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics.includes("halo_prefix_cache_hits_total"), off ? "--no-prefix-cache" : "default").toBe(!off);
      stop.abort();
      expect(await running).toBe(0);
    }
  });

  it("--host 0.0.0.0 prints a loopback URL the Host check accepts, and says how other machines reach it", async () => {
    const { out, ctx } = capture();
    const stop = new AbortController();
    const running = serveCommand(["--demo", "--host", "0.0.0.0", "--port", "0"], ctx, stop.signal);
    const url = await readyUrl(out);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(out.join("")).not.toContain("0.0.0.0");
    expect(out[0]).toContain("a name given with --allowed-host");
    expect(out.join("")).toContain(`Chat page: ${url}/`);
    // The printed page answers: its Host is a loopback address.
    expect((await fetch(`${url}/`)).status).toBe(200);
    stop.abort();
    expect(await running).toBe(0);
  });

  it("refuses --demo with --model, a bad port, and is listed in `halo --help`", async () => {
    const a = capture();
    expect(await main(["serve", "--demo", "--model", modelPath], a.ctx)).toBe(2);
    expect(a.err.join("")).toContain("--demo and --model exclude each other");
    const b = capture();
    expect(await main(["serve", "--demo", "--port", "99999"], b.ctx)).toBe(2);
    const c = capture();
    await main(["--help"], c.ctx);
    expect(c.out.join("")).toMatch(/serve\s+OpenAI-compatible HTTP server/);
  });

  it("--context-shift picks what a chat that fills the context does: drop-oldest (default) answers and says so, error refuses", async () => {
    const conversation: Array<{ role: string; content: string }> = [];
    for (let i = 1; i <= 8; i++) conversation.push({ role: "user", content: `Question number ${i}?` }, { role: "assistant", content: `Answer ${i}.` });
    conversation.push({ role: "user", content: "Last one?" });
    const ask = (url: string): Promise<Response> =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: conversation, max_tokens: 4 }),
      });
    for (const policy of [[], ["--context-shift", "error"]]) {
      const { out, ctx } = capture();
      const stop = new AbortController();
      const running = serveCommand(["--demo", "--port", "0", "--context-length", "64", ...policy], ctx, stop.signal);
      const response = await ask(await readyUrl(out));
      if (policy.length === 0) {
        expect(response.status).toBe(200);
        expect(Number(response.headers.get("x-halo-context-dropped"))).toBeGreaterThan(0);
      } else {
        expect(response.status).toBe(400);
        expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/--context-shift drop-oldest/);
      }
      stop.abort();
      expect(await running).toBe(0);
    }
    const bad = capture();
    expect(await main(["serve", "--demo", "--context-shift", "rotate"], bad.ctx)).toBe(2);
    expect(bad.err.join("")).toMatch(/--context-shift must be drop-oldest or error/);
  });
});
