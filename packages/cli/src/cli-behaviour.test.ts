// The CLI as a finished tool: versions, "did you mean", one error format, typed help, quiet broken pipes, serve failing before it listens.
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { quietOnBrokenPipe } from "./broken-pipe.js";
import { main, mainHelp } from "./main.js";
import { captureOutput } from "../test/capture.js";
import { bundleBin } from "../test/built-bin.js";

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let dir: string;
let modelPath: string;

function capture(env: Record<string, string> = {}) {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_HUB_CACHE: join(dir, "hf"), HF_ENDPOINT: "http://127.0.0.1:1", ...env });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-cli-behaviour-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 11 }), modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("halo --version", () => {
  it("prints the CLI's version, then every @halo package it runs with", async () => {
    const cliVersion = (JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string }).version;
    const engineVersion = (JSON.parse(readFileSync(join(packageDir, "..", "engine", "package.json"), "utf8")) as { version: string }).version;
    for (const flag of ["--version", "-V"]) {
      const c = capture();
      expect(await main([flag], c.ctx)).toBe(0);
      const lines = c.out.join("").split("\n");
      expect(lines[0]).toBe(`halo ${cliVersion}`);
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^  @halo/engine +${engineVersion.replace(/\./g, "\\.")}$`)));
      // Reached through the engine, not the CLI's own dependencies.
      expect(lines).toContainEqual(expect.stringMatching(/^ {2}@halo\/tokenizer +\d+\.\d+\.\d+/));
      expect(lines).toContainEqual(expect.stringMatching(/^ {2}@halo\/sampler +\d+\.\d+\.\d+/));
      expect(lines).toContainEqual(`  ${"node".padEnd(lines.find((l) => l.includes("@halo/engine"))!.indexOf(engineVersion) - 2)}${process.versions.node}`);
    }
    expect(mainHelp()).toMatch(/--version/);
  });
});

describe("did you mean", () => {
  it("suggests the command a typo meant, in the one error format", async () => {
    const c = capture();
    expect(await main(["rn", "hi"], c.ctx)).toBe(2);
    expect(c.err.join("")).toMatch(/^halo: unknown command "rn"\. Did you mean `halo run`\? Commands: generate, .*\[CLI_USAGE\]\n$/);
    const far = capture();
    expect(await main(["frobnicate"], far.ctx)).toBe(2);
    expect(far.err.join("")).not.toMatch(/Did you mean/);
    expect(far.err.join("")).toMatch(/^halo: unknown command "frobnicate"\. Commands: .*\[CLI_USAGE\]\n$/);
  });

  it("suggests the flag a typo or a snake_case spelling meant", async () => {
    const typo = capture();
    expect(await main(["run", "--model", modelPath, "--temprature", "0", "hi"], typo.ctx)).toBe(2);
    expect(typo.err.join("")).toBe("halo run: unknown flag --temprature. Did you mean --temperature? Run `halo run --help` for its flags [CLI_USAGE]\n");
    const snake = capture();
    expect(await main(["bench", "--model", modelPath, "--prompt_tokens", "8"], snake.ctx)).toBe(2);
    expect(snake.err.join("")).toMatch(/unknown flag --prompt_tokens\. Did you mean --prompt-tokens\?/);
    const missing = capture();
    expect(await main(["run", "hi", "--model"], missing.ctx)).toBe(2);
    expect(missing.err.join("")).toBe("halo run: --model needs a value (<path|owner/name>). Run `halo run --help` for its flags [CLI_USAGE]\n");
  });
});

describe("one error format", () => {
  it("names the command once, whatever threw", async () => {
    const cases: [string[], RegExp][] = [
      [["run", "--model", modelPath], /^halo run: no prompt\. Give one/],
      [["run", "--model", modelPath, "--threads", "x", "hi"], /^halo run: --threads must be a whole number/],
      [["pull"], /^halo pull: which model\?/],
      [["eval", "--model", modelPath, "--tokens", "1,x", "--logits-out", join(dir, "l")], /^halo eval: --tokens must be/],
      [["serve", "--demo", "--model", modelPath], /^halo serve: --demo and --model exclude each other/],
      [["generate", "--model", modelPath], /^halo generate: --prompt is required/],
      [["bench", "--model", modelPath, "--kv-dtype", "q4"], /^halo bench: --kv-dtype must be/],
    ];
    for (const [argv, pattern] of cases) {
      const c = capture();
      expect(await main(argv, c.ctx), argv.join(" ")).toBe(2);
      const text = c.err.join("");
      expect(text, argv.join(" ")).toMatch(pattern);
      expect(text, argv.join(" ")).toMatch(/ \[CLI_USAGE\]\n$/);
      expect(text.match(/halo [a-z]+:/g), argv.join(" ")).toHaveLength(1);
    }
  });

  it("inspect, convert and verify (h1b's commands) print their errors the same way", async () => {
    writeFileSync(join(dir, "junk.halo"), "junk");
    const junk = capture();
    expect(await main(["verify", join(dir, "junk.halo")], junk.ctx)).toBe(1);
    expect(junk.err.join("")).toMatch(/^halo verify: file ends inside the \.halo preamble .*\[H1B_TRUNCATED\]\n$/);
    const noPath = capture();
    expect(await main(["inspect"], noPath.ctx)).toBe(2);
    expect(noPath.err.join("")).toMatch(
      /^halo inspect: halo inspect takes one path; .*Run `halo inspect --help` for usage and examples \[H1B_BAD_ARGUMENT\]\n$/,
    );
    const flag = capture();
    expect(await main(["inspect", modelPath, "--frobnicate"], flag.ctx)).toBe(2);
    expect(flag.err.join("")).toBe("halo inspect: unknown flag --frobnicate. Run `halo inspect --help` for its flags [CLI_USAGE]\n");
  });

  it("no message thrown in the CLI's sources starts with `halo <command>:` itself (main.ts adds it)", () => {
    const sources: string[] = [];
    const walk = (path: string): void => {
      for (const entry of readdirSync(path, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(path, entry.name));
        else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) sources.push(join(path, entry.name));
      }
    };
    walk(join(packageDir, "src"));
    const offenders = sources.flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/new HaloError\(\s*[\w.]+,\s*[`"]halo (\$\{\w+\}|[a-z-]+):/g)].map((m) => `${file}: ${m[0]}`),
    );
    expect(offenders).toEqual([]);
  });
});

describe("help", () => {
  it("shows a typed placeholder for every flag that takes a value", async () => {
    const commands = mainHelp()
      .split("Commands:\n")[1]!
      .split("\n\n")[0]!
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[0]!)
      // inspect, convert and verify print h1b's own help, which has its own placeholders
      .filter((name) => !["inspect", "convert", "verify"].includes(name));
    expect(commands).toContain("models");
    const helps: Record<string, string> = {};
    for (const name of commands) {
      const c = capture();
      expect(await main([name, "--help"], c.ctx), name).toBe(0);
      helps[name] = c.out.join("");
      expect(helps[name], name).not.toContain("<value>");
    }
    expect(helps["run"]).toMatch(/--max-tokens <n>/);
    expect(helps["run"]).toMatch(/--temperature <float>/);
    expect(helps["run"]).toMatch(/--model <path\|owner\/name>/);
    expect(helps["serve"]).toMatch(/--port <port>/);
    expect(helps["bench"]).toMatch(/--prompt-tokens <n>/);
  });
});

describe("halo serve", () => {
  it("fails before it says it listens when the model does not open", async () => {
    const missing = capture();
    expect(await main(["serve", "--model", join(dir, "nope.halo"), "--port", "0"], missing.ctx)).toBe(1);
    expect(missing.out.join("")).toBe("");
    expect(missing.err.join("")).toMatch(/^halo serve: model path does not exist .*\[H1B_MISSING_FILE\]\n$/);
    writeFileSync(join(dir, "junk.halo"), "not a model at all");
    const junk = capture();
    expect(await main(["serve", "--model", join(dir, "junk.halo"), "--port", "0"], junk.ctx)).toBe(1);
    expect(junk.out.join("")).toBe("");
    expect(junk.err.join("")).toMatch(/^halo serve: .*\[H1B_[A-Z_]+\]\n$/);
  });
});

describe("a closed stdout (halo … | head)", () => {
  it("ends the process quietly on EPIPE and never throws from write", () => {
    const stream = Object.assign(new EventEmitter(), {
      written: [] as string[],
      fail: false,
      write(text: string): boolean {
        if (this.fail) throw Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
        this.written.push(text);
        return true;
      },
    });
    const exits: number[] = [];
    const out = quietOnBrokenPipe(stream, (code) => exits.push(code));
    out.write("a");
    stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    expect(exits).toEqual([0]);
    expect(out.write("b")).toBe(false);
    expect(stream.written).toEqual(["a"]);
    const second = Object.assign(new EventEmitter(), { fail: true, write: stream.write });
    const exits2: number[] = [];
    expect(quietOnBrokenPipe(second, (code) => exits2.push(code)).write("x")).toBe(false);
    expect(exits2).toEqual([0]);
    expect(() => stream.emit("error", Object.assign(new Error("disk on fire"), { code: "EIO" }))).toThrow(/disk on fire/);
  });

  it("the built binary exits 0 without a stack trace when its reader is gone before it writes (run and inspect)", async () => {
    const built = bundleBin("bin-test");
    try {
      // Close the read end of the child's stdout at once, before the child has started (let alone written):
      // its first write then fails with EPIPE, however little it prints (the tiny model's tensors fit a pipe buffer).
      const closedBeforeFirstWrite = (args: string[]): Promise<{ code: number | null; stderr: string }> =>
        new Promise((resolveRun) => {
          const child = spawn(process.execPath, [built.bin, ...args], {
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, HF_ENDPOINT: "http://127.0.0.1:1" },
          });
          child.stdout.destroy();
          let stderr = "";
          child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
          child.on("close", (code) => resolveRun({ code, stderr }));
        });
      for (const args of [
        ["run", "--model", modelPath, "--backend", "reference", "-t", "0", "-n", "200", "--raw", "Once upon a time"],
        ["inspect", modelPath, "--tensors"],
      ]) {
        const result = await closedBeforeFirstWrite(args);
        expect(result.stderr, args[0]).not.toMatch(/EPIPE|Error|at /);
        expect(result.code, args[0]).toBe(0);
      }
    } finally {
      built.remove();
    }
  }, 120_000);
});
