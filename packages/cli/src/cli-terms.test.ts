// Engine errors on the command line name flags, not JavaScript options, and a bad flag value is a usage error.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openModel, synthModel, writeHalo } from "@halo/h1b-format";
import { tinyModelPath } from "@halo/model-tiny";
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
    expect(inCliTerms("contextLength must be a whole number in [2, 512] (field contextLength)")).toBe(
      "--context-length must be a whole number in [2, 512] (field --context-length)",
    );
    expect(inCliTerms("Shorten it, or load the model with a larger contextLength")).toBe("Shorten it, or pass a larger --context-length");
    expect(inCliTerms("maxSequences, kvDtype, maxTokens, chatTemplate, contextShift; verify: false")).toBe(
      "--parallel, --kv-dtype, --max-tokens, --chat-template, --context-shift; --no-verify",
    );
    // A command's own flag for an option: bench's --batch sets maxSequences.
    expect(inCliTerms("maxSequences out of range (field maxSequences)", "bench")).toBe("--batch out of range (field --batch)");
    // A backend's option is not a load option: only its backendOptions path names a flag.
    expect(inCliTerms("runs on 4 threads (field cpu.threads)")).toBe("runs on 4 threads (field cpu.threads)");
    // An option no flag sets says so.
    expect(inCliTerms("templateVariables cannot set messages")).toMatch(/^template variables \(no halo flag sets them\) cannot/);
  });

  it("writes backend options as the flags that set them", () => {
    expect(inCliTerms("pass backendOptions.cpu.threads and backendOptions.cpu.lmHead")).toBe("pass --threads and --lm-head");
    expect(inCliTerms("backendOptions.cpu.isa (field backendOptions.cpu)")).toBe(
      "--backend-option cpu.isa (field --threads / --lm-head / --backend-option cpu.…)",
    );
    expect(inCliTerms("backendOptions.hip.device must be a number (field backendOptions.hip)")).toBe(
      "--backend-option hip.device must be a number (field --backend-option hip.…)",
    );
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
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--context-length", "4", "hello there, how are you doing today?"], c.ctx)).toBe(
      1,
    );
    const text = c.err.join("");
    expect(text).toMatch(/pass a larger --context-length \[ENGINE_CONTEXT_OVERFLOW\]\n$/);
    expect(text).not.toMatch(/contextLength/);
  });

  it("--lm-head goes to the cpu backend, which refuses a bad storage as a usage error in flag terms; on another backend it is reported unused", async () => {
    const bad = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "cpu", "--lm-head", "q4", "hi"], bad.ctx)).toBe(2);
    const text = bad.err.join("");
    expect(text).toMatch(/^halo run: --lm-head: unknown LM head storage \(field (cpu\.)?lmHead\); expected f16, int8, int4; found q4 \[CLI_USAGE\]\n$/);
    const unused = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--lm-head", "int8", "--max-tokens", "2", "hi"], unused.ctx)).toBe(0);
    expect(unused.err.join("")).toMatch(/halo run: --lm-head applies to the cpu backend, which does not run here \(the reference backend runs\): not used\n/);
    // The same option set with --backend-option is named as that flag.
    const viaOption = capture();
    expect(
      await main(["run", "--model", modelPath, "--backend", "reference", "--backend-option", "cpu.lmHead=int8", "--max-tokens", "2", "hi"], viaOption.ctx),
    ).toBe(0);
    expect(viaOption.err.join("")).toMatch(/halo run: --backend-option cpu\.lmHead applies to the cpu backend/);
  });

  it("--backend-option passes name.key=value to that backend (JSON values) and its refusal names the flag", async () => {
    const ok = capture();
    expect(
      await main(["run", "--model", modelPath, "--backend", "reference", "--backend-option", "reference.splitKvTile=16", "--max-tokens", "2", "hi"], ok.ctx),
    ).toBe(0);
    const bad = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "--backend-option", "reference.splitKvTlie=16", "hi"], bad.ctx)).toBe(2);
    expect(bad.err.join("")).toMatch(/^halo run: --backend-option reference\.splitKvTlie: the reference backend has no option "splitKvTlie".*\[CLI_USAGE\]\n$/);
    const unknown = capture();
    expect(await main(["run", "--model", modelPath, "--backend-option", "nosuch.key=1", "hi"], unknown.ctx)).toBe(2);
    expect(unknown.err.join("")).toMatch(
      /--backend-option nosuch\.…: .*names no installed backend.*expected options of an installed backend: .*reference.*\[CLI_USAGE\]/,
    );
    const twice = capture();
    expect(await main(["run", "--model", modelPath, "--threads", "2", "--backend-option", "cpu.threads=3", "hi"], twice.ctx)).toBe(2);
    expect(twice.err.join("")).toMatch(/cpu\.threads is set twice, by --threads and by --backend-option cpu\.threads/);
    const malformed = capture();
    expect(await main(["run", "--model", modelPath, "--backend-option", "threads=2", "hi"], malformed.ctx)).toBe(2);
    expect(malformed.err.join("")).toMatch(/--backend-option must be name\.key=value/);
  });

  it("serve refuses a backend name no installed backend has, options for one, and a bad option value, before it listens", async () => {
    for (const [args, pattern] of [
      [["--backend", "nosuch"], /^halo serve: --backend: .*no installed backend is named "nosuch".*reference.*\[CLI_USAGE\]\n$/],
      [["--backend-option", "nosuch.key=1"], /^halo serve: --backend-option nosuch\.…: .*names no installed backend.*reference.*\[CLI_USAGE\]\n$/],
      [["--lm-head", "q4"], /^halo serve: --lm-head: .*q4.*\[CLI_USAGE\]\n$/],
      [["--backend-option", "reference.splitKvTlie=2"], /^halo serve: --backend-option reference\.splitKvTlie: .*\[CLI_USAGE\]\n$/],
    ] as const) {
      const c = capture();
      expect(await main(["serve", "--demo", "--port", "0", ...args], c.ctx)).toBe(2);
      expect(c.out.join("")).not.toMatch(/listening/);
      expect(c.err.join("")).toMatch(pattern);
    }
  });

  it("every command that loads a model refuses a bad --lm-head, a bad --backend-option and an unknown --backend before it resolves, opens or verifies the model", async () => {
    // The model does not exist (and --model owner/name would be downloaded from an unreachable hub): the flags fail first.
    const missing = join(dir, "no-such-model.halo");
    const commands: Record<string, string[]> = {
      run: ["run", "--model", missing, "hi"],
      chat: ["chat", "--model", missing],
      bench: ["bench", "--model", missing],
      ppl: ["ppl", "--model", missing, "--text-file", modelPath],
      generate: ["generate", "--model", missing, "--prompt", "hi"],
      eval: ["eval", "--model", missing, "--tokens", "1,2", "--logits-out", join(dir, "logits.bin")],
      serve: ["serve", "--model", "acme/not-downloaded", "--port", "0"],
    };
    const bad: [string[], RegExp][] = [
      [["--lm-head", "q4"], /: --lm-head: .*q4.*\[CLI_USAGE\]\n$/],
      [["--backend-option", 'cpu.lmHead="q4"'], /: --backend-option cpu\.lmHead: .*q4.*\[CLI_USAGE\]\n$/],
      [["--backend-option", "reference.splitKvTlie=2"], /: --backend-option reference\.splitKvTlie: .*\[CLI_USAGE\]\n$/],
      [["--backend-option", "reference.splitKvTile=-1"], /: --backend-option reference\.splitKvTile: .*-1.*\[CLI_USAGE\]\n$/],
      [["--backend", "nosuch"], /: --backend: .*"nosuch".*\[CLI_USAGE\]\n$/],
    ];
    const wrong: string[] = [];
    for (const [command, args] of Object.entries(commands)) {
      for (const [flags, pattern] of bad) {
        const c = capture();
        const code = await main([...args, ...flags], c.ctx);
        const text = c.err.join("");
        if (code !== 2 || !new RegExp(`^halo ${command}` + pattern.source).test(text) || /listening/.test(c.out.join("")))
          wrong.push(`${command} ${flags.join(" ")} → exit ${code}: ${text}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("serve refuses --context-length beyond the model's context before it listens", async () => {
    for (const [args, path] of [
      [["--model", modelPath], modelPath],
      [["--demo"], tinyModelPath],
    ] as const) {
      const model = await openModel(path);
      const max = model.config.maxPositionEmbeddings;
      model.close();
      const c = capture();
      expect(await main(["serve", ...args, "--port", "0", "--context-length", String(max + 1)], c.ctx)).toBe(2);
      expect(c.out.join("")).not.toMatch(/listening/);
      expect(c.err.join("")).toMatch(
        new RegExp(`^halo serve: --context-length is larger than the model's context.*expected at most ${max}.*found ${max + 1}.*\\[CLI_USAGE\\]\n$`),
      );
    }
  });
});
