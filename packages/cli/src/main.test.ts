import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { loadModel } from "@halo/engine";
import { main, parseTokenList } from "./index.js";
import { captureOutput } from "../test/capture.js";

let dir: string;
let modelPath: string;

function capture() {
  return captureOutput({});
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-cli-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 11 }), modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("halo eval", () => {
  it("writes float32 logits [n][vocab] equal to the engine's", async () => {
    const { out, ctx } = capture();
    const logitsPath = join(dir, "logits.f32");
    const code = await main(["eval", "--model", modelPath, "--tokens", "506,72,101,108", "--logits-out", logitsPath, "--backend", "reference"], ctx);
    expect(code).toBe(0);
    expect(JSON.parse(out.join(""))).toMatchObject({ tokens: 4, vocab: 512, rows: 4 });
    const bytes = readFileSync(logitsPath);
    expect(bytes.length).toBe(4 * 512 * 4);
    const written = new Float32Array(bytes.buffer, bytes.byteOffset, 4 * 512);
    const engine = await loadModel(modelPath, { backend: "reference" });
    const chunks: Float32Array[] = [];
    await engine.evaluate([506, 72, 101, 108], (l) => {
      chunks.push(l);
    });
    engine.dispose();
    const expected = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      expected.set(c, offset);
      offset += c.length;
    }
    expect(Array.from(written)).toEqual(Array.from(expected));
  });

  it("rejects malformed token lists and missing flags with usage errors", async () => {
    expect(() => parseTokenList("1,x,3")).toThrow(/--tokens/);
    const { err, ctx } = capture();
    expect(await main(["eval", "--model", modelPath, "--tokens", "1,-2", "--logits-out", join(dir, "x")], ctx)).toBe(2);
    expect(err.join("")).toMatch(/CLI_USAGE/);
    const second = capture();
    expect(await main(["eval", "--model", modelPath], second.ctx)).toBe(2);
    expect(second.err.join("")).toMatch(/--tokens is required/);
  });
});

describe("halo generate", () => {
  it("streams greedy text identical to the engine's", async () => {
    const { out, ctx } = capture();
    const code = await main(["generate", "--model", modelPath, "--prompt", "Hello", "--max-tokens", "8", "--temperature", "0", "--backend", "reference"], ctx);
    expect(code).toBe(0);
    const engine = await loadModel(modelPath, { backend: "reference" });
    let text = "";
    for await (const e of engine.complete("Hello", { maxTokens: 8, temperature: 0 })) if (e.type === "request-end") text = e.text;
    engine.dispose();
    expect(out.join("")).toBe(`${text}\n`);
  });

  it("gives one-line errors with codes and the right exit codes", async () => {
    const missing = capture();
    expect(await main(["generate", "--model", join(dir, "nope.halo"), "--prompt", "x"], missing.ctx)).toBe(1);
    expect(missing.err.join("")).toMatch(/^halo generate: .*H1B_MISSING_FILE\]\n$/);
    const threads = capture();
    expect(await main(["generate", "--model", modelPath, "--prompt", "x", "--threads", "abc"], threads.ctx)).toBe(2);
    expect(threads.err.join("")).toMatch(/--threads must be a whole number/);
    const unknown = capture();
    expect(await main(["frobnicate"], unknown.ctx)).toBe(2);
    expect(unknown.err.join("")).toMatch(/unknown command/);
    const help = capture();
    expect(await main(["generate", "--help"], help.ctx)).toBe(0);
    expect(help.out.join("")).toMatch(/Examples:/);
  });
});
