// Tests of the ggml block codecs: exact ternary round trips, byte-level layouts, float block decoders.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { f16ToF32, f32ToF16 } from "../core/half.js";
import { QK_K, blockScales, i2sCodec, i2sScale, q4_kCodec, q6_kCodec, q8_0Codec, tq1_0Codec, tq2_0Codec, tqBlockScales } from "./ggml.js";
import { floatCodec, ternaryCodec } from "./registry.js";

/** f16 has an 11-bit significand: relative rounding error of a normal value is at most 2^-11. */
const MAX_REL_ERROR_F16 = 2 ** -11;

const tritMatrix = (block: number) =>
  fc.record({ rows: fc.integer({ min: 1, max: 5 }), blocksPerRow: fc.integer({ min: 1, max: 3 }), seed: fc.integer() }).map(({ rows, blocksPerRow, seed }) => {
    const cols = blocksPerRow * block;
    const trits = new Int8Array(rows * cols);
    let s = seed >>> 0;
    for (let i = 0; i < trits.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      trits[i] = ((s >>> 16) % 3) - 1;
    }
    return { rows, cols, trits };
  });

describe("ternary ggml codecs", () => {
  for (const codec of [tq1_0Codec, tq2_0Codec, i2sCodec]) {
    it(`${codec.packing}: decode(encode(t)) === t for random trits, whole and by row ranges`, () => {
      fc.assert(
        fc.property(tritMatrix(codec.packing === "i2_s" ? 128 : QK_K), ({ rows, cols, trits }) => {
          const bytes = codec.encode(trits, rows, cols, { scale: { kind: "tensor", value: 0.25 } });
          expect(bytes.length).toBe(codec.byteLength(rows, cols));
          const out = new Int8Array(rows * cols);
          codec.decodeRows(bytes, rows, cols, 0, rows, out);
          expect(out).toEqual(trits);
          const last = new Int8Array(cols);
          codec.decodeRows(bytes, rows, cols, rows - 1, 1, last);
          expect(last).toEqual(trits.subarray((rows - 1) * cols));
        }),
        { numRuns: 60 },
      );
    });
    it(`${codec.packing} is registered`, () => {
      expect(ternaryCodec(codec.packing)).toBe(codec);
    });
  }

  it("tq2_0 layout: element 128h + 32n + m in byte 32h + m, bits 2n (LSB first), d last", () => {
    const trits = new Int8Array(256);
    trits[0] = 1; // byte 0, n = 0 → code 2
    trits[32] = -1; // byte 0, n = 1 → code 0
    trits[128 + 96 + 5] = 1; // byte 32 + 5, n = 3 → code 2
    const bytes = tq2_0Codec.encode(trits, 1, 256, { scale: { kind: "tensor", value: 1 } });
    expect(bytes.length).toBe(66);
    expect(bytes[0]).toBe(0b01_01_00_10);
    expect(bytes[37]).toBe(0b10_01_01_01);
    expect(bytes[1]).toBe(0b01_01_01_01);
    expect(bytes[64]! | (bytes[65]! << 8)).toBe(0x3c00);
  });

  it("tq1_0 layout: ceil-scaled base-3 bytes, first digit most significant, qh ×3", () => {
    const plus = tq1_0Codec.encode(new Int8Array(256).fill(1), 1, 256, { scale: { kind: "tensor", value: 1 } });
    const zero = tq1_0Codec.encode(new Int8Array(256), 1, 256, { scale: { kind: "tensor", value: 1 } });
    expect(plus.length).toBe(54);
    // All +1: digits 2,2,2,2,2 → 242 → ceil(242·256/243) = 255; qh: 2,2,2,2,0 → 240 → 253.
    expect([...plus.subarray(0, 48)].every((b) => b === 255)).toBe(true);
    expect([...plus.subarray(48, 52)]).toEqual([253, 253, 253, 253]);
    // All 0: digits 1,1,1,1,1 → 121 → 128; qh 1,1,1,1,0 → 120 → 127.
    expect([...zero.subarray(0, 48)].every((b) => b === 128)).toBe(true);
    expect([...zero.subarray(48, 52)]).toEqual([127, 127, 127, 127]);
    const one = new Int8Array(256);
    one[32] = 1; // qs[0], digit n = 1 → 1·81 + 2·27 + 1·9 + 1·3 + 1 = 148 → ceil(148·256/243) = 156
    expect(tq1_0Codec.encode(one, 1, 256, { scale: { kind: "tensor", value: 1 } })[0]).toBe(156);
  });

  it("i2_s layout: element j of a 128-block in bits 7..6 of byte j, f32 scale after the codes", () => {
    const trits = new Int8Array(256);
    trits[0] = 1;
    trits[96 + 3] = -1;
    const bytes = i2sCodec.encode(trits, 2, 128, { scale: { kind: "tensor", value: 0.75 } });
    expect(bytes.length).toBe(256 / 4 + 32);
    expect(bytes[0]).toBe(0b10_01_01_01);
    expect(bytes[3]).toBe(0b01_01_01_00);
    expect(i2sScale(bytes, 2, 128)).toBe(0.75);
    expect([...bytes.subarray(68)].every((b) => b === 0)).toBe(true);
  });

  it("tq scales: tensor, row and coarse block scales become f16 d per 256-block; measured rounding ≤ 2^-11", () => {
    fc.assert(
      fc.property(fc.float({ min: Math.fround(1e-4), max: Math.fround(10), noNaN: true }), (value) => {
        const bytes = tq2_0Codec.encode(new Int8Array(512), 1, 512, { scale: { kind: "tensor", value } });
        const d = tqBlockScales(bytes, "tq2_0", 1, 512);
        expect(d[0]).toBe(f16ToF32(f32ToF16(value)));
        expect(Math.abs(d[0]! - value) / value).toBeLessThanOrEqual(MAX_REL_ERROR_F16);
      }),
    );
    const rows = new Float32Array([1, 2]);
    expect([...blockScales({ kind: "row", values: rows }, 2, 512, "tq1_0")]).toEqual([1, 1, 2, 2]);
    expect([...blockScales({ kind: "block", blockSize: 512, values: rows }, 2, 512, "tq1_0")]).toEqual([1, 1, 2, 2]);
    expect([...blockScales({ kind: "block", blockSize: 128, values: new Float32Array([3, 3, 4, 4]) }, 1, 512, "tq1_0")]).toEqual([3, 4]);
  });

  it("refuses scales it cannot express, missing scales and non-trits", () => {
    const codes = (fn: () => unknown): string => {
      try {
        fn();
      } catch (error) {
        if (isHaloError(error)) return error.code;
        throw error;
      }
      return "none";
    };
    const fine = { kind: "block", blockSize: 128, values: new Float32Array([3, 5]) } as const;
    expect(codes(() => tq2_0Codec.encode(new Int8Array(256), 1, 256, { scale: fine }))).toBe("H1B_LOSSY_CONVERSION");
    expect([...tqBlockScales(tq2_0Codec.encode(new Int8Array(256), 1, 256, { scale: fine, force: true }), "tq2_0", 1, 256)]).toEqual([4]);
    expect(codes(() => tq2_0Codec.encode(new Int8Array(256), 1, 256))).toBe("H1B_BAD_ARGUMENT");
    expect(codes(() => tq2_0Codec.encode(new Int8Array(256).fill(2), 1, 256, { scale: { kind: "tensor", value: 1 } }))).toBe("H1B_BAD_ARGUMENT");
    expect(codes(() => tq1_0Codec.checkShape(1, 100, "x"))).toBe("H1B_BAD_DIMENSION");
    expect(codes(() => i2sCodec.encode(new Int8Array(256), 2, 128, { scale: { kind: "row", values: new Float32Array([1, 2]) } }))).toBe("H1B_LOSSY_CONVERSION");
  });
});

describe("float ggml codecs", () => {
  it("q8_0 round trip is within half a quantisation step (d/2, d rounded to f16)", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -4, max: 4, noNaN: true }), { minLength: 64, maxLength: 64 }), (list) => {
        const values = Float32Array.from(list);
        const bytes = q8_0Codec.encode!(values);
        expect(bytes.length).toBe(68);
        const back = q8_0Codec.decode(bytes, 64);
        for (let b = 0; b < 2; b++) {
          const d = f16ToF32(bytes[34 * b]! | (bytes[34 * b + 1]! << 8));
          let amax = 0;
          for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[32 * b + i]!));
          // Step d/2, plus the f16 rounding of d times the largest code (127).
          const tolerance = d / 2 + 127 * Math.abs(d - amax / 127) + 1e-7;
          for (let i = 0; i < 32; i++) expect(Math.abs(back[32 * b + i]! - values[32 * b + i]!)).toBeLessThanOrEqual(tolerance);
        }
      }),
      { numRuns: 200 },
    );
    expect(floatCodec("q8_0")).toBe(q8_0Codec);
  });

  it("q8_0 decode is exact: q · d", () => {
    const bytes = new Uint8Array(34);
    bytes[0] = 0x00;
    bytes[1] = 0x38; // d = 0.5
    bytes[2] = 127;
    bytes[3] = 0x81; // -127
    bytes[33] = 3;
    const out = q8_0Codec.decode(bytes, 32);
    expect([out[0], out[1], out[2], out[31]]).toEqual([63.5, -63.5, 0, 1.5]);
  });

  it("q4_k decode follows the 6-bit scale/min packing of ggml block_q4_K", () => {
    const bytes = new Uint8Array(144);
    bytes[0] = 0x00;
    bytes[1] = 0x3c; // d = 1
    bytes[2] = 0x00;
    bytes[3] = 0x38; // dmin = 0.5
    const scales = bytes.subarray(4, 16);
    scales[0] = 2 | 0x40; // sub-block 0: scale 2; its top bits feed sub-block 4's scale
    scales[4] = 1; // sub-block 0: min 1
    scales[1] = 3; // sub-block 1: scale 3, min 0
    scales[8] = 0x21; // sub-block 4: scale low 1 (| 1<<4 from scales[0]) = 17, min 2
    const qs = bytes.subarray(16);
    qs[0] = 0x53; // element 0 (low nibble 3), element 32 (high nibble 5)
    qs[64] = 0x04; // element 128 = sub-block 4, low nibble 4
    const out = q4_kCodec.decode(bytes, 256);
    expect(out[0]).toBe(2 * 3 - 0.5 * 1);
    expect(out[32]).toBe(3 * 5);
    expect(out[128]).toBe(17 * 4 - 0.5 * 2);
    expect(out[1]).toBe(-0.5); // q = 0 → −dmin·min
  });

  it("q6_k decode follows ql/qh/scales of ggml block_q6_K", () => {
    const bytes = new Uint8Array(210);
    bytes[208] = 0x00;
    bytes[209] = 0x38; // d = 0.5
    const ql = bytes.subarray(0, 128);
    const qh = bytes.subarray(128, 192);
    const sc = bytes.subarray(192, 208);
    sc[0] = 3;
    sc[2] = 0xfe; // -2
    sc[4] = 1;
    ql[0] = 0x21; // element 0 low 1, element 64 low 2
    ql[32] = 0x07; // element 32 low 7
    qh[0] = 0b00_00_10_01; // element 0 high 1, element 32 high 2, element 64 high 0
    const out = q6_kCodec.decode(bytes, 256);
    expect(out[0]).toBe(0.5 * 3 * ((1 | (1 << 4)) - 32));
    expect(out[32]).toBe(0.5 * -2 * ((7 | (2 << 4)) - 32));
    expect(out[64]).toBe(0.5 * 1 * (2 - 32));
  });
});
