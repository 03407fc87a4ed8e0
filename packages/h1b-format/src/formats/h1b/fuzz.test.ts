// Fuzz and truncation suite for the seed parsers: .h1b v1–v4 (+ Bonsai), .htok, .h1b-medusa.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { memorySource, type ByteSource } from "../../core/byte-source.js";
import { TERNARY_ROLES, type HaloModel } from "../../core/model.js";
import { floatTensor } from "../../core/tensors.js";
import { handBuiltH1b } from "./h1b-fixtures.js";
import { readH1b } from "./read-h1b.js";
import { encodeH1b } from "./write-h1b.js";
import { readHtok, writeHtok } from "./htok.js";
import { encodeMedusa, readMedusa } from "./medusa.js";

const TINY = { hs: 32, is: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 4 } as const;
const H1B_FILES = {
  v1: handBuiltH1b({ ...TINY, version: 1 }).bytes,
  v2: handBuiltH1b({ ...TINY, version: 2, flags: 0x1, trailing: Uint8Array.of(1, 2) }).bytes,
  v3: handBuiltH1b({ ...TINY, version: 3, flags: 0x2 }).bytes,
  v4: handBuiltH1b({ ...TINY, version: 4 }).bytes,
  bonsai: handBuiltH1b({ hs: 128, is: 128, layers: 1, heads: 2, kvHeads: 1, vocab: 2, version: 2, flags: 0x8 }).bytes,
};
const HTOK_FILE = writeHtok({
  tokens: ["a", "b", "c", "ab", "abc", "<|begin_of_text|>", "<|eot_id|>", "Ġx"].map((s) => Buffer.from(s)),
  merges: Uint32Array.of(0, 1, 3, 3, 2, 4),
  bosTokenId: 5,
  eosTokenId: 6,
});
const MEDUSA_FILE = encodeMedusa({
  hiddenDim: 4,
  heads: Array.from({ length: 4 }, (_, h) => ({
    wIn: floatTensor("in", "f16", [4, 4], { data: new Uint8Array(32).fill(h) }),
    wOut: floatTensor("out", "f16", [4, 4], { data: new Uint8Array(32).fill(h + 16) }),
  })),
});

/** A source that counts the bytes read through it. */
function countingSource(bytes: Uint8Array): ByteSource & { readonly bytesRead: number } {
  const inner = memorySource(bytes, "fuzz.h1b");
  let bytesRead = 0;
  return {
    path: inner.path,
    byteLength: inner.byteLength,
    read(offset: number, length: number): Uint8Array {
      bytesRead += length;
      return inner.read(offset, length);
    },
    close: () => inner.close(),
    get bytesRead() {
      return bytesRead;
    },
  };
}

/** Touches every tensor, scale and extra of a model (so lazy reads run too). */
function exercise(model: HaloModel): void {
  model.tokenEmbedding.toFloat32();
  model.outputNorm.toFloat32();
  for (const layer of model.layers) {
    for (const norm of [layer.attnNorm, layer.ffnNorm, layer.attnSubNorm, layer.ffnSubNorm]) norm.toFloat32();
    for (const role of TERNARY_ROLES) {
      const t = layer[role];
      const out = new Int8Array(t.rows * t.cols);
      t.decodeRows(0, t.rows, out);
      if (!out.every((v) => v === -1 || v === 0 || v === 1)) throw new Error(`non-ternary value decoded in ${t.name}`);
      if (t.scale.kind !== "tensor") void t.scale.values.length;
    }
  }
  for (const key of model.extras?.keys() ?? []) model.extras?.get(key);
}

/** Runs `fn`; a HaloError is fine, anything else fails the test. Returns whether it succeeded. */
function onlyHaloErrors(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (isHaloError(error)) return false;
    throw error;
  }
}

type Mutation =
  | { readonly kind: "set"; readonly at: number; readonly value: number }
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "i32"; readonly at: number; readonly value: number }
  | { readonly kind: "cut"; readonly at: number }
  | { readonly kind: "splice"; readonly at: number; readonly count: number }
  | { readonly kind: "append"; readonly bytes: Uint8Array };

const INTERESTING = [0, 1, -1, 2, 3, 4, 5, 16, 31, 32, 127, 128, 255, 256, 0x7fffffff, -0x80000000, 0x40000000, 0xffff, 0x10000];

function mutations(size: number): fc.Arbitrary<Mutation[]> {
  // Half the positions land in the first 72 bytes, where headers and counts live.
  const at = fc.oneof(fc.nat(Math.min(71, size - 1)), fc.nat(size - 1));
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at, value: fc.nat(255) }),
    fc.record({ kind: fc.constant("flip" as const), at, bit: fc.nat(7) }),
    fc.record({ kind: fc.constant("i32" as const), at: at.map((a) => a & ~3), value: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer()) }),
    fc.record({ kind: fc.constant("cut" as const), at: fc.nat(size) }),
    fc.record({ kind: fc.constant("splice" as const), at, count: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 4 });
}

function mutate(original: Uint8Array, list: readonly Mutation[]): Uint8Array {
  let bytes = original.slice();
  for (const m of list) {
    switch (m.kind) {
      case "set":
        if (m.at < bytes.length) bytes[m.at] = m.value;
        break;
      case "flip":
        if (m.at < bytes.length) bytes[m.at]! ^= 1 << m.bit;
        break;
      case "i32":
        if (m.at + 4 <= bytes.length) new DataView(bytes.buffer).setInt32(m.at, m.value, true);
        break;
      case "cut":
        bytes = bytes.slice(0, m.at);
        break;
      case "splice":
        bytes = Uint8Array.from([...bytes.subarray(0, m.at), ...bytes.subarray(m.at + m.count)]);
        break;
      case "append":
        bytes = Uint8Array.from([...bytes, ...m.bytes]);
        break;
    }
  }
  return bytes;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe("truncation sweep: every byte boundary", () => {
  for (const [name, file] of Object.entries(H1B_FILES)) {
    it(`.h1b ${name} (${file.length} bytes): every proper prefix throws a HaloError`, () => {
      const payloadEnd = name === "v2" ? file.length - 2 : file.length; // v2 carries 2 trailing bytes
      for (let n = 0; n < file.length; n++) {
        const ok = onlyHaloErrors(() => void readH1b(memorySource(file.subarray(0, n))));
        expect(ok, `prefix ${n}`).toBe(n >= payloadEnd);
      }
      expect(onlyHaloErrors(() => exercise(readH1b(memorySource(file))))).toBe(true);
    });
  }

  it(`.htok (${HTOK_FILE.length} bytes) and .h1b-medusa (${MEDUSA_FILE.length} bytes): every proper prefix throws`, () => {
    for (let n = 0; n < HTOK_FILE.length; n++)
      expect(
        onlyHaloErrors(() => void readHtok(HTOK_FILE.subarray(0, n))),
        `htok prefix ${n}`,
      ).toBe(false);
    for (let n = 0; n < MEDUSA_FILE.length; n++)
      expect(
        onlyHaloErrors(() => void readMedusa(memorySource(MEDUSA_FILE.subarray(0, n)))),
        `medusa prefix ${n}`,
      ).toBe(false);
    expect(readHtok(HTOK_FILE).tokens).toHaveLength(8);
    expect(readMedusa(memorySource(MEDUSA_FILE)).hiddenDim).toBe(4);
  });
});

describe("mutation fuzz: only HaloErrors, and whatever reads writes back byte-identically", () => {
  for (const [name, file] of Object.entries(H1B_FILES)) {
    it(`.h1b ${name}`, () => {
      let accepted = 0;
      fc.assert(
        fc.property(mutations(file.length), (list) => {
          const bytes = mutate(file, list);
          const source = countingSource(bytes);
          let model: HaloModel | null = null;
          onlyHaloErrors(() => {
            model = readH1b(source);
          });
          // Opening reads the header only, whatever the header claims.
          expect(source.bytesRead).toBeLessThanOrEqual(8 + 52);
          if (model === null) return;
          accepted++;
          const opened: HaloModel = model;
          if (onlyHaloErrors(() => exercise(opened))) {
            expect(same(encodeH1b(opened), bytes)).toBe(true);
          }
        }),
        { numRuns: name === "bonsai" ? 250 : 700, seed: 0x5eed + file.length },
      );
      // Some mutations (norm values, weights, trailing bytes) leave a valid file: the re-encode path ran.
      expect(accepted).toBeGreaterThan(20);
    });
  }

  it(".htok", () => {
    let accepted = 0;
    fc.assert(
      fc.property(mutations(HTOK_FILE.length), (list) => {
        const bytes = mutate(HTOK_FILE, list);
        onlyHaloErrors(() => {
          const data = readHtok(bytes);
          accepted++;
          expect(same(writeHtok(data), bytes)).toBe(true);
        });
      }),
      { numRuns: 1500, seed: 0x407 },
    );
    expect(accepted).toBeGreaterThan(20);
  });

  it(".h1b-medusa", () => {
    let accepted = 0;
    fc.assert(
      fc.property(mutations(MEDUSA_FILE.length), (list) => {
        const bytes = mutate(MEDUSA_FILE, list);
        onlyHaloErrors(() => {
          const medusa = readMedusa(memorySource(bytes));
          accepted++;
          for (const head of medusa.heads) {
            head.wIn.toFloat32();
            head.wOut.toFloat32();
          }
          expect(same(encodeMedusa(medusa), bytes)).toBe(true);
        });
      }),
      { numRuns: 1500, seed: 0x3ed },
    );
    expect(accepted).toBeGreaterThan(20);
  });
});
