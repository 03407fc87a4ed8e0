// cpuPacking (halo-i2x256, the kernels' halo_block_i2 layout): golden bytes of the codec it replaces, a hand-computed
// example, round trips, row independence, and that @halo/h1b-format accepts it as passed (type and value) without registering it.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, expectTypeOf, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import type { PackingCodec } from "@halo/kernels";
import {
  openModel,
  readHalo,
  synthModel,
  ternaryPackings,
  TERNARY_ROLES,
  writeHalo,
  type TernaryCodec,
  type TernaryCodecs,
  type WriteHaloOptions,
} from "@halo/h1b-format";
import { cpuPacking, HALO_I2X256_BLOCK_BYTES, haloI2x256RowBytes } from "./packing.js";
import { backendFactory } from "./cpu-factory.js";

const dir = mkdtempSync(join(tmpdir(), "halo-cpu-packing-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function decodeAll(bytes: Uint8Array, rows: number, cols: number): Int8Array {
  const out = new Int8Array(rows * cols);
  cpuPacking.decodeRows(bytes, rows, cols, 0, rows, out);
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

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** Deterministic trits (an LCG, so the golden bytes below do not depend on any other package's generator). */
function lcgTrits(count: number, seed: number): Int8Array {
  const out = new Int8Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 24) % 3) - 1;
  }
  return out;
}

/**
 * Outputs of `haloI2x256Codec.encode(lcgTrits(rows·cols, seed), rows, cols)` from @halo/h1b-format 0.2
 * (the codec this one replaces), recorded before the move: files written then must read the same.
 */
const GOLDEN: ReadonlyArray<{ rows: number; cols: number; seed: number; sha256: string; hex?: string }> = [
  { rows: 1, cols: 1, seed: 1, sha256: "c2d1107bd2e63450a2f4499b4524913eb42f84d50066df807466359944161f05", hex: "54" + "55".repeat(63) },
  { rows: 1, cols: 5, seed: 2, sha256: "660b2dab94bf3540e8c0909b3e8b5e244d98097cd0a57b27c1e38e94262497b4", hex: "5454545454" + "55".repeat(59) },
  {
    rows: 2,
    cols: 64,
    seed: 3,
    sha256: "9e6bd825e6f3b887a428dd446722c9fa5048b9a814089681a3913128bb15471c",
    hex: "5456555556565554565555555554545654555654545554555455565654545455545655555455555554555555545655545455545455565555565455565656555556545556555556565454555655545455565655555454565455555655555655565556555456545456555554545454555556565655555454565454545655565656",
  },
  {
    rows: 1,
    cols: 256,
    seed: 4,
    sha256: "33672c3e0a71ab62fe37e1b2e76ccd37b144efc054419bb3d9d4c806fde320aa",
    hex: "041681a11094aa5a20a0500a819811892996a14116629685180a1950a44994a6a445591a88a01a6640821401816224a4190609045a2086445a68614298401185",
  },
  { rows: 3, cols: 257, seed: 5, sha256: "57f2a3862b8061b25488fe97784b6ef357eb5c5acb4822bb9921d39cade6ef72" },
  { rows: 2, cols: 300, seed: 6, sha256: "9bb4ad544a12dd0f10fe1c956b0686ac1bde553a13e42e7abfee9d2aa52a2248" },
  { rows: 4, cols: 512, seed: 7, sha256: "2d175cd9156bbe3d661d3649ee1830e12fb370816408a8d4f6f52036d8b051e7" },
  { rows: 7, cols: 600, seed: 8, sha256: "955914ebea397cb46522fb56d64f7aaa96673bc19df500ca4f0af3167767238b" },
  { rows: 16, cols: 2560, seed: 9, sha256: "15ccf4ff0335778c9c1b1fb8111f8d244a53aab61b38244431776bf2aa3e9a9b" },
  { rows: 5, cols: 6912, seed: 10, sha256: "1bc7c8fb443963002088b3f19bfacbd7e95af12b75536f777dd24380c616a337" },
];

/**
 * SHA-256 of every ternary matrix's bytes (layer by layer, TERNARY_ROLES order) of the synthetic models that
 * @halo/h1b-format 0.2's `writeHalo` stored in halo-i2x256 by default, recorded before the move.
 */
const GOLDEN_MODELS = [
  { shape: "tiny", seed: 1, activation: "relu2", sha256: "102663565a071ced9d282c371571b5a1c29f1c4202b899f40699ebcbe92179e2" },
  { shape: "tiny-gqa", seed: 2, activation: "silu", sha256: "edf60e89f4e5d8353238c4ea93994887b1ed34161b52f7fb8bea9bf4558d302b" },
] as const;

/** Trits in {-1, 0, 1} of a `rows × cols` matrix. */
const matrix = (rows: number, cols: number): fc.Arbitrary<Int8Array> =>
  fc.array(fc.constantFrom(-1, 0, 1), { minLength: rows * cols, maxLength: rows * cols }).map((a) => Int8Array.from(a));

const shapes = fc.record({
  rows: fc.integer({ min: 1, max: 5 }),
  cols: fc.oneof(fc.constantFrom(1, 63, 64, 65, 255, 256, 257, 300, 511, 512, 600), fc.integer({ min: 1, max: 800 })),
});
const shapedMatrix = shapes.chain(({ rows, cols }) => fc.tuple(fc.constant(rows), fc.constant(cols), matrix(rows, cols)));

describe("cpuPacking (halo-i2x256)", () => {
  it("is the backend's listed packing: 2 bits per weight, rows of ceil(cols / 256) × 64 bytes", () => {
    expect(backendFactory.packings).toEqual([cpuPacking]);
    expect(cpuPacking.packing).toBe("halo-i2x256");
    expect(cpuPacking.bitsPerWeight).toBe(2);
    expect([1, 256, 257, 300, 512, 600, 2560, 6912].map(haloI2x256RowBytes)).toEqual([64, 64, 128, 128, 128, 192, 640, 1728]);
    expect(cpuPacking.byteLength(3, 300)).toBe(3 * 128);
    expect(cpuPacking.rowBytes!(300)).toBe(128);
  });

  it("writes exactly the bytes of the codec it replaces (golden outputs of @halo/h1b-format 0.2)", () => {
    for (const g of GOLDEN) {
      const trits = lcgTrits(g.rows * g.cols, g.seed);
      const bytes = cpuPacking.encode(trits, g.rows, g.cols);
      expect(bytes.length, `${g.rows} × ${g.cols}`).toBe(cpuPacking.byteLength(g.rows, g.cols));
      if (g.hex !== undefined) expect(Buffer.from(bytes).toString("hex")).toBe(g.hex);
      expect(sha256(bytes), `${g.rows} × ${g.cols}`).toBe(g.sha256);
      expect(decodeAll(bytes, g.rows, g.cols)).toEqual(trits);
    }
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
    const bytes = cpuPacking.encode(row, 1, cols);
    const expected = new Uint8Array(128).fill(0x55);
    expected[0] = 0b00_10_00_10;
    expected[5] = 0b01_01_01_00;
    expected[63] = 0b10_01_01_01;
    expected[64] = 0b01_01_01_00; // weight 256 = -1, then three padding codes
    expected[107] = 0b01_01_01_10; // weight 299 = +1
    expect([...bytes]).toEqual([...expected]);
    expect(decodeAll(bytes, 1, cols)).toEqual(row);
  });

  it("agrees with the kernels' halo_i2_code(row, k) formula (property)", () => {
    fc.assert(
      fc.property(shapedMatrix, ([rows, cols, trits]) => {
        const bytes = cpuPacking.encode(trits, rows, cols);
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
      fc.property(shapedMatrix, ([rows, cols, trits]) => {
        const bytes = cpuPacking.encode(trits, rows, cols);
        expect(bytes.length).toBe(cpuPacking.byteLength(rows, cols));
        expect(decodeAll(bytes, rows, cols)).toEqual(trits);
      }),
      { numRuns: 100 },
    );
  });

  it("keeps rows independent: a matrix's bytes are its rows' bytes end to end, and any row range decodes alone (property)", () => {
    fc.assert(
      fc.property(
        shapedMatrix
          .chain(([rows, cols, trits]) => fc.tuple(fc.constant(rows), fc.constant(cols), fc.constant(trits), fc.integer({ min: 0, max: rows - 1 })))
          .chain(([rows, cols, trits, start]) =>
            fc.tuple(fc.constant(rows), fc.constant(cols), fc.constant(trits), fc.constant(start), fc.integer({ min: 1, max: rows - start })),
          ),
        ([rows, cols, trits, start, count]) => {
          const bytes = cpuPacking.encode(trits, rows, cols);
          const rowBytes = cpuPacking.rowBytes!(cols)!;
          for (let r = 0; r < rows; r++) {
            const alone = cpuPacking.encode(trits.subarray(r * cols, (r + 1) * cols), 1, cols);
            expect(Buffer.from(bytes.subarray(r * rowBytes, (r + 1) * rowBytes)).equals(Buffer.from(alone))).toBe(true);
          }
          const expected = trits.subarray(start * cols, (start + count) * cols);
          const fromWhole = new Int8Array(count * cols);
          cpuPacking.decodeRows(bytes, rows, cols, start, count, fromWhole);
          expect(fromWhole).toEqual(expected);
          const fromSlice = new Int8Array(count * cols);
          cpuPacking.decodeRows(bytes.subarray(start * rowBytes, (start + count) * rowBytes), count, cols, 0, count, fromSlice);
          expect(fromSlice).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("reads the unused code 3 as 0, and refuses bad trits, bad shapes and short inputs with KERNELS_BAD_ARGUMENT", () => {
    expect([...decodeAll(new Uint8Array(64).fill(0xff), 1, 256)].every((t) => t === 0)).toBe(true);
    const bad = new Int8Array(300);
    bad[270] = 2;
    expect(codeOf(() => cpuPacking.encode(bad, 1, 300))).toBe("KERNELS_BAD_ARGUMENT");
    const badFull = new Int8Array(256);
    badFull[200] = -2;
    expect(() => cpuPacking.encode(badFull, 1, 256)).toThrow(/trits\[200\]/);
    expect(codeOf(() => cpuPacking.encode(new Int8Array(10), 1, 11))).toBe("KERNELS_BAD_ARGUMENT");
    expect(codeOf(() => cpuPacking.decodeRows(new Uint8Array(100), 2, 256, 0, 2, new Int8Array(512)))).toBe("KERNELS_BAD_ARGUMENT");
    expect(codeOf(() => cpuPacking.checkShape(0, 256, "t"))).toBe("KERNELS_BAD_ARGUMENT");
  });
});

describe("cpuPacking passed to @halo/h1b-format", () => {
  it("is accepted where h1b-format takes codecs, as a type (structurally: kernels-cpu does not import h1b-format)", () => {
    expectTypeOf(cpuPacking).toMatchTypeOf<TernaryCodec>();
    expectTypeOf<readonly PackingCodec[]>().toMatchTypeOf<TernaryCodecs>();
    expectTypeOf({ codecs: backendFactory.packings ?? [], packing: cpuPacking }).toMatchTypeOf<WriteHaloOptions>();
    const codecs: TernaryCodecs = backendFactory.packings ?? [];
    expect(codecs).toHaveLength(1);
  });

  it("stores the synthetic models byte for byte as h1b-format 0.2 did, decodes them with the codec and maps them without it", async () => {
    for (const g of GOLDEN_MODELS) {
      const model = synthModel({ shape: g.shape, seed: g.seed, activation: g.activation });
      const path = join(dir, `${g.shape}.halo`);
      const report = await writeHalo(model, path, { codecs: backendFactory.packings ?? [] });
      expect(report.changes).toEqual([`ternary packing int8 → halo-i2x256 (${model.layers.length * TERNARY_ROLES.length} tensors)`]);
      expect(ternaryPackings()).not.toContain("halo-i2x256"); // passed, never registered
      const withCodec = await openModel(path, { codecs: backendFactory.packings ?? [] });
      const without = readHalo(path);
      const hash = createHash("sha256");
      withCodec.layers.forEach((layer, l) => {
        for (const role of TERNARY_ROLES) {
          const t = layer[role];
          expect(t.packing).toBe("halo-i2x256");
          hash.update(t.bytes());
          const expected = new Int8Array(t.rows * t.cols);
          model.layers[l]![role].decodeRows(0, t.rows, expected);
          expect(decodeAll(t.bytes(), t.rows, t.cols)).toEqual(expected);
          const out = new Int8Array(t.rows * t.cols);
          t.decodeRows(0, t.rows, out);
          expect(out).toEqual(expected);
          expect(without.layers[l]![role].fileRange()).toEqual(t.fileRange());
        }
      });
      expect(hash.digest("hex")).toBe(g.sha256);
      expect(codeOf(() => without.layers[0]!.q.decodeRows(0, 1, new Int8Array(without.layers[0]!.q.cols)))).toBe("H1B_UNKNOWN_DTYPE");
      withCodec.close();
      without.close();
    }
  });
});
