// Mutation and truncation fuzzing of readGguf: only HaloErrors, no hangs, no reads or allocations past the file.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { synthModel } from "../../synth/synth-model.js";
import { validateConfig } from "../../core/config.js";
import { memorySource, type ByteSource } from "../../core/byte-source.js";
import { TERNARY_ROLES, NORM_ROLES } from "../../core/model.js";
import { toHfTokenizerJson, toHtokTokenizer } from "../../core/tokenizer-payload.js";
import { readGguf } from "./read-gguf.js";
import { writeGguf } from "./write-gguf.js";

/** A mutated file must be accepted or refused well within this (the clean file parses in ~1 ms). */
const MAX_MS_PER_CASE = 2000;

const dir = mkdtempSync(join(tmpdir(), "halo-gguf-fuzz-"));
let clean = new Uint8Array(0);
let headerEnd = 0;

beforeAll(async () => {
  // Small on purpose: hidden 256, 1 layer, vocab 300, FFN 256, q8_0 embedding.
  const config = validateConfig({
    architecture: "bitnet",
    hiddenSize: 256,
    intermediateSize: 256,
    numLayers: 1,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 64,
    vocabSize: 300,
    maxPositionEmbeddings: 256,
    ropeTheta: 500000,
    rmsNormEps: 1e-5,
    activation: "silu",
    tiedEmbeddings: true,
    bosTokenId: null,
    eosTokenIds: [],
    hadamardRotated: false,
  });
  const path = join(dir, "fuzz.gguf");
  await writeGguf(synthModel({ shape: config, activation: "silu", seed: 9 }), path, { ternaryType: "tq1_0", embeddingType: "q8_0" });
  clean = readFileSync(path);
  headerEnd = dataStart(clean);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dataStart(bytes: Uint8Array): number {
  // Smallest prefix length whose failure is about tensor data rather than the header.
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const error = attempt(bytes.subarray(0, mid));
    if (error !== null && /tensor data runs past/.test(error)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** A source that refuses (as a test failure, not a HaloError) any read request larger than the file. */
function guardedSource(bytes: Uint8Array): ByteSource {
  const inner = memorySource(bytes, "fuzz.gguf");
  return {
    path: inner.path,
    byteLength: inner.byteLength,
    read(offset: number, length: number): Uint8Array {
      if (length > bytes.length) throw new Error(`read of ${length} bytes from a ${bytes.length}-byte file`);
      return inner.read(offset, length);
    },
    close: () => inner.close(),
  };
}

/** Opens and uses the whole model; returns null on success or the HaloError message; rethrows anything else. */
function attempt(bytes: Uint8Array): string | null {
  try {
    const model = readGguf(guardedSource(bytes));
    for (const layer of model.layers) {
      for (const role of TERNARY_ROLES) {
        const t = layer[role];
        const out = new Int8Array(t.cols);
        t.decodeRows(t.rows - 1, 1, out);
        if (t.scale.kind !== "tensor") void t.scale.values.length;
      }
      for (const role of NORM_ROLES) layer[role].toFloat32();
    }
    model.tokenEmbedding.toFloat32();
    model.outputNorm.toFloat32();
    if (model.tokenizer !== null) {
      toHfTokenizerJson(model.tokenizer);
      toHtokTokenizer(model.tokenizer);
    }
    model.close();
    return null;
  } catch (error) {
    if (isHaloError(error)) return error.message;
    throw error;
  }
}

function timed(bytes: Uint8Array): void {
  const start = performance.now();
  attempt(bytes);
  const ms = performance.now() - start;
  if (ms > MAX_MS_PER_CASE) throw new Error(`case took ${ms.toFixed(0)} ms`);
}

describe("readGguf fuzzing", () => {
  it("the clean file opens and is small", () => {
    expect(attempt(clean)).toBeNull();
    expect(clean.length).toBeLessThan(200_000);
    expect(headerEnd).toBeGreaterThan(0);
    expect(headerEnd).toBeLessThan(clean.length);
  });

  it("truncation at every byte boundary is refused with a HaloError", () => {
    const heapBefore = process.memoryUsage().heapUsed;
    for (let length = 0; length < clean.length; length++) {
      const message = attempt(clean.subarray(0, length));
      if (message === null) throw new Error(`a ${length}-byte prefix of a ${clean.length}-byte file was accepted`);
    }
    // Nothing the reader allocates outlives a case: the heap does not grow with the number of cases.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 * 1024 * 1024);
  });

  it("random byte mutations of the header throw only HaloErrors, quickly", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: headerEnd - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const bytes = clean.slice();
        for (const [at, value] of edits) bytes[at] = value;
        timed(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it("mutations anywhere (header, scales, codes), 64-bit field smashes and splices throw only HaloErrors", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.tuple(fc.nat({ max: clean.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 16 }),
          fc.tuple(fc.nat({ max: headerEnd - 8 }), fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n)),
          fc.tuple(fc.nat({ max: headerEnd }), fc.nat({ max: 64 }), fc.uint8Array({ maxLength: 64 })),
        ),
        (edit) => {
          let bytes = clean.slice();
          if (Array.isArray(edit) && Array.isArray(edit[0])) {
            for (const [at, value] of edit as Array<[number, number]>) bytes[at] = value;
          } else if (typeof edit[1] === "bigint") {
            new DataView(bytes.buffer).setBigUint64(edit[0] as number, edit[1], true);
          } else {
            const [at, remove, insert] = edit as [number, number, Uint8Array];
            const out = new Uint8Array(bytes.length - Math.min(remove, bytes.length - at) + insert.length);
            out.set(bytes.subarray(0, at));
            out.set(insert, at);
            out.set(bytes.subarray(Math.min(bytes.length, at + remove)), at + insert.length);
            bytes = out;
          }
          timed(bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
