// Runs the shipped `h1b` binary (package.json "bin": dist/cli.js, as `pnpm build` writes it) in child processes on
// tiny synthetic files: exit codes, one-line errors, JSON output.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtBin } from "../../../../scripts/built-bin.js";

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string };
/** The binary under test: the file package.json's "bin" names, exactly what npm installs as `h1b` (checked built and fresh). */
let bin = "";
const dir = mkdtempSync(join(tmpdir(), "h1b-cli-"));

beforeAll(() => {
  // `pnpm test` (turbo) builds before it tests; a bare `vitest run` must not test a missing or stale build.
  bin = builtBin(packageDir, "@halo/h1b-format", "h1b");
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function h1b(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: "utf8", timeout: 120_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

describe("h1b CLI (the shipped dist/cli.js)", () => {
  it("prints help with examples; no command is a usage error", () => {
    const help = h1b("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Examples:\n {2}h1b synth --shape tiny --seed 1 -o tiny\.halo/);
    const convertHelp = h1b("convert", "--help");
    expect(convertHelp.stdout).toMatch(/--format <halo\|h1b\|h1b-v1\|h1b-v2\|h1b-v3\|h1b-v4\|gguf-tq1_0\|gguf-tq2_0\|gguf-i2_s\|hf-packed\|hf-bf16>/);
    expect(h1b().status).toBe(2);
    const unknown = h1b("inspect", "--frobnicate");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);
    expect(h1b("--version").stdout.trim()).toBe(manifest.version);
  });

  it("synth → inspect --json → verify on a container", () => {
    const made = h1b("synth", "--shape", "tiny", "--activation", "silu", "--seed", "3", "-o", "tiny.halo");
    expect(made.status).toBe(0);
    expect(made.stdout).toMatch(/^wrote tiny\.halo \(halo, /);
    const inspect = h1b("inspect", "tiny.halo", "--json");
    expect(inspect.status).toBe(0);
    const summary = JSON.parse(inspect.stdout);
    expect(summary).toMatchObject({ format: "halo", version: 1, config: { hiddenSize: 256, activation: "silu", numLayers: 2 } });
    expect(summary.totals.ternaryBitsPerWeight).toBe(2);
    expect(summary.tensors).toHaveLength(2 + 2 * 11);
    // h1b sees no backend: "auto" stores h1b-format's own halo-v2.
    expect(summary.container.provenance.changes).toEqual(["ternary packing int8 → halo-v2 (14 tensors)"]);
    const text = h1b("inspect", "tiny.halo");
    expect(text.stdout).toMatch(/2\.0000 bits\/weight/);
    expect(text.stdout).toMatch(/blk\.0\.down +halo-v2 +\[256, 512\]/);
    const verify = h1b("verify", "tiny.halo", "--json");
    expect(verify.status).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, format: "halo", tensors: 38 });
  });

  it("verify exits 1 with one line naming the damage, and --verbose adds the stack", () => {
    h1b("synth", "--seed", "4", "-o", "bad.halo");
    const bytes = readFileSync(join(dir, "bad.halo"));
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(join(dir, "bad.halo"), bytes);
    const result = h1b("verify", "bad.halo");
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^h1b verify: H1B_CHECKSUM_MISMATCH: tensor blk\.1\.down checksum mismatch/);
    expect(h1b("verify", "bad.halo", "--verbose").stderr).toMatch(/\n\s+at /);
    const missing = h1b("verify", "nope.halo");
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/H1B_MISSING_FILE/);
  });

  it("verify refuses NaN in a float tensor of a format without checksums, naming the tensor", () => {
    h1b("synth", "--seed", "6", "-o", "nan.h1b");
    const bytes = readFileSync(join(dir, "nan.h1b"));
    bytes.writeFloatLE(Number.NaN, 52 + 4 * 1000); // the f32 embedding starts after the 52-byte v2 header
    writeFileSync(join(dir, "nan.h1b"), bytes);
    const result = h1b("verify", "nan.h1b");
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^h1b verify: H1B_NON_FINITE: tensor token_embd holds a non-finite value/);
    expect(result.stderr).toMatch(/row 3, column 232/);
  });

  it("convert refuses a lossy target without --force, then converts and the result verifies", () => {
    h1b("synth", "--seed", "5", "-o", "src.halo");
    const refused = h1b("convert", "src.halo", "-o", "out.gguf", "--format", "gguf-tq2_0");
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/H1B_LOSSY_CONVERSION.*--force/);
    expect(existsSync(join(dir, "out.gguf"))).toBe(false);
    const forced = h1b("convert", "src.halo", "-o", "out.gguf", "--format", "gguf-tq2_0", "--force", "--json");
    expect(forced.status).toBe(0);
    const report = JSON.parse(forced.stdout);
    expect(report).toMatchObject({ format: "gguf-tq2_0", lossy: true });
    expect(h1b("verify", "out.gguf").stdout).toMatch(/^OK out\.gguf: gguf/);
    const back = h1b("convert", "out.gguf", "-o", "back.h1b", "--format", "h1b-v2");
    expect(back.status).toBe(0);
    expect(JSON.parse(h1b("inspect", "back.h1b", "--json").stdout)).toMatchObject({ format: "h1b", version: 2 });
  });

  it("convert takes the format from the extension, a tokenizer file, and a packing", () => {
    h1b("synth", "--seed", "6", "-o", "a.halo");
    expect(h1b("convert", "a.halo", "-o", "a.h1b").status).toBe(0);
    expect(JSON.parse(h1b("inspect", "a.h1b", "--json").stdout).format).toBe("h1b");
    expect(h1b("convert", "a.halo", "-o", "snap", "--format", "hf-packed").status).toBe(0);
    const repacked = h1b("convert", "a.h1b", "-o", "b.halo", "--tokenizer", "snap/tokenizer.json", "--packing", "tq1-v4");
    expect(repacked.status).toBe(0);
    const summary = JSON.parse(h1b("inspect", "b.halo", "--json").stdout);
    expect(summary.tokenizer).toBe("hf-json");
    expect(summary.tensors.find((t: { name: string }) => t.name === "blk.0.q").type).toBe("tq1-v4");
    const noFormat = h1b("convert", "a.halo", "-o", "x.bin");
    expect(noFormat.status).toBe(2);
    expect(noFormat.stderr).toMatch(/pass --format/);
    const unknownInput = h1b("inspect", "snap/config.json");
    expect(unknownInput.status).toBe(1);
    expect(unknownInput.stderr).toMatch(/H1B_UNKNOWN_FORMAT.*expected a \.halo container/);
  });

  it("stops quietly with exit status 0 when its reader closes stdout early (`h1b inspect big.halo | head`)", async () => {
    h1b("synth", "--seed", "7", "-o", "pipe.halo");
    const child = spawn(process.execPath, [bin, "inspect", "pipe.halo", "--tensors"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    // Close the read end at once: h1b starts after this, so its first write to stdout meets EPIPE.
    child.stdout.destroy();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
    expect(stderr).toBe("");
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });

  it("synth validates its arguments", () => {
    expect(h1b("synth", "--shape", "huge", "--seed", "1", "-o", "x.halo").stderr).toMatch(/unknown --shape.*tiny, tiny-gqa, bitnet-2b-4t/);
    expect(h1b("synth", "--shape", "tiny", "-o", "x.halo").status).toBe(2);
    expect(h1b("synth", "--shape", "tiny", "--seed", "1").stderr).toMatch(/missing -o/);
  });
});

describe("runCli with a backend's codecs (as `halo convert` embeds it)", () => {
  it("stores the first passed layout under --packing auto, names it in help, and needs it to re-pack", async () => {
    const { runCli } = await import("./run-cli.js");
    const { testBackendCodec } = await import("../codecs/backend-codec.test-support.js");
    const codecs = [testBackendCodec("halo-i2x256")];
    const run = async (args: string[], withCodecs: boolean): Promise<{ status: number; out: string; err: string }> => {
      let out = "";
      let err = "";
      const status = await runCli(args, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) }, withCodecs ? { codecs } : {});
      return { status, out, err };
    };
    const path = join(dir, "backend.halo");
    expect((await run(["synth", "--seed", "8", "-o", path], true)).status).toBe(0);
    const summary = JSON.parse((await run(["inspect", path, "--json"], false)).out); // opens without the codec
    expect(summary.tensors.find((t: { name: string }) => t.name === "blk.0.q").type).toBe("halo-i2x256");
    expect(summary.totals.ternaryBitsPerWeight).toBe(2);
    expect((await run(["verify", path], false)).status).toBe(0); // checksums and scan: no decoding
    expect((await run(["convert", "--help"], true)).out).toMatch(/Backend layouts passed in: halo-i2x256; --packing auto stores halo-i2x256/);
    expect((await run(["convert", "--help"], false)).out).toMatch(/No backend layouts were passed in: --packing auto stores halo-v2/);
    const without = await run(["convert", path, "-o", join(dir, "backend.h1b")], false);
    expect(without.status).toBe(1);
    expect(without.err).toMatch(/H1B_UNKNOWN_DTYPE.*codecs: backendFactory\.packings/);
    expect((await run(["convert", path, "-o", join(dir, "backend.h1b")], true)).status).toBe(0);
    expect((await run(["convert", join(dir, "backend.h1b"), "-o", join(dir, "v2.halo"), "--packing", "halo-v2"], true)).status).toBe(0);
  });

  it("returns exit status 2 with one H1B_BAD_ARGUMENT line for codecs that are not a codec list, instead of throwing", async () => {
    const { runCli } = await import("./run-cli.js");
    const { testBackendCodec } = await import("../codecs/backend-codec.test-support.js");
    const { haloV2Codec } = await import("../codecs/seed.js");
    const cases: { codecs: unknown; field: RegExp }[] = [
      { codecs: "halo-i2x256", field: /\(field runOptions\.codecs\); expected an array/ },
      { codecs: [{ packing: "halo-i2x256" }], field: /field runOptions\.codecs\[0\]\.bitsPerWeight/ },
      { codecs: [{ ...haloV2Codec }], field: /field runOptions\.codecs\[0\]\.packing.*not a format packing/ },
      { codecs: [testBackendCodec("a"), testBackendCodec("a")], field: /field runOptions\.codecs\[1\]\.packing.*names that differ/ },
    ];
    for (const { codecs, field } of cases) {
      const out: string[] = [];
      const err: string[] = [];
      const status = await runCli(["--version"], { out: (t) => out.push(t), err: (t) => err.push(t) }, { codecs: codecs as never });
      expect(status).toBe(2);
      expect(out).toEqual([]);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(/^h1b: H1B_BAD_ARGUMENT: invalid runOptions\.codecs/);
      expect(err[0]).toMatch(field);
      expect(err[0]).toMatch(/backendFactory\.packings/);
    }
  });
});
