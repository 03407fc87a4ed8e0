// The GPU backend (hip) through the `halo` command: `halo eval --backend hip` with HALO_HIP_DEVICE=emulator runs a
// model file as users (and other tools) run it — a child process of the bundled command — and gives the reference's
// logits; `halo bench --backend hip` runs on the emulator too; where hip cannot run, the command says why before it
// opens the model, in the CLI's words.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { discoverBackends, type BackendProbe } from "@halo/engine";
import { bundleBin } from "../../test/built-bin.js";
import { captureOutput } from "../../test/capture.js";
import { main } from "../main.js";

let built: ReturnType<typeof bundleBin>;
let dir: string;
let modelPath: string;
/** hip's probe on this machine with HALO_HIP_DEVICE unset (a GPU, or why not). */
let nativeProbe: BackendProbe;
let emulatorProbe: BackendProbe;

/** The environment of a child `halo`: no HALO_HIP_DEVICE unless given, no network, a scratch cache. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && key !== "HALO_HIP_DEVICE" && key !== "HALO_BACKEND_PATH") env[key] = value;
  return { ...env, HALO_CACHE_DIR: join(dir, "cache"), HF_ENDPOINT: "http://127.0.0.1:1", ...extra };
}

function floats(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

beforeAll(async () => {
  built = bundleBin("hip-test");
  dir = mkdtempSync(join(tmpdir(), "halo-hip-cli-"));
  modelPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 21 }), modelPath);
  const hip = (await discoverBackends()).factories.find((f) => f.name === "hip");
  expect(hip, "the hip backend (installed with the CLI) must be found: pnpm install, then build packages/kernels-hip").toBeDefined();
  const saved = process.env.HALO_HIP_DEVICE;
  try {
    delete process.env.HALO_HIP_DEVICE;
    nativeProbe = await hip!.probe();
    process.env.HALO_HIP_DEVICE = "emulator";
    emulatorProbe = await hip!.probe();
  } finally {
    if (saved === undefined) delete process.env.HALO_HIP_DEVICE;
    else process.env.HALO_HIP_DEVICE = saved;
  }
  // The test command builds the addon (HALO_REQUIRE_NATIVE=1); without it nothing below can run on the emulator.
  expect(emulatorProbe.available, `hip with HALO_HIP_DEVICE=emulator: ${emulatorProbe.reason}`).toBe(true);
}, 120_000);

afterAll(() => {
  built?.remove();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("halo with the hip backend", () => {
  it("halo eval --backend hip with HALO_HIP_DEVICE=emulator writes the reference's logits (a child process, as tools run it)", () => {
    const tokens = "506,72,101,108,108,111";
    const hipLogits = join(dir, "hip.f32");
    const refLogits = join(dir, "ref.f32");
    const hip = spawnSync(process.execPath, [built.bin, "eval", "--model", modelPath, "--backend", "hip", "--tokens", tokens, "--logits-out", hipLogits], {
      env: childEnv({ HALO_HIP_DEVICE: "emulator" }),
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(hip.status, hip.stderr).toBe(0);
    expect(JSON.parse(hip.stdout)).toMatchObject({ tokens: 6, vocab: 512, rows: 6, backend: "hip" });
    // A backend named alone that runs: no notice of one passed over.
    expect(hip.stderr).not.toMatch(/was not used/);
    execFileSync(process.execPath, [built.bin, "eval", "--model", modelPath, "--backend", "reference", "--tokens", tokens, "--logits-out", refLogits], {
      env: childEnv(),
      stdio: "pipe",
    });
    const got = floats(hipLogits);
    const want = floats(refLogits);
    expect(got.length).toBe(6 * 512);
    expect(want.length).toBe(got.length);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < got.length; i++) {
      expect(Number.isFinite(got[i]!), `logit ${i}`).toBe(true);
      worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    // f16 KV and the GPU kernels' summation order against the float reference: close, not equal.
    expect(worst).toBeLessThanOrEqual(1e-3 * Math.max(1, scale));
    for (let row = 0; row < 6; row++) {
      const argmax = (v: Float32Array): number => {
        let best = row * 512;
        for (let i = row * 512 + 1; i < (row + 1) * 512; i++) if (v[i]! > v[best]!) best = i;
        return best;
      };
      expect(argmax(got), `row ${row}`).toBe(argmax(want));
    }
  });

  it("halo bench --backend hip runs on the emulator chosen by --backend-option hip.device, and reports it", async () => {
    const { out, err, ctx } = captureOutput({});
    const code = await main(
      [
        "bench",
        "--model",
        modelPath,
        "--backend",
        "hip",
        "--backend-option",
        'hip.device="emulator"',
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "3",
        "--decode-context",
        "4",
        "--bandwidth",
        "30",
        "--json",
      ],
      ctx,
    );
    expect(code, err.join("")).toBe(0);
    const result = JSON.parse(out.join("")) as Record<string, unknown>;
    expect(result["backend"]).toBe("hip");
    expect(result["backendOptions"]).toMatchObject({ device: "emulator" });
    expect(result["prefillTokensPerSecond"] as number).toBeGreaterThan(0);
    expect(result["decodeTokensPerSecond"] as number).toBeGreaterThan(0);
    expect(err.join("")).not.toMatch(/was not used/);
  });

  it("halo bench --backend hip where hip cannot run: one line saying why, in the CLI's words, before the model is opened", async (context) => {
    if (nativeProbe.available) {
      // A machine with a GPU hip has code for: the named backend runs (checked on the real device, not here).
      expect(nativeProbe.details?.["kind"]).not.toBe("emulator");
      context.skip(`a GPU is present here: hip runs (${nativeProbe.reason}), so there is no "cannot run" line to check`);
    }
    const missing = join(dir, "no-such-model.halo");
    const child = spawnSync(process.execPath, [built.bin, "bench", "--model", missing, "--backend", "hip"], { env: childEnv(), encoding: "utf8" });
    // Not a usage error (the flag names an installed backend): the machine lacks what it needs.
    expect(child.status).toBe(1);
    const lines = child.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^halo bench: the hip backend cannot run here; found hip: .+ pass --backend auto to run on the first installed backend that can \(.*reference\) \[ENGINE_NO_BACKEND\]$/,
    );
    // The probe's reason, as given: which runtime was missing or found no device.
    expect(lines[0]).toContain(nativeProbe.reason.split(";")[0]!);
    // Said before the model is resolved or opened (the path does not exist), and never in the API's option names.
    expect(lines[0]).not.toMatch(/H1B_|no such file|backend: "/);
  });

  it("auto runs another backend where hip cannot run, and names hip and why in the notice", async (context) => {
    // Auto takes the GPU there; the engine's installed-backends test checks that.
    if (nativeProbe.available) context.skip(`a GPU is present here: hip runs (${nativeProbe.reason}), so auto takes it`);
    const child = spawnSync(process.execPath, [built.bin, "eval", "--model", modelPath, "--tokens", "1,2", "--logits-out", join(dir, "auto.f32")], {
      env: childEnv(),
      encoding: "utf8",
    });
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toMatchObject({ rows: 2 });
    expect((JSON.parse(child.stdout) as { backend: string }).backend).not.toBe("hip");
    expect(child.stderr).toMatch(/^halo eval: running on the \w+ backend .*; the hip backend was not used: /);
  });
});
