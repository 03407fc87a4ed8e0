import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { main } from "../main.js";
import { DEMO_MODEL_ID, serveCommand } from "./serve.js";
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

describe("halo serve", () => {
  it("--demo serves a tiny random-weights model, says so, answers the API and stops gracefully", async () => {
    const { out, err, ctx } = capture();
    const stop = new AbortController();
    const running = serveCommand(["--demo", "--port", "0", "--parallel", "2"], ctx, stop.signal);
    const url = await readyUrl(out);
    expect(out[0]).toMatch(/^halo serve: listening on http:\/\/127\.0\.0\.1:\d+ — loading the demo model \(demo: random weights/);
    expect(out.join("")).toContain(`model "${DEMO_MODEL_ID}"`);
    expect(out.join("")).toContain("2 parallel");
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; meta: { label: string } }> };
    expect(models.data[0]).toMatchObject({ id: DEMO_MODEL_ID, meta: { label: expect.stringContaining("random weights") } });
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
      .join("")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l["msg"] === "request" && l["path"] === "/v1/chat/completions" && typeof l["requestId"] === "string")).toBe(true);
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
