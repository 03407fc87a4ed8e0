import { describe, expect, it } from "vitest";
import { KernelsErrorCode } from "../errors.js";
import { rowPackingCodec, type RowPackingLayout } from "./row-packing.js";

// 16 weights in 4 bytes; byte p holds weights p, p + 4, p + 8, p + 12 at bits 0, 2, 4, 6.
const layout: RowPackingLayout = { packing: "demo-16", unitWeights: 16, unitName: "unit", firstWeight: (p) => p, weightStride: 4, strict: false };

/** The stored 2-bit code of weight (r, c), straight from the layout's definition. */
function codeAt(bytes: Uint8Array, cols: number, r: number, c: number): number {
  const rowBytes = Math.ceil(cols / 16) * 4;
  const k = c % 16;
  return (bytes[r * rowBytes + Math.floor(c / 16) * 4 + (k % 4)]! >> (2 * Math.floor(k / 4))) & 3;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe("rowPackingCodec", () => {
  it("places every weight where the layout says, pads with code 1 and decodes back", () => {
    const codec = rowPackingCodec(layout);
    for (const cols of [16, 20, 31, 48]) {
      const rows = 3;
      const trits = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 5 + 1) % 3) - 1);
      const bytes = codec.encode(trits, rows, cols);
      expect(bytes.length).toBe(codec.byteLength(rows, cols));
      const padded = Math.ceil(cols / 16) * 16;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < padded; c++) expect(codeAt(bytes, cols, r, c)).toBe(c < cols ? trits[r * cols + c]! + 1 : 1);
      }
      const out = new Int8Array(2 * cols);
      codec.decodeRows(bytes, rows, cols, 1, 2, out);
      expect(out).toEqual(trits.subarray(cols));
    }
    expect(codec.encode(Int8Array.of(1, 0, 0, 0, -1), 1, 5)[0]).toBe(0x52);
  });

  it("names the layout in errors; lenient layouts read code 3 as 0, strict ones refuse it and bad padding", () => {
    const lenient = rowPackingCodec(layout);
    const strict = rowPackingCodec({ ...layout, packing: "demo-strict", strict: true });
    expect(() => lenient.encode(Int8Array.of(0, 2), 1, 2)).toThrow(/^demo-16 encode: .*/);
    expect(codeOf(() => strict.encode(Int8Array.of(0, 0, -3), 1, 3))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(codeOf(() => lenient.decodeRows(new Uint8Array(3), 1, 16, 0, 1, new Int8Array(16)))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(codeOf(() => lenient.decodeRows(new Uint8Array(4), 1, 16, 0, 1, new Int8Array(15)))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    const threes = new Uint8Array(4).fill(0xff);
    const out = new Int8Array(16).fill(9);
    lenient.decodeRows(threes, 1, 16, 0, 1, out);
    expect([...out].every((t) => t === 0)).toBe(true);
    expect(codeOf(() => strict.decodeRows(threes, 1, 16, 0, 1, out))).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
    // cols = 5: weight 5 (byte 1, bits 2-3) is padding; code 0 there is refused only by the strict codec.
    const bytes = strict.encode(new Int8Array(5), 1, 5);
    bytes[1] = bytes[1]! & ~0b1100;
    expect(() => lenient.decodeRows(bytes, 1, 5, 0, 1, new Int8Array(5))).not.toThrow();
    expect(() => strict.decodeRows(bytes, 1, 5, 0, 1, new Int8Array(5))).toThrow(/^demo-strict decode: a padding weight/);
  });

  it("refuses a layout that does not place every weight of a unit exactly once", () => {
    expect(codeOf(() => rowPackingCodec({ ...layout, unitWeights: 18 }))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(codeOf(() => rowPackingCodec({ ...layout, weightStride: 2 }))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect(codeOf(() => rowPackingCodec({ ...layout, firstWeight: (p) => p + 1 }))).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
  });
});
