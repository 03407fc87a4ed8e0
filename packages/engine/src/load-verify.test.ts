// loadModel's load-time verification (issue 15): what is loaded is what was verified; verify: false opts out.
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openModel, readHaloHeader, synthModel, writeGguf, writeHalo } from "@halo/h1b-format";
import { referenceBackend, type Backend } from "@halo/kernels";
import { loadModel } from "./index.js";

const TOKENS = [506, 84, 104, 101, 32];
let dir: string;
let halo: string;
let haloBytes: Uint8Array;
const previousCacheDir = process.env.HALO_CACHE_DIR;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-load-verify-"));
  process.env.HALO_CACHE_DIR = join(dir, "cache");
  halo = join(dir, "tiny.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 1 }), halo);
  haloBytes = new Uint8Array(readFileSync(halo));
});

afterAll(() => {
  if (previousCacheDir === undefined) delete process.env.HALO_CACHE_DIR;
  else process.env.HALO_CACHE_DIR = previousCacheDir;
  rmSync(dir, { recursive: true, force: true });
});

function embeddingEntry(): { offset: number; length: number; crc32: string } {
  return readHaloHeader(halo).header.tensors.find((t) => t.name === "token_embd")!;
}

/** A copy of the tiny .halo with `edit` applied to token_embd; `reseal` also rewrites its stored CRC (and the header's). */
function variant(name: string, edit: (bytes: Uint8Array, offset: number) => void, reseal: boolean): string {
  const entry = embeddingEntry();
  const bytes = new Uint8Array(haloBytes);
  edit(bytes, entry.offset);
  if (reseal) {
    const fresh = crc32(bytes.subarray(entry.offset, entry.offset + entry.length))
      .toString(16)
      .padStart(8, "0");
    const dv = new DataView(bytes.buffer);
    const headerLength = Number(dv.getBigUint64(24, true));
    const header = Buffer.from(bytes.subarray(64, 64 + headerLength)).toString("latin1");
    const at = header.indexOf(`"crc32":"${entry.crc32}"`);
    expect(at).toBeGreaterThan(0);
    bytes.set(Buffer.from(fresh, "latin1"), 64 + at + '"crc32":"'.length);
    dv.setUint32(56, crc32(bytes.subarray(64, 64 + headerLength)), true);
    dv.setUint32(60, crc32(bytes.subarray(0, 60)), true);
  }
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

async function lastLogits(path: string, verify?: boolean): Promise<Float32Array> {
  const engine = await loadModel(path, { backend: "reference", contextLength: 32, ...(verify === undefined ? {} : { verify }) });
  try {
    let last = new Float32Array(0);
    await engine.evaluate(TOKENS, (rows) => {
      last = rows.slice(rows.length - 512);
    });
    return last;
  } finally {
    engine.dispose();
  }
}

describe("loadModel verifies the weights it loads", () => {
  it("loads a sound .halo (and remembers it in HALO_CACHE_DIR)", async () => {
    const logits = await lastLogits(halo);
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(readFileSync(join(dir, "cache", ".verified", (await import("node:fs")).readdirSync(join(dir, "cache", ".verified"))[0]!), "utf8")).toContain(
      "tiny.halo",
    );
  });

  it("refuses a .halo with 8 flipped bytes of token_embd (H1B_CHECKSUM_MISMATCH); verify: false loads it anyway", async () => {
    const path = variant(
      "flipped.halo",
      (bytes, offset) => {
        for (let i = 0; i < 8; i++) bytes[offset + 2 * (TOKENS[4]! * 256) + i]! ^= 0xff;
      },
      false,
    );
    await expect(loadModel(path, { backend: "reference", contextLength: 32 })).rejects.toMatchObject({ code: "H1B_CHECKSUM_MISMATCH", field: "token_embd" });
    const unverified = await lastLogits(path, false);
    const sound = await lastLogits(halo);
    expect(unverified.some((v, i) => v !== sound[i])).toBe(true);
  });

  it("refuses NaN in a .halo embedding even behind a re-signed CRC (H1B_NON_FINITE, naming row and column)", async () => {
    const path = variant(
      "nan.halo",
      (bytes, offset) => {
        new DataView(bytes.buffer).setUint16(offset + 2 * (7 * 256 + 3), 0x7e00, true);
      },
      true,
    );
    await expect(loadModel(path, { backend: "reference", contextLength: 32 })).rejects.toMatchObject({
      code: "H1B_NON_FINITE",
      field: "token_embd",
      actual: expect.stringMatching(/row 7, column 3/),
    });
  });

  it("refuses NaN in a GGUF embedding (a format without checksums)", async () => {
    const path = join(dir, "tiny.gguf");
    await writeGguf(synthModel({ shape: "tiny", seed: 1 }), path, { ternaryType: "tq2_0" });
    const opened = await openModel(path);
    const range = opened.tokenEmbedding.fileRange()!;
    const dtype = opened.tokenEmbedding.dtype;
    opened.close();
    const bytes = new Uint8Array(readFileSync(path));
    if (dtype === "f32") new DataView(bytes.buffer).setFloat32(range.offset + 4 * 300, Number.NaN, true);
    else new DataView(bytes.buffer).setUint16(range.offset + 2 * 300, 0x7c00, true);
    const bad = join(dir, "nan.gguf");
    writeFileSync(bad, bytes);
    await expect(loadModel(bad, { backend: "reference", contextLength: 32 })).rejects.toMatchObject({ code: "H1B_NON_FINITE", field: "token_embd" });
    await expect(loadModel(path, { backend: "reference", contextLength: 32 }).then((e) => e.dispose())).resolves.toBeUndefined();
  });

  it("the verification workers run in a process started with --input-type=module (they are CommonJS)", () => {
    const script = `
      const { readHalo, verifyModelWeights } = await import("@halo/h1b-format");
      const model = readHalo(${JSON.stringify(halo)});
      const report = await verifyModelWeights(model, { cacheDir: null, threads: 2 });
      model.close();
      console.log(report.checksums);`;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", cwd: fileURLToPath(new URL("..", import.meta.url)) });
    expect(result.stderr).toBe("");
    expect(Number(result.stdout.trim())).toBeGreaterThan(30);
  });

  it("refuses a file replaced between the check and the backend taking it (ENGINE_MODEL_CHANGED)", async () => {
    const path = join(dir, "swapped.halo");
    writeFileSync(path, haloBytes);
    const reference = referenceBackend();
    let disposed = 0;
    // A backend that, while it loads, sees the file replaced by another (as a download finishing or a copy would).
    const swapping: Backend = {
      name: "swapping",
      probe: () => reference.probe(),
      capabilities: () => reference.capabilities(),
      async loadModel(weights, options) {
        writeFileSync(`${path}.new`, haloBytes);
        renameSync(`${path}.new`, path);
        const loaded = await reference.loadModel(weights, options);
        return Object.assign(Object.create(Object.getPrototypeOf(loaded) as object) as typeof loaded, loaded, {
          dispose: () => {
            disposed++;
            loaded.dispose();
          },
        });
      },
    };
    await expect(loadModel(path, { backend: swapping, contextLength: 32 })).rejects.toMatchObject({ code: "ENGINE_MODEL_CHANGED", path });
    expect(disposed).toBe(1);
    await expect(loadModel(path, { backend: swapping, contextLength: 32, verify: false }).then((e) => e.dispose())).resolves.toBeUndefined();
  });

  it("refuses non-finite weights of a model passed in memory, and a verify option that is not a boolean", async () => {
    const model = synthModel({ shape: "tiny", seed: 4 });
    const norm = model.layers[0]!.attnNorm;
    expect(norm.dtype).toBe("f32");
    const poisoned = {
      ...model,
      layers: model.layers.map((l, i) =>
        i === 0 ? { ...l, attnNorm: { ...norm, bytes: () => new Uint8Array(new Float32Array(256).fill(Number.NaN).buffer) } } : l,
      ),
    };
    await expect(loadModel(poisoned, { backend: "reference", contextLength: 32 })).rejects.toMatchObject({ code: "H1B_NON_FINITE" });
    await expect(loadModel(model, { backend: "reference", contextLength: 32, verify: "no" as unknown as boolean })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      field: "verify",
    });
  });
});
