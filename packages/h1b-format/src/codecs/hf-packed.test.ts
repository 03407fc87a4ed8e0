// Tests of the Hugging Face packed ternary codec: known bytes, pack/unpack properties, shape errors.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { hfPackedCodec } from "./hf-packed.js";
import { ternaryCodec } from "./registry.js";

const tritsArbitrary = fc
  .record({ quarter: fc.integer({ min: 1, max: 6 }), cols: fc.integer({ min: 1, max: 9 }) })
  .chain(({ quarter, cols }) =>
    fc
      .array(fc.constantFrom(-1, 0, 1), { minLength: 4 * quarter * cols, maxLength: 4 * quarter * cols })
      .map((values) => ({ rows: 4 * quarter, cols, trits: Int8Array.from(values) })),
  );

/** Literal transcription of transformers' `pack_weights` (integrations/bitnet.py) for comparison. */
function transformersPack(trits: Int8Array, rows: number, cols: number): Uint8Array {
  const quarter = rows / 4;
  const packed = new Uint8Array(quarter * cols);
  for (let i = 0; i < 4; i++) {
    for (let r = 0; r < quarter; r++) {
      for (let c = 0; c < cols; c++) packed[r * cols + c]! |= (trits[(i * quarter + r) * cols + c]! + 1) << (2 * i);
    }
  }
  return packed;
}

describe("hf-packed codec", () => {
  it("is registered under its packing name", () => {
    expect(ternaryCodec("hf-packed")).toBe(hfPackedCodec);
  });

  it("packs the four row quarters LSB first with code = trit + 1", () => {
    // rows = 4, cols = 2: column 0 holds rows (-1, 0, 1, 0), column 1 holds (1, 1, -1, 0).
    const trits = Int8Array.from([-1, 1, 0, 1, 1, -1, 0, 0]);
    const packed = hfPackedCodec.encode(trits, 4, 2);
    expect([...packed]).toEqual([0b01_10_01_00, 0b01_00_10_10]);
    const out = new Int8Array(8);
    hfPackedCodec.decodeRows(packed, 4, 2, 0, 4, out);
    expect([...out]).toEqual([...trits]);
  });

  it("decode(encode(t)) is t, and encode matches transformers' pack_weights", () => {
    fc.assert(
      fc.property(tritsArbitrary, ({ rows, cols, trits }) => {
        const packed = hfPackedCodec.encode(trits, rows, cols);
        expect(packed.length).toBe(hfPackedCodec.byteLength(rows, cols));
        expect(packed).toEqual(transformersPack(trits, rows, cols));
        const out = new Int8Array(rows * cols);
        hfPackedCodec.decodeRows(packed, rows, cols, 0, rows, out);
        expect(out).toEqual(trits);
      }),
      { numRuns: 300 },
    );
  });

  it("decodes any row range the same as the whole matrix", () => {
    fc.assert(
      fc.property(tritsArbitrary, fc.nat(), fc.nat(), ({ rows, cols, trits }, a, b) => {
        const start = a % rows;
        const count = b % (rows - start + 1);
        const packed = hfPackedCodec.encode(trits, rows, cols);
        const out = new Int8Array(count * cols);
        hfPackedCodec.decodeRows(packed, rows, cols, start, count, out);
        expect(out).toEqual(trits.subarray(start * cols, (start + count) * cols));
      }),
      { numRuns: 200 },
    );
  });

  it("encode(decode(bytes)) is bytes for every byte without code 3", () => {
    const validByte = fc
      .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }))
      .map(([a, b, c, d]) => a | (b << 2) | (c << 4) | (d << 6));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.infiniteStream(validByte), (quarter, cols, stream) => {
        const rows = 4 * quarter;
        const bytes = Uint8Array.from(stream.take(quarter * cols));
        const out = new Int8Array(rows * cols);
        hfPackedCodec.decodeRows(bytes, rows, cols, 0, rows, out);
        expect(hfPackedCodec.encode(out, rows, cols)).toEqual(bytes);
      }),
      { numRuns: 200 },
    );
  });

  it("maps the invalid code 3 to 0 like llama.cpp's converter", () => {
    const out = new Int8Array(4);
    hfPackedCodec.decodeRows(Uint8Array.from([0xff]), 4, 1, 0, 4, out);
    expect([...out]).toEqual([0, 0, 0, 0]);
  });

  it("refuses row counts that are not a multiple of 4 and values that are not trits", () => {
    for (const rows of [1, 2, 3, 6, 10]) {
      let caught: unknown;
      try {
        hfPackedCodec.checkShape(rows, 8, "test");
      } catch (error) {
        caught = error;
      }
      expect(isHaloError(caught) && caught.code).toBe("H1B_BAD_DIMENSION");
    }
    expect(() => hfPackedCodec.encode(Int8Array.from([2, 0, 0, 0]), 4, 1)).toThrow(/not a trit/);
    expect(() => hfPackedCodec.encode(Int8Array.from([0, 0, 0]), 4, 1)).toThrow(/wrong number/);
  });
});
