import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { codeOf } from "../error-code.test-support.js";
import "./seed.js";
import { ternaryCodec } from "./registry.js";
import { f16Table } from "./plain.js";
import { bonsaiScales, sherryGroupCode } from "./seed.js";

const EXAMPLE = Int8Array.of(1, 0, -1, 1, -1, -1, 0, 1); // research/seed-system.md §1.6

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function decodeAll(packing: string, bytes: Uint8Array, rows: number, cols: number): Int8Array {
  const out = new Int8Array(rows * cols);
  ternaryCodec(packing).decodeRows(bytes, rows, cols, 0, rows, out);
  return out;
}

describe("seed codecs: §1.6 worked example", () => {
  it("HaloV2 packs the row to 86 90", () => {
    const bytes = ternaryCodec("halo-v2").encode(EXAMPLE, 1, 8);
    expect(hex(bytes)).toBe("8690");
    expect(decodeAll("halo-v2", bytes, 1, 8)).toEqual(EXAMPLE);
  });

  it("Sherry packs the two groups to codes 13 and 20 = 8d 02", () => {
    expect(sherryGroupCode(1, 0, -1, 1)).toEqual({ code: 13, changed: 0 });
    expect(sherryGroupCode(-1, -1, 0, 1)).toEqual({ code: 20, changed: 0 });
    // A real row needs 32 columns: pad with groups [0,-1,-1,-1] (code 0), which keeps later bytes 0.
    const row = new Int8Array(32);
    row.set(EXAMPLE);
    for (let g = 2; g < 8; g++) row.set([0, -1, -1, -1], 4 * g);
    const bytes = ternaryCodec("sherry").encode(row, 1, 32);
    expect(hex(bytes)).toBe("8d02000000");
    expect(decodeAll("sherry", bytes, 1, 32)).toEqual(row);
  });

  it("TQ1V4 packs digits base 3, first weight least significant, padding with digit 1", () => {
    expect(hex(ternaryCodec("tq1-v4").encode(EXAMPLE, 1, 8))).toBe("3b817979");
    expect(hex(ternaryCodec("tq1-v4").encode(Int8Array.of(1, 0, -1, 1, 0), 1, 5))).toBe("8c797979");
    expect(decodeAll("tq1-v4", Uint8Array.of(0x3b, 0x81, 0x79, 0x79), 1, 8)).toEqual(EXAMPLE);
  });

  it("Bonsai TQ2 puts the fp16 scale first, then HaloV2 codes", () => {
    const row = new Int8Array(128);
    row.set(EXAMPLE);
    const bytes = ternaryCodec("bonsai-tq2").encode(row, 1, 128, { scale: { kind: "block", blockSize: 128, values: Float32Array.of(0.5) } });
    expect(bytes.length).toBe(34);
    // 0.5 = fp16 0x3800; codes 86 90, zeros are code 01 → 0x55.
    expect(hex(bytes.subarray(0, 6))).toBe("0038" + "8690" + "5555");
    expect(decodeAll("bonsai-tq2", bytes, 1, 128)).toEqual(row);
    expect(bonsaiScales(bytes, 1, 128, 34)).toEqual(Float32Array.of(0.5));
  });

  it("Bonsai Q1 stores the fp16 scale then one sign bit per weight", () => {
    const row = new Int8Array(128).fill(-1);
    row.set([1, -1, -1, 1, -1, -1, 1, 1]);
    const bytes = ternaryCodec("bonsai-q1").encode(row, 1, 128, { scale: { kind: "tensor", value: -2 } });
    expect(bytes.length).toBe(18);
    expect(hex(bytes.subarray(0, 4))).toBe("00c0" + "c9" + "00");
    expect(decodeAll("bonsai-q1", bytes, 1, 128)).toEqual(row);
  });

  it("decodes HaloV2 code 11 and TQ1 bytes ≥ 243 to zeros", () => {
    expect(decodeAll("halo-v2", Uint8Array.of(0xff), 1, 4)).toEqual(new Int8Array(4));
    expect(decodeAll("tq1-v4", Uint8Array.of(243, 255, 0x79, 0x79), 1, 20)).toEqual(
      Int8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
  });
});

describe("seed codecs: lossy packings", () => {
  it("Sherry refuses a group without a zero unless forced, then zeroes lane 0 and reports it", () => {
    const row = new Int8Array(32);
    for (let g = 0; g < 8; g++) row.set([0, 1, 1, 1], 4 * g);
    row.set([1, 1, -1, 1], 0); // no zero: lane 0 is forced to zero
    row.set([0, 0, 1, -1], 4); // extra zero on lane 1: encoded as +1
    expect(codeOf(() => ternaryCodec("sherry").encode(row, 1, 32))).toBe("H1B_LOSSY_CONVERSION");
    let changed = -1;
    const bytes = ternaryCodec("sherry").encode(row, 1, 32, { force: true, report: (n) => (changed = n) });
    expect(changed).toBe(2);
    const back = decodeAll("sherry", bytes, 1, 32);
    expect([...back.subarray(0, 8)]).toEqual([0, 1, -1, 1, 0, 1, 1, -1]);
    expect(back.subarray(8)).toEqual(row.subarray(8));
  });

  it("Sherry picks the lowest-index zero when a group has several", () => {
    expect(sherryGroupCode(1, 0, 0, -1)).toEqual({ code: (1 << 3) | 0b011, changed: 1 });
  });

  it("Bonsai Q1 refuses zeros unless forced; fp16-inexact scales are refused unless forced", () => {
    const row = new Int8Array(128).fill(1);
    row[5] = 0;
    const scale = { kind: "tensor", value: 1 } as const;
    expect(codeOf(() => ternaryCodec("bonsai-q1").encode(row, 1, 128, { scale }))).toBe("H1B_LOSSY_CONVERSION");
    let changed = -1;
    ternaryCodec("bonsai-q1").encode(row, 1, 128, { scale, force: true, report: (n) => (changed = n) });
    expect(changed).toBe(1);
    const inexact = { kind: "tensor", value: 0.1 } as const;
    expect(codeOf(() => ternaryCodec("bonsai-tq2").encode(row, 1, 128, { scale: inexact }))).toBe("H1B_LOSSY_CONVERSION");
    const forced = ternaryCodec("bonsai-tq2").encode(row, 1, 128, { scale: inexact, force: true });
    expect(bonsaiScales(forced, 1, 128, 34)[0]).toBe(f16Table()[0x2e66]);
  });

  it("Bonsai codecs need a scale they can express and whole 128-blocks", () => {
    const row = new Int8Array(256).fill(1);
    expect(codeOf(() => ternaryCodec("bonsai-tq2").encode(row, 1, 256))).toBe("H1B_BAD_ARGUMENT");
    expect(codeOf(() => ternaryCodec("bonsai-tq2").encode(row, 1, 256, { scale: { kind: "block", blockSize: 64, values: new Float32Array(4) } }))).toBe(
      "H1B_BAD_ARGUMENT",
    );
    // 256-weight blocks replicate exactly onto two 128-blocks.
    const bytes = ternaryCodec("bonsai-tq2").encode(row, 1, 256, { scale: { kind: "block", blockSize: 256, values: Float32Array.of(0.25) } });
    expect(bonsaiScales(bytes, 1, 256, 34)).toEqual(Float32Array.of(0.25, 0.25));
    expect(codeOf(() => ternaryCodec("bonsai-q1").checkShape(2, 96, "t"))).toBe("H1B_BAD_DIMENSION");
    expect(codeOf(() => ternaryCodec("sherry").checkShape(2, 48, "t"))).toBe("H1B_BAD_DIMENSION");
  });

  it("rejects values outside {-1, 0, 1}", () => {
    for (const packing of ["halo-v2", "tq1-v4", "sherry"]) {
      const row = new Int8Array(32);
      for (let g = 0; g < 8; g++) row.set([0, 1, 1, 1], 4 * g);
      row[3] = 2;
      expect(codeOf(() => ternaryCodec(packing).encode(row, 1, 32))).toBe("H1B_BAD_ARGUMENT");
    }
  });
});

/** Random matrices of awkward shapes whose trits fit a packing's constraints. */
function matrices(colMultiple: number, alphabet: readonly number[], sherry = false) {
  return fc
    .record({ rows: fc.integer({ min: 1, max: 5 }), units: fc.integer({ min: 1, max: colMultiple === 1 ? 77 : 4 }), seed: fc.integer() })
    .chain(({ rows, units }) => {
      const cols = units * colMultiple;
      if (sherry) {
        // One zero per group at a random lane, random signs elsewhere.
        return fc
          .array(fc.record({ zero: fc.integer({ min: 0, max: 3 }), signs: fc.array(fc.constantFrom(-1, 1), { minLength: 4, maxLength: 4 }) }), {
            minLength: (rows * cols) / 4,
            maxLength: (rows * cols) / 4,
          })
          .map((groups) => {
            const trits = new Int8Array(rows * cols);
            groups.forEach((g, i) => g.signs.forEach((s, lane) => (trits[4 * i + lane] = lane === g.zero ? 0 : s)));
            return { rows, cols, trits };
          });
      }
      return fc
        .array(fc.constantFrom(...alphabet), { minLength: rows * cols, maxLength: rows * cols })
        .map((values) => ({ rows, cols, trits: Int8Array.from(values) }));
    });
}

describe("seed codecs: decode(encode(t)) === t", () => {
  const cases = [
    { packing: "halo-v2", multiple: 1, alphabet: [-1, 0, 1], sherry: false },
    { packing: "tq1-v4", multiple: 1, alphabet: [-1, 0, 1], sherry: false },
    { packing: "sherry", multiple: 32, alphabet: [-1, 0, 1], sherry: true },
    { packing: "bonsai-tq2", multiple: 128, alphabet: [-1, 0, 1], sherry: false },
    { packing: "bonsai-q1", multiple: 128, alphabet: [-1, 1], sherry: false },
  ];
  for (const { packing, multiple, alphabet, sherry } of cases) {
    it(`${packing}: whole matrices and row ranges`, () => {
      fc.assert(
        fc.property(matrices(multiple, alphabet, sherry), fc.nat(), ({ rows, cols, trits }, pick) => {
          const codec = ternaryCodec(packing);
          const scale = { kind: "row", values: Float32Array.from({ length: rows }, (_, r) => 2 ** -r) } as const;
          const bytes = codec.encode(trits, rows, cols, { scale });
          expect(bytes.length).toBe(codec.byteLength(rows, cols));
          expect(decodeAll(packing, bytes, rows, cols)).toEqual(trits);
          const start = pick % rows;
          const count = rows - start;
          const part = new Int8Array(count * cols);
          codec.decodeRows(bytes, rows, cols, start, count, part);
          expect(part).toEqual(trits.subarray(start * cols));
        }),
        { numRuns: 60 },
      );
    });
  }

  it("every byte value decodes without error in every packing", () => {
    for (const packing of ["halo-v2", "tq1-v4", "sherry", "bonsai-tq2", "bonsai-q1"]) {
      const codec = ternaryCodec(packing);
      const cols = packing.startsWith("bonsai") ? 128 : 160;
      const bytes = new Uint8Array(codec.byteLength(2, cols));
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 97 + 13) & 0xff;
      const out = decodeAll(packing, bytes, 2, cols);
      expect(out.every((t) => t === -1 || t === 0 || t === 1)).toBe(true);
    }
  });
});
