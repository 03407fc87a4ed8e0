// halo-i2x256 (the CPU kernels' halo_block_i2 layout): a hand-computed example, round trips and row ranges.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { codeOf } from "../error-code.test-support.js";
import { ternaryCodec, ternaryPackings } from "./registry.js";
import { HALO_I2X256_BLOCK_BYTES, haloI2x256Codec, haloI2x256RowBytes } from "./halo-i2x256.js";

function decodeAll(bytes: Uint8Array, rows: number, cols: number): Int8Array {
  const out = new Int8Array(rows * cols);
  haloI2x256Codec.decodeRows(bytes, rows, cols, 0, rows, out);
  return out;
}

/** Trits in {-1, 0, 1} of a `rows × cols` matrix. */
const matrix = (rows: number, cols: number): fc.Arbitrary<Int8Array> =>
  fc.array(fc.constantFrom(-1, 0, 1), { minLength: rows * cols, maxLength: rows * cols }).map((a) => Int8Array.from(a));

const shapes = fc.record({
  rows: fc.integer({ min: 1, max: 5 }),
  cols: fc.oneof(fc.constantFrom(1, 63, 64, 65, 255, 256, 257, 300, 511, 512, 600), fc.integer({ min: 1, max: 800 })),
});

describe("halo-i2x256", () => {
  it("is registered under its name, 2 bits per weight, rows of ceil(cols / 256) × 64 bytes", () => {
    expect(ternaryPackings()).toContain("halo-i2x256");
    expect(ternaryCodec("halo-i2x256")).toBe(haloI2x256Codec);
    expect(haloI2x256Codec.bitsPerWeight).toBe(2);
    expect([1, 256, 257, 300, 512, 600, 2560, 6912].map(haloI2x256RowBytes)).toEqual([64, 64, 128, 128, 128, 192, 640, 1728]);
    expect(haloI2x256Codec.byteLength(3, 300)).toBe(3 * 128);
    expect(haloI2x256Codec.rowBytes!(300)).toBe(128);
  });

  it("packs a 300-wide row by hand: byte p holds weights p, p+64, p+128, p+192 at bits 0, 2, 4, 6; padding is code 1", () => {
    const cols = 300;
    const row = new Int8Array(cols); // all zero: code 1 everywhere → 0b01010101 = 0x55
    row[0] = 1; // block 0 byte 0 bits 0-1 = 2
    row[64] = -1; // block 0 byte 0 bits 2-3 = 0
    row[128] = 1; // block 0 byte 0 bits 4-5 = 2
    row[192] = -1; // block 0 byte 0 bits 6-7 = 0
    row[5] = -1; // block 0 byte 5 bits 0-1 = 0
    row[255] = 1; // block 0 byte 63 bits 6-7 = 2
    row[256] = -1; // block 1 byte 0 bits 0-1 = 0; weights 320, 384, 448 are padding
    row[299] = 1; // block 1 byte 43 bits 0-1 = 2; bits 2-7 padding
    const bytes = haloI2x256Codec.encode(row, 1, cols);
    expect(bytes.length).toBe(128);
    expect(bytes[0]).toBe(0b00_10_00_10); // 0x22
    expect(bytes[1]).toBe(0x55);
    expect(bytes[5]).toBe(0b01_01_01_00); // 0x54
    expect(bytes[63]).toBe(0b10_01_01_01); // 0x95
    expect(bytes[64]).toBe(0b01_01_01_00); // 0x54: weight 256 = -1, then three padding codes
    expect(bytes[64 + 43]).toBe(0b01_01_01_10); // 0x56: weight 299 = +1
    expect(bytes[64 + 44]).toBe(0x55); // weight 300 and up: padding only
    expect(bytes[127]).toBe(0x55);
    const expected = new Uint8Array(128).fill(0x55);
    expected[0] = 0x22;
    expected[5] = 0x54;
    expected[63] = 0x95;
    expected[64] = 0x54;
    expected[107] = 0x56;
    expect([...bytes]).toEqual([...expected]);
    expect(decodeAll(bytes, 1, cols)).toEqual(row);
  });

  it("agrees with the kernels' halo_i2_code(row, k) formula", () => {
    fc.assert(
      fc.property(shapes.chain(({ rows, cols }) => fc.tuple(fc.constant(rows), fc.constant(cols), matrix(rows, cols))), ([rows, cols, trits]) => {
        const bytes = haloI2x256Codec.encode(trits, rows, cols);
        const nb = Math.ceil(cols / 256);
        for (let r = 0; r < rows; r++) {
          for (let k = 0; k < nb * 256; k++) {
            const within = k & 255;
            const code = (bytes[(r * nb + (k >> 8)) * HALO_I2X256_BLOCK_BYTES + (within & 63)]! >> (2 * (within >> 6))) & 3;
            expect(code).toBe(k < cols ? trits[r * cols + k]! + 1 : 1);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it("round-trips random matrices: decode(encode(t)) = t (property)", () => {
    fc.assert(
      fc.property(shapes.chain(({ rows, cols }) => fc.tuple(fc.constant(rows), fc.constant(cols), matrix(rows, cols))), ([rows, cols, trits]) => {
        const bytes = haloI2x256Codec.encode(trits, rows, cols);
        expect(bytes.length).toBe(haloI2x256Codec.byteLength(rows, cols));
        expect(decodeAll(bytes, rows, cols)).toEqual(trits);
      }),
      { numRuns: 200 },
    );
  });

  it("decodes a middle row range on its own, from the whole matrix or from just those rows' bytes", () => {
    for (const cols of [100, 256, 257, 600]) {
      const rows = 9;
      const trits = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 7 + (i >> 3)) % 3) - 1);
      const bytes = haloI2x256Codec.encode(trits, rows, cols);
      const out = new Int8Array(4 * cols);
      haloI2x256Codec.decodeRows(bytes, rows, cols, 3, 4, out);
      expect(out).toEqual(trits.subarray(3 * cols, 7 * cols));
      const rowBytes = haloI2x256RowBytes(cols);
      const alone = new Int8Array(4 * cols);
      haloI2x256Codec.decodeRows(bytes.subarray(3 * rowBytes, 7 * rowBytes), 4, cols, 0, 4, alone);
      expect(alone).toEqual(out);
    }
  });

  it("reads the unused code 3 as 0, and refuses bad trits and short inputs", () => {
    const bytes = new Uint8Array(64).fill(0xff);
    expect([...decodeAll(bytes, 1, 256)].every((t) => t === 0)).toBe(true);
    const bad = new Int8Array(300);
    bad[270] = 2;
    expect(codeOf(() => haloI2x256Codec.encode(bad, 1, 300))).toBe("H1B_BAD_ARGUMENT");
    const badFull = new Int8Array(256);
    badFull[200] = -2;
    expect(() => haloI2x256Codec.encode(badFull, 1, 256)).toThrow(/trits\[200\]|must be -1, 0 or \+1/);
    expect(codeOf(() => haloI2x256Codec.encode(new Int8Array(10), 1, 11))).toBe("H1B_BAD_ARGUMENT");
    expect(codeOf(() => haloI2x256Codec.decodeRows(new Uint8Array(100), 2, 256, 0, 2, new Int8Array(512)))).toBe("H1B_TRUNCATED");
    expect(codeOf(() => haloI2x256Codec.checkShape(0, 256, "t"))).toBe("H1B_BAD_DIMENSION");
  });
});
