import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { shapeConfig, synthModel, writeHalo } from "@halo/h1b-format";
import { discoverBackends, type KvDtype } from "@halo/engine";
import { main } from "../main.js";
import { bytesPerDecodedToken, fitBenchLengths } from "./bench.js";

const dir = mkdtempSync(join(tmpdir(), "halo-bench-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("halo bench", () => {
  it("counts the cpu backend's bytes per decoded token at the 2B-4T shape from first principles: 2-bit ternary blocks, row scales, norms, the head as stored", async () => {
    const config = shapeConfig("bitnet-2b-4t");
    const cpu = (await discoverBackends()).factories.find((f) => f.name === "cpu");
    expect(cpu, "the cpu backend (@halo/kernels-cpu) must be installed: pnpm install, then build packages/kernels-cpu").toBeDefined();
    const estimate = (lmHead?: string, kvDtype: KvDtype = "f16") =>
      cpu!.create(lmHead === undefined ? {} : { lmHead }).estimateMemory!(config, { contextLength: 4096, maxSequences: 1, kvDtype });
    const { hiddenSize: h, intermediateSize: f, numLayers: layers, vocabSize: vocab } = config;
    const q = config.numHeads * config.headDim;
    const kv = config.numKvHeads * config.headDim;
    // Ternary matrices of a layer: q|k|v and gate|up read the hidden state, o reads attention, down the FFN.
    const ternaryWeights = layers * ((q + 2 * kv) * h + h * q + 2 * f * h + h * f);
    expect(ternaryWeights).toBe(2_084_044_800);
    expect(h % 256 === 0 && q % 256 === 0 && f % 256 === 0, "rows are whole 256-weight blocks: no padding").toBe(true);
    const ternary = (ternaryWeights * 2) / 8; // 2 bits a weight
    const rowScales = layers * (q + 2 * kv + h + 2 * f + h) * 4; // one f32 per matrix row
    const norms = (layers * (2 * h + q + f) + h) * 4; // attn, attn-sub, ffn, ffn-sub norms; the output norm (f32)
    const f16Head = vocab * h * 2;
    const embeddingRow = h * 2; // the one token's f16 embedding row
    const exact = estimate();
    expect(exact.headBytes).toBe(656_670_720);
    expect(exact.decodeReadBytes).toBe(ternary + rowScales + norms + f16Head + embeddingRow);
    expect(exact.decodeReadBytes).toBe(1_182_182_400);
    // KV: 30 layers × K and V × 5 heads × 128 × f16 per position; int8 adds an f32 scale per head.
    expect(exact.kvBytesPerPosition).toBe(76_800);
    expect(estimate(undefined, "int8").kvBytesPerPosition).toBe(layers * 2 * (kv + config.numKvHeads * 4));
    expect(bytesPerDecodedToken(exact, { context: 0 })).toBe(1_182_182_400);
    expect(bytesPerDecodedToken(exact, { context: 10 })).toBe(1_182_182_400 + 768_000);
    // Quantised heads as the backend stores them: int8 codes + an f32 row scale; int4 nibbles + a u8 per 64 + f32 scale + i32 sum.
    const int8 = estimate("int8");
    expect(int8.headBytes).toBe(vocab * (h + 4));
    expect(int8.decodeReadBytes).toBe(exact.decodeReadBytes - f16Head + vocab * (h + 4));
    expect(estimate("int4").headBytes).toBe(vocab * (h / 2 + h / 64 + 8));
    // --head-bytes 0.5 counts the head at half a byte per weight instead of as stored.
    expect(bytesPerDecodedToken(exact, { context: 0, headBytes: 0.5, headWeights: vocab * h })).toBe(1_182_182_400 - f16Head + (vocab * h) / 2);
  });

  it("prints every required field as JSON on a tiny model", async () => {
    const path = join(dir, "tiny.halo");
    await writeHalo(synthModel({ seed: 3 }), path);
    const out: string[] = [];
    const code = await main(
      [
        "bench",
        "--model",
        path,
        "--backend",
        "reference",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--decode-context",
        "8",
        "--batch",
        "2",
        "--bandwidth",
        "30",
        "--json",
      ],
      { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => undefined }, env: {} },
    );
    expect(code).toBe(0);
    const result = JSON.parse(out.join("")) as Record<string, number | string | null>;
    for (const key of [
      "loadMs",
      "prefillTokensPerSecond",
      "decodeTokensPerSecond",
      "peakRssMiB",
      "bytesPerToken",
      "bandwidthUtilisation",
      "aggregateDecodeTokensPerSecond",
    ]) {
      expect(typeof result[key], key).toBe("number");
      expect(result[key] as number, key).toBeGreaterThan(0);
    }
    expect(result["backend"]).toBe("reference");
    expect(result["batch"]).toBe(2);
  });

  it("runs with the int8 KV cache it is asked for and reports it", async () => {
    const path = join(dir, "tiny-kv.halo");
    await writeHalo(synthModel({ seed: 4 }), path);
    const out: string[] = [];
    const code = await main(
      [
        "bench",
        "--model",
        path,
        "--backend",
        "reference",
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "3",
        "--decode-context",
        "4",
        "--kv-dtype",
        "int8",
        "--bandwidth",
        "30",
        "--json",
      ],
      { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => undefined }, env: {} },
    );
    expect(code).toBe(0);
    expect((JSON.parse(out.join("")) as Record<string, unknown>)["kvDtype"]).toBe("int8");
  });

  it("rejects an unknown KV dtype with the accepted ones", async () => {
    const err: string[] = [];
    const code = await main(["bench", "--model", "x", "--kv-dtype", "q4"], {
      stdout: { write: () => undefined },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
    });
    expect(code).toBe(2);
    expect(err.join("")).toMatch(/--kv-dtype must be f32, f16, int8; got "q4"/);
  });

  it("runs the cpu backend with the int4 head it is asked for, counting fewer bytes per token", async () => {
    const path = join(dir, "tiny-head.halo");
    await writeHalo(synthModel({ seed: 5 }), path);
    const bench = async (extra: string[]) => {
      const out: string[] = [];
      const code = await main(
        [
          "bench",
          "--model",
          path,
          "--backend",
          "cpu",
          "--threads",
          "1",
          "--prompt-tokens",
          "8",
          "--gen-tokens",
          "3",
          "--decode-context",
          "4",
          "--bandwidth",
          "30",
          "--json",
          ...extra,
        ],
        { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => undefined }, env: {} },
      );
      expect(code).toBe(0);
      return JSON.parse(out.join("")) as Record<string, number | string>;
    };
    const exact = await bench([]);
    const int4 = await bench(["--lm-head", "int4"]);
    // The options the running backend got, however they were given.
    expect(exact["backendOptions"]).toEqual({ threads: 1 });
    expect(int4["backendOptions"]).toEqual({ threads: 1, lmHead: "int4" });
    expect(await bench(["--backend-option", "cpu.lmHead=int8"])).toMatchObject({ backendOptions: { threads: 1, lmHead: "int8" } });
    expect(int4["backend"]).toBe("cpu");
    expect(int4["bytesPerToken"] as number).toBeLessThan(exact["bytesPerToken"] as number);
  });

  it("measures the read bandwidth itself for the roofline when --bandwidth is not given", async () => {
    const path = join(dir, "tiny-probe.halo");
    await writeHalo(synthModel({ seed: 7 }), path);
    const out: string[] = [];
    const code = await main(
      ["bench", "--model", path, "--backend", "cpu", "--threads", "2", "--prompt-tokens", "8", "--gen-tokens", "3", "--decode-context", "4", "--json"],
      { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => undefined }, env: {} },
    );
    expect(code).toBe(0);
    const result = JSON.parse(out.join("")) as Record<string, number | null>;
    expect(result["bandwidthGBs"]).toBeGreaterThan(0.5);
    expect(result["rooflineTokensPerSecond"]).toBeCloseTo(((result["bandwidthGBs"] as number) * 1e9) / (result["bytesPerToken"] as number), 0);
    expect(typeof result["bandwidthUtilisation"]).toBe("number");
  });

  it("leaves --lm-head to the cpu backend: it refuses an unknown storage (a usage error), and a run on another backend says it was not used", async () => {
    const err: string[] = [];
    const io = { stdout: { write: () => undefined }, stderr: { write: (t: string) => err.push(t) }, env: {} };
    const path = join(dir, "tiny-ref.halo");
    await writeHalo(synthModel({ seed: 6 }), path);
    expect(await main(["bench", "--model", path, "--backend", "cpu", "--prompt-tokens", "8", "--gen-tokens", "3", "--lm-head", "q4"], io)).toBe(2);
    expect(err.join("")).toMatch(/halo bench: --lm-head: .*f16, int8, int4.*q4/);
    err.length = 0;
    const out: string[] = [];
    const run = { ...io, stdout: { write: (t: string) => out.push(t) } };
    expect(
      await main(["bench", "--model", path, "--backend", "reference", "--prompt-tokens", "8", "--gen-tokens", "3", "--lm-head", "int8", "--json"], run),
    ).toBe(0);
    expect(err.join("")).toMatch(/--lm-head applies to the cpu backend, which does not run here \(the reference backend runs\): not used/);
    // The reference backend ran on its defaults: the cpu option is not reported as what ran.
    expect((JSON.parse(out.join("")) as Record<string, unknown>)["backendOptions"]).toEqual({});
  });

  it("a bad --lm-head or an unknown --backend is refused before the model is opened", async () => {
    const err: string[] = [];
    const io = { stdout: { write: () => undefined }, stderr: { write: (t: string) => err.push(t) }, env: {} };
    const missing = join(dir, "no-such-model.halo");
    expect(await main(["bench", "--model", missing, "--backend", "reference", "--lm-head", "q4"], io)).toBe(2);
    expect(err.join("")).toMatch(/^halo bench: --lm-head: .*q4.*\[CLI_USAGE\]\n$/);
    err.length = 0;
    expect(await main(["bench", "--model", missing, "--backend", "nosuch"], io)).toBe(2);
    expect(err.join("")).toMatch(/^halo bench: --backend: .*nosuch.*\[CLI_USAGE\]\n$/);
  });

  it("reports a reference run's own options under its display name, and uses them (no 'not used' notice)", async () => {
    const path = join(dir, "tiny-ref.halo");
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, env: {} };
    const args = [
      "bench",
      "--model",
      path,
      "--backend",
      "reference",
      "--backend-option",
      "reference.splitKvTile=64",
      "--prompt-tokens",
      "8",
      "--gen-tokens",
      "3",
      "--bandwidth",
      "30",
      "--json",
    ];
    expect(await main(args, io)).toBe(0);
    const result = JSON.parse(out.join("")) as Record<string, unknown>;
    expect(result["backend"]).toBe("reference split-kv 64");
    expect(result["backendOptions"]).toEqual({ splitKvTile: 64 });
    expect(err.join("")).not.toMatch(/not used/);
  });

  it("does not blame a backend option for a load option the backend refuses: --batch above reference.maxSequences", async () => {
    const path = join(dir, "tiny-ref.halo");
    const err: string[] = [];
    const io = { stdout: { write: () => undefined }, stderr: { write: (t: string) => err.push(t) }, env: {} };
    const code = await main(
      [
        "bench",
        "--model",
        path,
        "--backend",
        "reference",
        "--backend-option",
        "reference.maxSequences=2",
        "--batch",
        "4",
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "3",
      ],
      io,
    );
    expect(code).toBe(2);
    const text = err.join("");
    expect(text).not.toMatch(/cpu/);
    expect(text).not.toMatch(/--backend-option reference\.maxSequences:/);
    // The load option is named as bench's flag for it (maxSequences is --batch here, not serve's --parallel).
    expect(text).toMatch(
      /^halo bench: the reference backend cannot take this --batch \(field --batch\); expected at most 2; found 4\b.*\[ENGINE_BAD_OPTION\]\n$/,
    );
  });

  it("says why there is no roofline when the running backend cannot measure its bandwidth", async () => {
    const path = join(dir, "tiny-ref.halo");
    const out: string[] = [];
    const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => undefined }, env: {} };
    expect(await main(["bench", "--model", path, "--backend", "reference", "--prompt-tokens", "8", "--gen-tokens", "3", "--json"], io)).toBe(0);
    const result = JSON.parse(out.join("")) as Record<string, unknown>;
    // The reference backend estimates its reads but cannot measure bandwidth: the roofline needs --bandwidth.
    expect(result["bytesPerToken"]).toBeGreaterThan(0);
    expect(result["rooflineUnavailable"]).toMatch(/the reference backend cannot measure its read bandwidth; pass --bandwidth/);
  });

  it("rejects bad numbers", async () => {
    const err: string[] = [];
    const code = await main(["bench", "--model", "x", "--batch", "abc"], {
      stdout: { write: () => undefined },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
    });
    expect(code).toBe(2);
    expect(err.join("")).toMatch(/--batch must be a whole number/);
  });
});

describe("halo bench lengths", () => {
  it("keeps the defaults where they fit and scales them down together where they do not", () => {
    expect(fitBenchLengths(4096, {})).toEqual({ promptTokens: 512, genTokens: 128, decodeContext: 64, scaled: false });
    const small = fitBenchLengths(512, {});
    expect(small).toEqual({ promptTokens: 408, genTokens: 103, decodeContext: 64, scaled: true });
    expect(Math.max(small.promptTokens, small.decodeContext) + small.genTokens + 1).toBeLessThanOrEqual(512);
    const tiny = fitBenchLengths(40, {});
    expect(Math.max(tiny.promptTokens, tiny.decodeContext) + tiny.genTokens + 1).toBeLessThanOrEqual(40);
    expect(tiny.scaled).toBe(true);
    // One length given: the other takes what is left.
    expect(fitBenchLengths(512, { promptTokens: 500 })).toMatchObject({ promptTokens: 500, genTokens: 11 });
    expect(fitBenchLengths(512, { genTokens: 200 })).toMatchObject({ promptTokens: 311, genTokens: 200 });
  });

  it("refuses a given combination that cannot fit, with the numbers and lengths that would", () => {
    expect(() => fitBenchLengths(512, { promptTokens: 600, genTokens: 128 })).toThrow(
      /context holds 512 positions.*expected max\(--prompt-tokens, --decode-context\) \+ --gen-tokens \+ 1 ≤ 512; found max\(600, 64\) \+ 128 \+ 1 = 729\. Lower them, e.g\. --prompt-tokens 383 --gen-tokens 128/,
    );
    expect(() => fitBenchLengths(512, { promptTokens: 511 })).toThrow(/--gen-tokens/);
  });

  it("runs on a 512-position model with its own defaults, saying what it chose", async () => {
    const path = join(dir, "tiny-defaults.halo");
    await writeHalo(synthModel({ seed: 8 }), path);
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, env: {} };
    expect(await main(["bench", "--model", path, "--backend", "cpu", "--threads", "1", "--bandwidth", "30", "--json"], io)).toBe(0);
    expect(JSON.parse(out.join(""))).toMatchObject({ promptTokens: 408, genTokens: 103, decodeContext: 64 });
    expect(err.join("")).toMatch(
      /^halo bench: the model's context holds 512 positions; defaults lowered to fit: measuring --prompt-tokens 408 --gen-tokens 103 --decode-context 64\n/,
    );
    err.length = 0;
    expect(await main(["bench", "--model", path, "--prompt-tokens", "600", "--gen-tokens", "128"], io)).toBe(2);
    expect(err.join("")).toMatch(/^halo bench: the model's context holds 512 positions, too few for what was asked; .*= 729\. Lower them.*\[CLI_USAGE\]\n$/);
  });
});
