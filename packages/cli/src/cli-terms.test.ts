// Engine errors on the command line name flags, not JavaScript options, and a bad flag value is a usage error.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { inCliTerms } from "./cli-terms.js";
import { main } from "./main.js";
import { captureOutput } from "../test/capture.js";

let dir: string;
let modelPath: string;

function capture() {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_ENDPOINT: "http://127.0.0.1:1" });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-cli-terms-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 11 }), modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("inCliTerms", () => {
  it("writes option names as flags", () => {
    expect(inCliTerms('… or pass backend: "reference"')).toBe("… or pass --backend reference");
    expect(inCliTerms("contextLength must be a whole number in [2, 512] (field contextLength)")).toBe("--context-length must be a whole number in [2, 512] (field --context-length)");
    expect(inCliTerms("Shorten it, or load the model with a larger contextLength")).toBe("Shorten it, or pass a larger --context-length");
    expect(inCliTerms("maxSequences, lmHead, kvDtype, maxTokens, chatTemplate, contextShift; verify: false")).toBe(
      "--parallel, --lm-head, --kv-dtype, --max-tokens, --chat-template, --context-shift; --no-verify",
    );
    expect(inCliTerms("threads must be a whole number (field threads)")).toBe("--threads must be a whole number (field --threads)");
    // A plain word stays a word; an option no flag sets says so.
    expect(inCliTerms("runs on 4 threads")).toBe("runs on 4 threads");
    expect(inCliTerms("templateVariables cannot set messages")).toMatch(/^template variables \(no halo flag sets them\) cannot/);
  });
});

describe("engine errors on the command line", () => {
  it("--context-length beyond the model's context is a usage error (exit 2) in flag terms", async () => {
    const c = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--context-length", "4096", "hi"], c.ctx)).toBe(2);
    const text = c.err.join("");
    expect(text).toMatch(/^halo run: --context-length must be a whole number in \[2, 512\].*\[ENGINE_BAD_OPTION\]\n$/);
    expect(text).not.toMatch(/contextLength/);
  });

  it("a prompt too long for the context says to pass a larger --context-length", async () => {
    const c = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--context-length", "4", "hello there, how are you doing today?"], c.ctx)).toBe(1);
    const text = c.err.join("");
    expect(text).toMatch(/pass a larger --context-length \[ENGINE_CONTEXT_OVERFLOW\]\n$/);
    expect(text).not.toMatch(/contextLength/);
  });

  it("--backend reference with --lm-head int8 names the flags", async () => {
    const c = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--lm-head", "int8", "hi"], c.ctx)).toBe(1);
    const text = c.err.join("");
    expect(text).toMatch(/--lm-head int8 needs the cpu backend/);
    expect(text).toMatch(/--backend reference \[ENGINE_NO_BACKEND\]\n$/);
    expect(text).not.toMatch(/backend: "|lmHead/);
  });

  it("serve refuses --context-length beyond the model's context before it listens", async () => {
    for (const args of [["--model", modelPath], ["--demo"]]) {
      const c = capture();
      expect(await main(["serve", ...args, "--port", "0", "--context-length", "4096"], c.ctx)).toBe(2);
      expect(c.out.join("")).not.toMatch(/listening/);
      expect(c.err.join("")).toMatch(/^halo serve: --context-length is larger than the model's context.*expected at most 512.*found 4096.*\[CLI_USAGE\]\n$/);
    }
  });
});
