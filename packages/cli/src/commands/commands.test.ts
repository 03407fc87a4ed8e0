import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, synthModel, writeHalo, writeHfSnapshot } from "@halo/h1b-format";
import { discoverBackends, loadModel, type ChatMessage } from "@halo/engine";
import { startFakeHub, type FakeHub } from "../../test/fake-hub.js";
import { main } from "../index.js";
import { MultiLineReader } from "./chat.js";
import { parseCpuinfo } from "./doctor.js";
import { captureOutput } from "../../test/capture.js";

let dir: string;
let modelPath: string;
let hub: FakeHub;

function capture(env: Record<string, string> = {}, stdin?: PassThrough) {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_ENDPOINT: "http://127.0.0.1:1", ...env }, stdin);
}

async function greedyChat(messages: ChatMessage[], maxTokens: number): Promise<string> {
  const engine = await loadModel(modelPath, { backend: "reference" });
  let text = "";
  for await (const e of engine.chat(messages, { maxTokens, temperature: 0 })) if (e.type === "request-end") text = e.text;
  engine.dispose();
  return text;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-cmd-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 11 }), modelPath);
  await writeHfSnapshot(synthModel({ seed: 5 }), join(dir, "snap"));
  hub = await startFakeHub({ "acme/tiny": { dir: join(dir, "snap") } });
});
afterAll(async () => {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("halo run", () => {
  it("streams the greedy chat answer the engine gives, from arguments or stdin", async () => {
    const expected = await greedyChat([{ role: "user", content: "Hello there" }], 12);
    const a = capture();
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "-t", "0", "-n", "12", "Hello", "there"], a.ctx)).toBe(0);
    expect(a.out.join("")).toBe(`${expected}\n`);
    const stdin = new PassThrough();
    stdin.end("Hello there\n");
    const b = capture({}, stdin);
    expect(await main(["run", "--model", modelPath, "--backend", "reference", "-t", "0", "-n", "12", "--stats"], b.ctx)).toBe(0);
    expect(b.out.join("")).toBe(`${expected}\n`);
    expect(b.err.join("")).toMatch(/tok\/s \(reference backend\)/);
  });

  it("fails in one line: bad flags, missing model, no prompt, offline without a default model", async () => {
    const threads = capture();
    expect(await main(["run", "--model", modelPath, "--threads", "abc", "hi"], threads.ctx)).toBe(2);
    expect(threads.err.join("")).toMatch(/^halo run: .*--threads must be a whole number.*\n$/);
    const missing = capture();
    expect(await main(["run", "--model", join(dir, "nope.halo"), "hi"], missing.ctx)).toBe(1);
    expect(missing.err.join("")).toMatch(/H1B_MISSING_FILE\]\n$/);
    const emptyDir = capture();
    expect(await main(["run", "--model", dir, "hi"], emptyDir.ctx)).toBe(1);
    expect(emptyDir.err.join("")).toMatch(/not a model snapshot/);
    const noPrompt = capture();
    expect(await main(["run", "--model", modelPath], noPrompt.ctx)).toBe(2);
    expect(noPrompt.err.join("")).toMatch(/no prompt/);
    const offline = capture();
    expect(await main(["run", "hi"], offline.ctx)).toBe(1);
    expect(offline.err.join("")).toMatch(/^halo run: no --model given, .*--model <file>.*HF_ENDPOINT.*halo serve --demo.*\[CLI_NO_MODEL\]\n$/);
    expect(offline.err.join("")).not.toMatch(/\n.+/);
  });
});

describe("halo chat", () => {
  it("reads multi-line input with \\ and triple quotes", () => {
    const r = new MultiLineReader();
    expect(r.push("one \\")).toBeUndefined();
    expect(r.pending).toBe(true);
    expect(r.push("two")).toBe("one \ntwo");
    expect(r.push('"""')).toBeUndefined();
    expect(r.push("a")).toBeUndefined();
    expect(r.push("b\\")).toBeUndefined();
    expect(r.push('"""')).toBe("a\nb\\");
    expect(r.pending).toBe(false);
  });

  it("keeps history, honours /system, /reset, /stats and multi-line input over piped stdin", async () => {
    const stdin = new PassThrough();
    const c = capture({}, stdin);
    stdin.end(["Hi", "/stats", "And more", "/reset", "/system Be brief.", "two \\", "lines", "/bogus", "/exit", "ignored"].join("\n") + "\n");
    expect(await main(["chat", "--model", modelPath, "--backend", "reference", "-t", "0", "-n", "6"], c.ctx)).toBe(0);
    const first = await greedyChat([{ role: "user", content: "Hi" }], 6);
    const second = await greedyChat(
      [
        { role: "user", content: "Hi" },
        { role: "assistant", content: first },
        { role: "user", content: "And more" },
      ],
      6,
    );
    const third = await greedyChat(
      [
        { role: "system", content: "Be brief." },
        { role: "user", content: "two \nlines" },
      ],
      6,
    );
    const out = c.out.join("");
    const parts = out.split("\n");
    expect(parts[0]).toBe(first);
    expect(out).toMatch(/session: 1 answers, \d+ prompt tokens, \d+ answer tokens; 2 messages/);
    expect(out).toContain(`\n${second}\n(conversation cleared)\n(system prompt set)\n${third}\nunknown command /bogus`);
    expect(out).not.toContain("ignored");
  });

  it("keeps answering when the conversation fills the context: drops the oldest turns with a note; /stats shows the context in use", async () => {
    const questions = ["Hello there, how are you?", "Tell me more about it please", "And even more now", "One more", "And the last one"];
    const stdin = new PassThrough();
    const c = capture({}, stdin);
    stdin.end([...questions, "/stats"].join("\n") + "\n");
    const flags = ["--model", modelPath, "--backend", "reference", "-t", "0", "-n", "30", "--context-length", "64", "--system", "Be brief."];
    expect(await main(["chat", ...flags], c.ctx)).toBe(0);
    const err = c.err.join("");
    expect(err).not.toMatch(/CONTEXT_OVERFLOW/);
    const notes = err.match(/^halo chat: context full: dropped the \d+ oldest messages \(the prompt is now \d+ of 64 tokens\)$/gm) ?? [];
    expect(notes.length).toBeGreaterThanOrEqual(2);
    const out = c.out.join("");
    expect(out).toMatch(/session: 5 answers, /);
    expect(out).toMatch(/context: \d+ of 64 tokens in use \(last prompt \+ answer\); [1-9]\d* old messages dropped to fit/);

    // The same conversation with --context-shift error stops at the full context and says what to do, in flags;
    // piped, it goes on through the rest of the input (a /reset and a new turn answer) and exits 1 for the failed turns.
    const strictIn = new PassThrough();
    const strict = capture({}, strictIn);
    strictIn.end([...questions, "/reset", "Hi", "/stats"].join("\n") + "\n");
    expect(await main(["chat", ...flags, "--context-shift", "error"], strict.ctx)).toBe(1);
    const failures = strict.err.join("").match(/\[ENGINE_CONTEXT_OVERFLOW\]$/gm) ?? [];
    expect(failures.length).toBeGreaterThanOrEqual(1);
    const answered = Number(/session: (\d+) answers/.exec(strict.out.join(""))![1]);
    expect(answered + failures.length).toBe(questions.length + 1);
    expect(strict.out.join("")).toMatch(/\(conversation cleared\)\n[^\n]*\n[^]*session: /);
    expect(strict.err.join("")).toMatch(
      /halo chat: the conversation no longer fits in the context window .*\/reset starts a new conversation.*--context-length.*--context-shift drop-oldest.*\[ENGINE_CONTEXT_OVERFLOW\]/,
    );
    const bad = capture();
    expect(await main(["chat", ...flags, "--context-shift", "shift"], bad.ctx)).toBe(2);
    expect(bad.err.join("")).toMatch(/--context-shift must be drop-oldest or error/);
  });

  it("Ctrl-C (a real SIGINT) stops the current answer and the conversation goes on", async () => {
    const stdin = new PassThrough();
    let interrupted = false;
    const out: string[] = [];
    const ctx = {
      stdout: {
        write: (t: string) => {
          out.push(t);
          if (!interrupted && out.length === 2) {
            interrupted = true;
            // A real signal, delivered by the event loop: it only lands mid-answer when steps yield.
            process.kill(process.pid, "SIGINT");
          }
        },
      },
      stderr: { write: () => true },
      env: {},
      stdin,
    };
    stdin.end("Tell me a long story\n/stats\n");
    expect(await main(["chat", "--model", modelPath, "--backend", "reference", "-t", "0", "-n", "400"], ctx)).toBe(0);
    const text = out.join("");
    expect(interrupted).toBe(true);
    expect(text).toMatch(/ \[stopped\]\n\[abort\] prompt \d+ tok/);
  });
});

describe("halo inspect / convert / verify", () => {
  it("behave exactly like h1b's commands", async () => {
    const sinks = { out: [] as string[], err: [] as string[] };
    const h1bCode = await runCli(["inspect", modelPath, "--json"], { out: (t) => sinks.out.push(t), err: (t) => sinks.err.push(t) });
    const c = capture();
    expect(await main(["inspect", modelPath, "--json"], c.ctx)).toBe(h1bCode);
    expect(c.out.join("")).toBe(sinks.out.map((t) => `${t}\n`).join(""));
    const out = join(dir, "copy.h1b");
    const conv = capture();
    expect(await main(["convert", modelPath, "-o", out, "--format", "h1b"], conv.ctx)).toBe(0);
    const ver = capture();
    expect(await main(["verify", out], ver.ctx)).toBe(0);
    writeFileSync(join(dir, "junk.halo"), "not a model at all");
    const bad = capture();
    expect(await main(["verify", join(dir, "junk.halo")], bad.ctx)).toBe(1);
    expect(bad.err.join("")).toMatch(/^halo verify: /);
    const help = capture();
    expect(await main(["convert", "--help"], help.ctx)).toBe(0);
    expect(help.out.join("")).toMatch(/Usage: halo convert/);
  });

  it("convert stores the layout of the best installed backend that runs here by default (h1b, which sees no backend, stores halo-v2)", async () => {
    // The CPU and GPU backends are installed in this workspace, each with a layout of its own; the GPU one runs only
    // where a GPU opens (or its emulator is chosen), so on this machine auto stores the CPU backend's.
    const saved = process.env.HALO_HIP_DEVICE;
    delete process.env.HALO_HIP_DEVICE;
    let hipRuns: boolean;
    try {
      hipRuns = (await (await discoverBackends()).factories.find((f) => f.name === "hip")!.probe()).available;
    } finally {
      if (saved !== undefined) process.env.HALO_HIP_DEVICE = saved;
    }
    if (hipRuns) return; // A GPU here: auto stores halo-g2 there (the emulator case below shows the order).
    const help = capture();
    expect(await main(["convert", "--help"], help.ctx)).toBe(0);
    expect(help.out.join("")).toMatch(/Backend layouts passed in: halo-i2x256, halo-g2; --packing auto stores halo-i2x256/);
    const viaHalo = join(dir, "default-layout.halo");
    const conv = capture();
    expect(await main(["convert", modelPath, "-o", viaHalo, "--json"], conv.ctx)).toBe(0);
    expect(JSON.parse(conv.out.join("")).changes).toEqual(["ternary packing halo-v2 → halo-i2x256 (14 tensors)"]);
    const inspect = capture();
    expect(await main(["inspect", viaHalo, "--json"], inspect.ctx)).toBe(0);
    expect(JSON.parse(inspect.out.join("")).tensors.find((t: { name: string }) => t.name === "blk.0.q").type).toBe("halo-i2x256");
    // Back to a format packing: decoding the backend's layout needs its codec, which halo passes.
    const back = capture();
    expect(await main(["convert", viaHalo, "-o", join(dir, "back.h1b")], back.ctx)).toBe(0);
    const sinks = { out: [] as string[], err: [] as string[] };
    expect(await runCli(["convert", viaHalo, "-o", join(dir, "back2.h1b")], { out: (t) => sinks.out.push(t), err: (t) => sinks.err.push(t) })).toBe(1);
    expect(sinks.err.join("")).toMatch(/H1B_UNKNOWN_DTYPE/);
  });

  it("convert stores the GPU layout (halo-g2) where the GPU backend runs — here its emulator, chosen — and the file still runs on the cpu backend", async () => {
    const saved = process.env.HALO_HIP_DEVICE;
    process.env.HALO_HIP_DEVICE = "emulator";
    const gpuFile = join(dir, "gpu-layout.halo");
    try {
      const conv = capture();
      expect(await main(["convert", modelPath, "-o", gpuFile, "--json"], conv.ctx), conv.err.join("")).toBe(0);
      expect(JSON.parse(conv.out.join("")).changes).toEqual(["ternary packing halo-v2 → halo-g2 (14 tensors)"]);
    } finally {
      if (saved === undefined) delete process.env.HALO_HIP_DEVICE;
      else process.env.HALO_HIP_DEVICE = saved;
    }
    const engines = await Promise.all([loadModel(gpuFile, { backend: "cpu", contextLength: 32 }), loadModel(modelPath, { backend: "cpu", contextLength: 32 })]);
    try {
      const logits = await Promise.all(
        engines.map(async (e) => {
          const rows: number[] = [];
          await e.evaluate([506, 72, 101], (chunk) => {
            rows.push(...chunk);
          });
          return rows;
        }),
      );
      expect(logits[0]).toHaveLength(3 * 512);
      expect(logits[0]).toEqual(logits[1]);
    } finally {
      for (const e of engines) e.dispose();
    }
  });
});

describe("halo ppl", () => {
  it("prints the engine's perplexity, independent and sliding windows", async () => {
    const textFile = join(dir, "text.txt");
    writeFileSync(textFile, "the quick brown fox jumps over the lazy dog. ".repeat(6));
    const engine = await loadModel(modelPath, { backend: "reference", contextLength: 32 });
    const text = readFileSync(textFile, "utf8");
    const independent = await engine.perplexity(text, { contextLength: 32 });
    const sliding = await engine.perplexity(text, { contextLength: 32, stride: 8 });
    engine.dispose();
    for (const [extra, expected] of [
      [[], independent],
      [["--stride", "8"], sliding],
    ] as const) {
      const c = capture();
      expect(await main(["ppl", "-m", modelPath, "-f", textFile, "-c", "32", "--backend", "reference", "--json", ...extra], c.ctx)).toBe(0);
      const got = JSON.parse(c.out.join("")) as { perplexity: number; scoredTokens: number; windows: number };
      expect(got).toMatchObject({ perplexity: expected.perplexity, scoredTokens: expected.scoredTokens, windows: expected.windows });
    }
    expect(sliding.windows).toBeGreaterThan(independent.windows);
    const bad = capture();
    expect(await main(["ppl", "-m", modelPath, "-f", textFile, "--stride", "x"], bad.ctx)).toBe(2);
    const missing = capture();
    expect(await main(["ppl", "-m", modelPath, "-f", join(dir, "none.txt")], missing.ctx)).toBe(1);
    expect(missing.err.join("")).toMatch(/CLI_IO/);
  });
});

describe("halo doctor", () => {
  it("parses /proc/cpuinfo flags and reports backends honestly", async () => {
    expect(parseCpuinfo("model name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2 fma avx512_vnni\n")).toEqual({
      model: "Test CPU",
      simd: ["sse4_2", "avx2", "fma", "avx512_vnni"],
    });
    expect(parseCpuinfo("Features\t: fp asimd asimddp\n")).toEqual({ model: undefined, simd: ["asimd", "asimddp"] });
    const c = capture();
    expect(await main(["doctor", "--json"], c.ctx)).toBe(0);
    const report = JSON.parse(c.out.join("")) as {
      backends: { name: string; package: string | null; available: boolean; detail: string }[];
      cache: { dir: string };
      versions: { node: string };
    };
    // What is installed, as discovery finds it: no hard-coded device probes — every backend but the built-in
    // reference comes from the package that provides it (hip from @halo/kernels-hip, installed with the CLI).
    expect(report.backends.at(-1)).toMatchObject({ name: "reference", package: null, available: true });
    for (const b of report.backends.slice(0, -1)) expect(b.package, b.name).toBe(`@halo/kernels-${b.name}`);
    expect(report.backends.map((b) => b.name)).toContain("hip");
    expect(report.cache.dir).toBe(join(dir, "cache"));
    expect(report.versions.node).toBe(process.versions.node);
    const text = capture();
    expect(await main(["doctor"], text.ctx)).toBe(0);
    expect(text.out.join("")).toMatch(/^CPU +.+\nSIMD/);
  });
});

describe("halo pull", () => {
  it("pulls into HALO_CACHE_DIR and then runs the pulled model by name", async () => {
    const c = capture({ HF_ENDPOINT: hub.endpoint });
    expect(await main(["pull", "acme/tiny", "--json"], c.ctx)).toBe(0);
    const result = JSON.parse(c.out.join("")) as { path: string; files: unknown[] };
    expect(result.path).toBe(join(dir, "cache", "acme", "tiny", "main"));
    const r = capture({ HF_ENDPOINT: hub.endpoint });
    expect(await main(["run", "--model", "acme/tiny", "--backend", "reference", "-t", "0", "-n", "4", "hi"], r.ctx)).toBe(0);
    const bad = capture();
    expect(await main(["pull", "not a repo"], bad.ctx)).toBe(2);
    const nf = capture({ HF_ENDPOINT: hub.endpoint });
    expect(await main(["pull", "acme/nope"], nf.ctx)).toBe(1);
    expect(nf.err.join("")).toMatch(/^halo pull: the hub has no repository acme\/nope.*\[CLI_HUB_NOT_FOUND\]\n$/);
  });
});
