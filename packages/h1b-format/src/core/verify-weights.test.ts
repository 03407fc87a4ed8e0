// verifyModelWeights: stored CRCs and finite floats checked before a backend takes the weights, in workers or inline, remembered per file.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { HaloError } from "@halo/errors";
import "../index.js";
import { memorySource } from "./byte-source.js";
import { f32ToF16 } from "./half.js";
import { synthModel } from "../synth/synth-model.js";
import { writeHalo } from "../formats/halo/write-halo.js";
import { readHalo, readHaloHeader } from "../formats/halo/read-halo.js";
import { encodeH1b } from "../formats/h1b/write-h1b.js";
import { readH1b } from "../formats/h1b/read-h1b.js";
import { h1bLayout } from "../formats/h1b/h1b-layout.js";
import { changedFile, crc32Combine, firstNonFinite, verifyModelWeights } from "./verify-weights.js";

let dir: string;
let haloPath: string;
let haloBytes: Uint8Array;
let embd: { offset: number; length: number };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-verify-"));
  haloPath = join(dir, "tiny.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 1 }), haloPath);
  haloBytes = new Uint8Array(readFileSync(haloPath));
  const entry = readHaloHeader(haloPath).header.tensors.find((t) => t.name === "token_embd")!;
  embd = { offset: entry.offset, length: entry.length };
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function rejection(promise: Promise<unknown>): Promise<HaloError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HaloError) return error;
    throw error;
  }
  throw new Error("expected a HaloError");
}

function writeVariant(name: string, edit: (bytes: Uint8Array) => void): string {
  const bytes = new Uint8Array(haloBytes);
  edit(bytes);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe("crc32Combine", () => {
  it("equals the CRC of the concatenation", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
      }),
      { numRuns: 200 },
    );
  });
});

describe("firstNonFinite", () => {
  it("finds NaN and ±Infinity in every float dtype it scans", () => {
    const f32 = new Float32Array([1, 2, Number.NaN, 4]);
    expect(firstNonFinite(new Uint8Array(f32.buffer), "f32")).toBe(2);
    expect(firstNonFinite(new Uint8Array(new Float32Array([1, 2, 3]).buffer), "f32")).toBe(-1);
    for (const at of [0, 1, 4, 6]) {
      const f16 = new Uint16Array(7).fill(f32ToF16(0.5));
      f16[at] = f32ToF16(Number.NEGATIVE_INFINITY);
      expect(firstNonFinite(new Uint8Array(f16.buffer), "f16")).toBe(at);
      const bf16 = new Uint16Array(7).fill(0x3f80);
      bf16[at] = 0x7fc0;
      expect(firstNonFinite(new Uint8Array(bf16.buffer), "bf16")).toBe(at);
    }
    // Long runs (the word-at-a-time path) and unaligned views (the byte path) agree.
    const long = new Uint16Array(5000).fill(f32ToF16(1.5));
    long[4321] = 0x7e00;
    expect(firstNonFinite(new Uint8Array(long.buffer), "f16")).toBe(4321);
    expect(firstNonFinite(new Uint8Array(long.buffer).subarray(2), "f16")).toBe(4320);
    const longF32 = new Float32Array(3000).fill(-2);
    longF32[2999] = Number.POSITIVE_INFINITY;
    expect(firstNonFinite(new Uint8Array(longF32.buffer), "f32")).toBe(2999);
    expect(firstNonFinite(new Uint8Array(longF32.buffer, 4), "f32")).toBe(2998);
    expect(firstNonFinite(new Uint8Array(new Float32Array(3000).fill(3.4e38).buffer), "f32")).toBe(-1);
    const q8 = new Uint8Array(34 * 3);
    new DataView(q8.buffer).setUint16(68, 0x7e00, true);
    expect(firstNonFinite(q8, "q8_0")).toBe(64);
    const q6 = new Uint8Array(210 * 2);
    new DataView(q6.buffer).setUint16(210 + 208, 0x7c00, true);
    expect(firstNonFinite(q6, "q6_k")).toBe(256);
    const q4 = new Uint8Array(144 * 2);
    new DataView(q4.buffer).setUint16(2, 0xfc00, true);
    expect(firstNonFinite(q4, "q4_k")).toBe(0);
  });
});

describe("verifyModelWeights", () => {
  it("passes a sound .halo, checking every stored checksum, inline and in workers", async () => {
    for (const threads of [1, 2]) {
      const model = readHalo(haloPath);
      try {
        const report = await verifyModelWeights(model, { cacheDir: null, threads });
        expect(report.result).toBe("checked");
        expect(report.checksums).toBe(model.checksums!.length);
        expect(report.bytesChecksummed).toBeGreaterThan(embd.length);
        expect(report.tensorsScanned).toBeGreaterThan(2 * 4);
        expect(report.remembered).toBe(false);
      } finally {
        model.close();
      }
    }
  });

  it("refuses 8 flipped bytes of token_embd, naming the tensor and its offset (inline, workers, memory)", async () => {
    const path = writeVariant("flipped.halo", (bytes) => {
      for (let i = 0; i < 8; i++) bytes[embd.offset + 100 + i]! ^= 0xff;
    });
    for (const threads of [1, 2]) {
      const model = readHalo(path);
      try {
        const error = await rejection(verifyModelWeights(model, { cacheDir: null, threads }));
        expect(error.code).toBe("H1B_CHECKSUM_MISMATCH");
        expect(error.field).toBe("token_embd");
        expect(error.offset).toBe(embd.offset);
        expect(error.message).toMatch(/download or convert/);
      } finally {
        model.close();
      }
    }
    const inMemory = readHalo(memorySource(new Uint8Array(readFileSync(path)), "flipped.halo"));
    expect((await rejection(verifyModelWeights(inMemory, { cacheDir: join(dir, "cache-memory") }))).code).toBe("H1B_CHECKSUM_MISMATCH");
  });

  it("refuses a flipped byte in every tensor and scale tensor of a .halo", async () => {
    const { header } = readHaloHeader(haloPath);
    for (const t of header.tensors) {
      const bytes = new Uint8Array(haloBytes);
      bytes[t.offset + (t.length >> 1)]! ^= 0x10;
      const model = readHalo(memorySource(bytes, "one.halo"));
      const error = await rejection(verifyModelWeights(model, { cacheDir: null }));
      expect(error.code).toBe("H1B_CHECKSUM_MISMATCH");
      expect(error.field).toBe(t.name);
    }
  });

  it("refuses all of 300 random data-flip mutants of a .halo (1–8 bytes inside tensors)", async () => {
    const { header } = readHaloHeader(haloPath);
    let loaded = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: header.tensors.length - 1 }), fc.double({ min: 0, max: 1, maxExcluded: true }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        async (flips) => {
          const bytes = new Uint8Array(haloBytes);
          const flipped = new Set<number>(); // a byte flipped twice could flip back
          for (const [t, where, xor] of flips) {
            const entry = header.tensors[t]!;
            const at = entry.offset + Math.floor(where * entry.length);
            if (flipped.has(at)) continue;
            flipped.add(at);
            bytes[at]! ^= xor;
          }
          try {
            await verifyModelWeights(readHalo(memorySource(bytes, "flip.halo")), { cacheDir: null });
            loaded++;
          } catch (error) {
            expect((error as HaloError).code).toBe("H1B_CHECKSUM_MISMATCH");
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(loaded).toBe(0);
  });

  it("refuses NaN in the embedding of a file without checksums (.h1b), naming tensor, row, column and file offset", async () => {
    const model = synthModel({ shape: "tiny", seed: 2 });
    const bytes = encodeH1b(model);
    const layout = h1bLayout({ hiddenSize: 256, intermediateSize: 512, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 512 }, 2, "halo-v2", "x.h1b");
    const element = 3 * 256 + 7;
    new DataView(bytes.buffer).setFloat32(layout.embeddingOffset + 4 * element, Number.NaN, true);
    const path = join(dir, "nan.h1b");
    writeFileSync(path, bytes);
    for (const threads of [1, 2]) {
      const opened = readH1b(path);
      try {
        const error = await rejection(verifyModelWeights(opened, { cacheDir: null, threads }));
        expect(error.code).toBe("H1B_NON_FINITE");
        expect(error.field).toBe("token_embd");
        expect(error.offset).toBe(layout.embeddingOffset + 4 * element);
        expect(String(error.actual)).toMatch(/row 3, column 7/);
      } finally {
        opened.close();
      }
    }
  });

  it("refuses an infinite norm and a NaN ternary scale", async () => {
    const base = synthModel({ shape: "tiny", seed: 3 });
    const bytes = encodeH1b(base);
    const h1b = readH1b(memorySource(bytes, "ok.h1b"));
    const normRange = h1b.layers[1]!.ffnNorm;
    const withNorm = {
      ...h1b,
      layers: h1b.layers.map((l, i) =>
        i === 1 ? { ...l, ffnNorm: { ...normRange, bytes: () => new Uint8Array(new Float32Array(256).fill(Number.POSITIVE_INFINITY).buffer) } } : l,
      ),
    };
    const normError = await rejection(verifyModelWeights(withNorm, { cacheDir: null }));
    expect(normError.code).toBe("H1B_NON_FINITE");
    expect(normError.field).toBe(normRange.name);
    const q = h1b.layers[0]!.q;
    const badScale = { ...h1b, layers: h1b.layers.map((l, i) => (i === 0 ? { ...l, q: { ...q, scale: { kind: "tensor" as const, value: Number.NaN } } } : l)) };
    const scaleError = await rejection(verifyModelWeights(badScale, { cacheDir: null }));
    expect(scaleError.code).toBe("H1B_NON_FINITE");
    expect(scaleError.field).toBe(`${q.name}.scale`);
  });

  it("remembers a verified file by identity, and checks again once it changes", async () => {
    const cacheDir = join(dir, "cache");
    const path = writeVariant("remember.halo", () => {});
    const run = async (): Promise<string> => {
      const model = readHalo(path);
      try {
        return (await verifyModelWeights(model, { cacheDir })).result;
      } finally {
        model.close();
      }
    };
    expect(await run()).toBe("checked");
    expect(readdirSync(join(cacheDir, ".verified"))).toHaveLength(1);
    expect(await run()).toBe("cached");
    // Corrupt it in place and give it back its old mtime: the ctime still changes.
    const bytes = new Uint8Array(readFileSync(path));
    bytes[embd.offset + 5]! ^= 1;
    writeFileSync(path, bytes);
    utimesSync(path, new Date(0), new Date(0));
    const model = readHalo(path);
    try {
      expect((await rejection(verifyModelWeights(model, { cacheDir }))).code).toBe("H1B_CHECKSUM_MISMATCH");
    } finally {
      model.close();
    }
  });

  it("checksums: false scans only, and its remembered pass never stands in for the checksums", async () => {
    const cacheDir = join(dir, "cache-scan-only");
    const path = writeVariant("scan-only.halo", (bytes) => {
      bytes[embd.offset + 9]! ^= 0x01;
    });
    const model = readHalo(path);
    try {
      const scan = await verifyModelWeights(model, { cacheDir, checksums: false });
      expect(scan).toMatchObject({ result: "checked", checksums: 0, remembered: true });
      expect(scan.tensorsScanned).toBeGreaterThan(0);
      expect((await rejection(verifyModelWeights(model, { cacheDir }))).code).toBe("H1B_CHECKSUM_MISMATCH");
    } finally {
      model.close();
    }
  });

  it("reports the files it verified, and changedFile catches one replaced since", async () => {
    const path = writeVariant("replaced.halo", () => {});
    const model = readHalo(path);
    let report;
    try {
      report = await verifyModelWeights(model, { cacheDir: null });
    } finally {
      model.close();
    }
    expect(report.files.map((f) => f.path)).toEqual([resolve(path)]);
    expect(changedFile(report.files)).toBeNull();
    writeFileSync(`${path}.new`, haloBytes);
    renameSync(`${path}.new`, path); // same bytes, another inode: not the file that was verified
    expect(changedFile(report.files)).toMatch(/replaced\.halo \((ino|ctimeNs|mtimeNs)/);
    rmSync(path);
    expect(changedFile(report.files)).toMatch(/gone/);
    const inMemory = await verifyModelWeights(readHalo(memorySource(haloBytes, "m.halo")), { cacheDir: null });
    expect(inMemory.files).toEqual([]);
  });

  it("keeps at most 256 entries, dropping the oldest", async () => {
    const cacheDir = join(dir, "cache-full");
    const folder = join(cacheDir, ".verified");
    mkdirSync(folder, { recursive: true });
    for (let i = 0; i < 300; i++) {
      writeFileSync(join(folder, `old-${i}.json`), "{}");
      utimesSync(join(folder, `old-${i}.json`), new Date(1000 * i), new Date(1000 * i));
    }
    const model = readHalo(haloPath);
    try {
      expect((await verifyModelWeights(model, { cacheDir })).remembered).toBe(true);
      expect((await verifyModelWeights(model, { cacheDir })).result).toBe("cached");
    } finally {
      model.close();
    }
    const left = readdirSync(folder);
    expect(left).toHaveLength(256);
    expect(left).not.toContain("old-0.json");
    expect(left).toContain("old-299.json");
  });

  it("takes its cache folder from HALO_CACHE_DIR by default", async () => {
    const cacheDir = join(dir, "env-cache");
    const before = process.env.HALO_CACHE_DIR;
    process.env.HALO_CACHE_DIR = cacheDir;
    try {
      const model = readHalo(haloPath);
      try {
        expect((await verifyModelWeights(model)).remembered).toBe(true);
        expect((await verifyModelWeights(model)).result).toBe("cached");
      } finally {
        model.close();
      }
      expect(readdirSync(join(cacheDir, ".verified"))).toHaveLength(1);
    } finally {
      if (before === undefined) delete process.env.HALO_CACHE_DIR;
      else process.env.HALO_CACHE_DIR = before;
    }
  });
});
