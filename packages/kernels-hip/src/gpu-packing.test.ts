// halo-g2: round trips at awkward shapes, the layout against the header's word/bit formula, refusals, and the native packer's bytes.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode } from "@halo/kernels";
import { gpuPacking, haloG2RowBytes, HALO_G2_CHUNK, HALO_G2_CHUNK_BYTES } from "./gpu-packing.js";
import { codeDirectory, NativeStatus } from "./native-binding.js";
import { needNative } from "./native.test-support.js";

/** Trits of a `rows × cols` matrix from fast-check. */
const matrix = fc
  .record({ rows: fc.integer({ min: 1, max: 9 }), cols: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(63, 64, 65, 127, 128, 129, 192, 256)) })
  .chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      trits: fc.array(fc.constantFrom(-1, 0, 1), { minLength: rows * cols, maxLength: rows * cols }).map((a) => Int8Array.from(a)),
    }),
  );

/**
 * The layout as kernels/halo_kernel_args.h states it, written independently of the codec: word i of a chunk holds
 * weights 16i … 16i + 15, weight 16i + 4j + b at bits 8b + 2j; code w + 1; padding code 1.
 */
function encodeByFormula(trits: Int8Array, rows: number, cols: number): Uint8Array {
  const chunks = Math.ceil(cols / 64);
  const out = new Uint8Array(rows * chunks * 16);
  const view = new DataView(out.buffer);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < chunks; c++) {
      for (let i = 0; i < 4; i++) {
        let word = 0;
        for (let j = 0; j < 4; j++) {
          for (let b = 0; b < 4; b++) {
            const k = 64 * c + 16 * i + 4 * j + b;
            const code = k < cols ? trits[r * cols + k]! + 1 : 1;
            word |= code << (8 * b + 2 * j);
          }
        }
        view.setUint32((r * chunks + c) * 16 + 4 * i, word >>> 0, true);
      }
    }
  }
  return out;
}

/** `bytes` (halo-g2 rows of `cols`) with the 2-bit code of weight (`row`, `col`) replaced by `code`; col may be padding. */
function withCode(bytes: Uint8Array, cols: number, row: number, col: number, code: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const k = col % 64;
  // Weight 16i + 4j + b of a chunk: byte 4i + b, bits 2j.
  const at = row * haloG2RowBytes(cols) + Math.floor(col / 64) * 16 + 4 * (k >> 4) + (k & 3);
  const shift = 2 * ((k >> 2) & 3);
  out[at] = (out[at]! & ~(3 << shift)) | (code << shift);
  return out;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return isHaloError(error) ? error.code : `not a HaloError: ${String(error)}`;
  }
  return undefined;
}

describe("gpuPacking (halo-g2)", () => {
  it("sizes: 2 bits a weight, rows of 16-byte chunks of 64 weights", () => {
    expect(gpuPacking.packing).toBe("halo-g2");
    expect(gpuPacking.bitsPerWeight).toBe(2);
    expect(HALO_G2_CHUNK).toBe(64);
    expect(HALO_G2_CHUNK_BYTES).toBe(16);
    expect(haloG2RowBytes(1)).toBe(16);
    expect(haloG2RowBytes(64)).toBe(16);
    expect(haloG2RowBytes(65)).toBe(32);
    expect(haloG2RowBytes(2560)).toBe(640);
    expect(haloG2RowBytes(6912)).toBe(1728);
    expect(gpuPacking.rowBytes!(100)).toBe(32);
    expect(gpuPacking.byteLength(3, 100)).toBe(96);
  });

  it("the TSDoc example: weight 0 = +1 and weight 4 = -1 share byte 0", () => {
    const row = new Int8Array(64);
    row[0] = 1;
    row[4] = -1;
    expect(gpuPacking.encode(row, 1, 64)[0]).toBe(0b01_01_00_10);
  });

  it("encode equals the header's word/bit formula and decode inverts it (property, awkward shapes)", () => {
    fc.assert(
      fc.property(matrix, ({ rows, cols, trits }) => {
        const bytes = gpuPacking.encode(trits, rows, cols);
        expect(bytes.length).toBe(gpuPacking.byteLength(rows, cols));
        expect(bytes).toEqual(encodeByFormula(trits, rows, cols));
        const back = new Int8Array(rows * cols);
        gpuPacking.decodeRows(bytes, rows, cols, 0, rows, back);
        expect(back).toEqual(trits);
      }),
      { numRuns: 200 },
    );
  });

  it("decodes any row range on its own (rows are independent)", () => {
    fc.assert(
      fc.property(
        matrix.chain((m) => fc.record({ m: fc.constant(m), start: fc.integer({ min: 0, max: m.rows - 1 }) })),
        ({ m: { rows, cols, trits }, start }) => {
          const bytes = gpuPacking.encode(trits, rows, cols);
          const count = rows - start;
          const out = new Int8Array(count * cols);
          gpuPacking.decodeRows(bytes, rows, cols, start, count, out);
          expect(out).toEqual(trits.subarray(start * cols));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("padding weights are code 1 (w = 0)", () => {
    const bytes = gpuPacking.encode(new Int8Array(65).fill(-1), 1, 65);
    // Chunk 1 holds weight 64 (code 0) and 63 padding weights (code 1): byte 0 bits 0-1 are 0, everything else 01.
    expect(bytes[16]).toBe(0b01_01_01_00);
    expect([...bytes.subarray(17, 32)]).toEqual(new Array(15).fill(0x55));
    expect([...bytes.subarray(0, 16)]).toEqual(new Array(16).fill(0));
  });

  it("refuses a trit outside {-1, 0, 1}, naming its index, in whole and padded chunks", () => {
    for (const [cols, at] of [
      [64, 37],
      [70, 66],
    ] as const) {
      const trits = new Int8Array(2 * cols);
      trits[cols + at] = 2;
      try {
        gpuPacking.encode(trits, 2, cols);
        expect.unreachable();
      } catch (error) {
        expect(error).toMatchObject({ code: KernelsErrorCode.KERNELS_BAD_ARGUMENT, field: `trits[${cols + at}]`, actual: 2 });
      }
    }
  });

  it("refuses bad shapes, too few trits and too few bytes with KERNELS_BAD_ARGUMENT", () => {
    const B = KernelsErrorCode.KERNELS_BAD_ARGUMENT;
    expect(codeOf(() => gpuPacking.checkShape(0, 4, "w"))).toBe(B);
    expect(codeOf(() => gpuPacking.checkShape(4, 1.5, "w"))).toBe(B);
    expect(codeOf(() => gpuPacking.checkShape(2 ** 30, 2 ** 20, "w"))).toBe(B);
    expect(codeOf(() => gpuPacking.encode(new Int8Array(10), 2, 6))).toBe(B);
    expect(codeOf(() => gpuPacking.decodeRows(new Uint8Array(31), 2, 64, 0, 2, new Int8Array(128)))).toBe(B);
    expect(codeOf(() => gpuPacking.decodeRows(new Uint8Array(32), 2, 64, 0, 2, new Int8Array(127)))).toBe(B);
  });

  it("a code 3 anywhere in the rows decoded is KERNELS_BAD_WEIGHTS, padding included", () => {
    const cols = 70;
    const good = gpuPacking.encode(new Int8Array(2 * cols), 2, cols);
    for (const at of [0, 5, 16 + 15, 32 + 1]) {
      const bytes = Uint8Array.from(good);
      bytes[at] = bytes[at]! | 0b1100; // weight at bits 2-3 gets code 3
      expect(codeOf(() => gpuPacking.decodeRows(bytes, 2, cols, 0, 2, new Int8Array(2 * cols)))).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
    }
    // A padding weight (column ≥ cols) must be code 1: 0 and 2 are refused too, in any padding position.
    for (const col of [70, 71, 100, 127]) {
      for (const code of [0, 2]) {
        expect(codeOf(() => gpuPacking.decodeRows(withCode(good, cols, 1, col, code), 2, cols, 0, 2, new Int8Array(2 * cols)))).toBe(
          KernelsErrorCode.KERNELS_BAD_WEIGHTS,
        );
      }
    }
    expect(() => gpuPacking.decodeRows(withCode(good, cols, 1, 69, 2), 2, cols, 0, 2, new Int8Array(2 * cols))).not.toThrow();
    // Rows outside the range decoded are not read.
    const bytes = Uint8Array.from(good);
    bytes[32] = 0xff;
    const out = new Int8Array(cols);
    gpuPacking.decodeRows(bytes, 2, cols, 0, 1, out);
    expect(out.every((t) => t === 0)).toBe(true);
  });
});

describe("decodeRows and the device upload agree on which bytes are halo-g2", () => {
  it("every code (0 … 3) at real and padding columns: decodeRows refuses exactly what uploadG2 refuses, both as bad weights", (context) => {
    const native = needNative(context, "halo-g2 upload");
    // down is [hidden][intermediate] = [64][100]: rows of two chunks, the second holding 28 padding weights.
    const config = { hidden: 64, intermediate: 100, layers: 1, heads: 2, kvHeads: 1, headDim: 32, vocab: 40, context: 16 };
    const model = new native.GpuModel(
      { ...config, maxSequences: 1, maxBatchTokens: 4, ropeTheta: 10000, eps: 1e-5, relu2: true, kvDtype: "f16", graphs: false },
      "emulator",
      codeDirectory(),
    );
    try {
      expect(model.openStatus()).toBe(NativeStatus.OK);
      const rows = 64;
      const cols = 100;
      expect(model.setMatrix(0, 3, rows, cols, 0, new Float32Array(rows).fill(1))).toBe(NativeStatus.OK);
      const good = gpuPacking.encode(
        Int8Array.from({ length: rows * cols }, (_, i) => ((i * 7) % 3) - 1),
        rows,
        cols,
      );
      let refused = 0;
      for (const col of [0, 63, 64, 99, 100, 101, 127]) {
        for (const code of [0, 1, 2, 3]) {
          const bytes = withCode(good, cols, 5, col, code);
          const decoded = codeOf(() => gpuPacking.decodeRows(bytes, rows, cols, 0, rows, new Int8Array(rows * cols)));
          const status = model.uploadG2(0, 3, 0, bytes, rows);
          const what = `column ${col}, code ${code}`;
          if (decoded === undefined) expect(status, what).toBe(NativeStatus.OK);
          else {
            expect(decoded, what).toBe(KernelsErrorCode.KERNELS_BAD_WEIGHTS);
            expect(status, what).toBe(NativeStatus.BAD_WEIGHTS);
            refused++;
          }
        }
      }
      // Refused: code 3 at the 7 columns, and codes 0 and 2 at the 3 padding columns.
      expect(refused).toBe(7 + 2 * 3);
    } finally {
      model.dispose();
    }
  });
});

describe("native packG2", () => {
  it("gives the same bytes as gpuPacking.encode at awkward shapes", (context) => {
    const native = needNative(context, "native packG2");
    fc.assert(
      fc.property(matrix, ({ rows, cols, trits }) => {
        const packed = native.packG2(trits, rows, cols);
        expect(packed).toBeInstanceOf(Uint8Array);
        expect(packed).toEqual(gpuPacking.encode(trits, rows, cols));
      }),
      { numRuns: 100 },
    );
  });

  it("refuses a trit outside {-1, 0, 1} with a status, not bytes", (context) => {
    const native = needNative(context, "native packG2");
    const trits = new Int8Array(128);
    trits[77] = 3;
    expect(typeof native.packG2(trits, 2, 64)).toBe("number");
    expect(native.packG2(trits, 2, 64)).not.toBe(0);
  });
});
