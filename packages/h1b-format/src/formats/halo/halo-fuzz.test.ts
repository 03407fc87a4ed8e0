// Truncation sweep and mutation fuzz of the .halo reader: only HaloErrors, and no read past the end of the file.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import "../../index.js";
import { memorySource, type ByteSource } from "../../core/byte-source.js";
import { synthModel } from "../../synth/synth-model.js";
import { NORM_ROLES, TERNARY_ROLES, type HaloModel } from "../../core/model.js";
import { HALO_PREAMBLE_BYTES } from "./halo-layout.js";
import { readHalo } from "./read-halo.js";
import { writeHalo } from "./write-halo.js";

let file: Uint8Array;
let dataOffset: number;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "halo-fuzz-"));
  const path = join(dir, "fuzz.halo");
  const config = { ...synthModel().config, numLayers: 1, hiddenSize: 128, intermediateSize: 256, numHeads: 2, numKvHeads: 1, vocabSize: 512 };
  await writeHalo(synthModel({ shape: config, seed: 11, untiedHead: true }), path);
  file = new Uint8Array(readFileSync(path));
  rmSync(dir, { recursive: true, force: true });
  dataOffset = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(32, true));
}, 60_000);

/** A memory source that records any attempt to read outside the file (the reader must check sizes first). */
function guardedSource(bytes: Uint8Array): { source: ByteSource; outOfRange: () => number } {
  const inner = memorySource(bytes, "fuzz.halo");
  let bad = 0;
  return {
    source: {
      ...inner,
      read(offset: number, length: number): Uint8Array {
        if (!(offset >= 0 && length >= 0 && offset + length <= bytes.byteLength)) bad++;
        return inner.read(offset, length);
      },
    },
    outOfRange: () => bad,
  };
}

function touchAll(model: HaloModel): void {
  const tensors = [model.tokenEmbedding, model.outputNorm, ...(model.lmHead === null ? [] : [model.lmHead])];
  for (const t of tensors) t.toFloat32();
  for (const layer of model.layers) {
    for (const role of NORM_ROLES) layer[role].toFloat32();
    for (const role of TERNARY_ROLES) {
      const t = layer[role];
      t.decodeRows(0, t.rows, new Int8Array(t.rows * t.cols));
    }
  }
}

/** Opens and touches every tensor; returns the HaloError code, "ok", or rethrows anything else. */
function attempt(bytes: Uint8Array): string {
  const { source, outOfRange } = guardedSource(bytes);
  try {
    touchAll(readHalo(source));
    return "ok";
  } catch (error) {
    if (!isHaloError(error)) throw error;
    return error.code;
  } finally {
    expect(outOfRange()).toBe(0);
  }
}

/** Rewrites the header with new JSON text and re-seals both checksums, so the validators (not the CRC) are tested. */
function reseal(base: Uint8Array, headerText: string): Uint8Array | null {
  const header = Buffer.from(headerText, "utf8");
  if (HALO_PREAMBLE_BYTES + header.byteLength > dataOffset) return null;
  const out = new Uint8Array(base);
  out.fill(0, HALO_PREAMBLE_BYTES, dataOffset);
  out.set(header, HALO_PREAMBLE_BYTES);
  const dv = new DataView(out.buffer, out.byteOffset);
  dv.setBigUint64(24, BigInt(header.byteLength), true);
  dv.setUint32(56, crc32(header), true);
  dv.setUint32(60, crc32(out.subarray(0, 60)), true);
  return out;
}

function headerText(bytes: Uint8Array): string {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(24, true));
  return Buffer.from(bytes.subarray(HALO_PREAMBLE_BYTES, HALO_PREAMBLE_BYTES + length)).toString("utf8");
}

describe(".halo reader robustness", () => {
  it("the unmodified file opens and every tensor decodes", () => {
    expect(attempt(file)).toBe("ok");
  });

  it("rejects every truncation with a HaloError (every length in the first 8 KiB, then strided)", () => {
    const lengths: number[] = [];
    for (let n = 0; n < Math.min(8192, file.byteLength); n++) lengths.push(n);
    for (let n = 8192; n < file.byteLength; n += 509) lengths.push(n);
    lengths.push(file.byteLength - 1);
    const codes = new Set<string>();
    for (const n of lengths) {
      const code = attempt(file.subarray(0, n));
      expect(code).not.toBe("ok");
      codes.add(code);
    }
    for (const code of codes) expect(["H1B_BAD_MAGIC", "H1B_TRUNCATED"]).toContain(code);
  });

  it("random byte mutations anywhere give a HaloError or a model whose tensors still decode", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: file.byteLength - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (mutations) => {
        const bytes = new Uint8Array(file);
        for (const [at, value] of mutations) bytes[at] = value;
        attempt(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it("byte mutations of the header behind a re-sealed checksum give only HaloErrors", () => {
    const text = headerText(file);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: text.length - 1 }), fc.constantFrom(...'0123456789-.,:"{}[]aefnlrstu e9')), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const chars = [...text];
          for (const [at, ch] of edits) chars[at] = ch;
          const bytes = reseal(file, chars.join(""));
          if (bytes !== null) attempt(bytes);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("structured header mutations (any field set to any JSON value) give only HaloErrors", () => {
    const header = JSON.parse(headerText(file)) as Record<string, unknown>;
    const paths: string[][] = [];
    const walk = (value: unknown, path: string[]): void => {
      paths.push(path);
      if (typeof value === "object" && value !== null) {
        for (const [key, child] of Object.entries(value)) if (paths.length < 5000) walk(child, [...path, key]);
      }
    };
    walk(header, []);
    const interesting = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(0, -1, 1.5, 2 ** 53, 2 ** 31, 1e308, "", null, [], {}, [0], [2 ** 40, 2 ** 40], "f16", "q8_0", "int8", "nope", "row", "block"),
      fc.integer({ min: -10, max: file.byteLength * 2 }),
    );
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.constantFrom(...paths.filter((p) => p.length > 0)), interesting, (path, value) => {
        const copy = structuredClone(header);
        let target = copy as Record<string, unknown>;
        for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
        target[path.at(-1)!] = value;
        const bytes = reseal(file, JSON.stringify(copy));
        if (bytes !== null) seen.add(attempt(bytes));
      }),
      { numRuns: 1500 },
    );
    if (process.env.HALO_FUZZ_DEBUG) console.log([...seen]);
    expect(seen.size).toBeGreaterThan(3);
  });

  it("refuses declared sizes the file cannot hold before reading them", () => {
    const header = JSON.parse(headerText(file)) as { tensors: Array<{ name: string; length: number; shape: number[] }> };
    const embd = header.tensors.find((t) => t.name === "token_embd")!;
    embd.shape = [2 ** 24, 128];
    embd.length = 2 ** 24 * 128 * 2;
    expect(attempt(reseal(file, JSON.stringify(header))!)).toBe("H1B_BAD_OFFSET");
    const big = new Uint8Array(file);
    new DataView(big.buffer).setBigUint64(24, 2n ** 52n, true);
    new DataView(big.buffer).setUint32(60, crc32(big.subarray(0, 60)), true);
    expect(attempt(big)).toBe("H1B_BAD_OFFSET");
  });
});
