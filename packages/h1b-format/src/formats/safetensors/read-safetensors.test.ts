// Tests of the safetensors reader/writer: round trips, every header validation, truncation and mutation fuzz.
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { codeOf } from "../../error-code.test-support.js";
import { memorySource, type ByteSource } from "../../core/byte-source.js";
import { openSafetensors, readSafetensors } from "./read-safetensors.js";
import { safetensorsHeader, writeSafetensors, type SafetensorsWriteEntry } from "./write-safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "halo-safetensors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function entry(name: string, dtype: SafetensorsWriteEntry["dtype"], shape: number[], bytes: Uint8Array): SafetensorsWriteEntry {
  return { name, dtype, shape, chunks: () => [bytes] };
}

/** A small valid file: three tensors of different dtypes and a metadata block. */
function tinyFile(): Uint8Array {
  const path = join(dir, "tiny.safetensors");
  writeSafetensors(
    path,
    [
      entry("a.weight", "F32", [2, 3], new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer)),
      entry("b.packed", "U8", [2, 2], Uint8Array.from([0x64, 0x15, 0xaa, 0x00])),
      entry("c.scale", "BF16", [1], Uint8Array.from([0x80, 0x3f])),
    ],
    { format: "pt" },
  );
  return new Uint8Array(readFileSync(path));
}

/** A raw file from a header object and a data buffer. */
function rawFile(header: unknown, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Wraps a source, failing the test if any read asks for more bytes than the file holds. */
function guardedSource(bytes: Uint8Array): ByteSource & { requested: number } {
  const inner = memorySource(bytes);
  const guarded = {
    path: inner.path,
    byteLength: inner.byteLength,
    requested: 0,
    read(offset: number, length: number): Uint8Array {
      guarded.requested += length;
      if (length > bytes.length) throw new Error(`read of ${length} bytes from a ${bytes.length}-byte file`);
      return inner.read(offset, length);
    },
    close(): void {},
  };
  return guarded;
}

describe("safetensors reader and writer", () => {
  it("round-trips tensors, shapes, dtypes, metadata and bytes through a file", () => {
    const bytes = tinyFile();
    const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(length % 8).toBe(0);
    const file = openSafetensors(join(dir, "tiny.safetensors"));
    expect(file.metadata).toEqual({ format: "pt" });
    expect([...file.tensors.keys()]).toEqual(["a.weight", "b.packed", "c.scale"]);
    expect(file.tensor("a.weight")).toMatchObject({ dtype: "F32", shape: [2, 3], byteLength: 24, offset: 8 + length });
    expect([...new Float32Array(file.read("a.weight").slice().buffer)]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...file.read("b.packed")]).toEqual([0x64, 0x15, 0xaa, 0x00]);
    expect([...file.read("c.scale")]).toEqual([0x80, 0x3f]);
    expect(codeOf(() => file.tensor("nope"))).toBe("H1B_MISSING_TENSOR");
    file.close();
  });

  it("writes a header any safetensors reader accepts: sorted contiguous offsets, padded to 8", () => {
    const header = safetensorsHeader([
      { name: "x", dtype: "I64", shape: [] },
      { name: "y", dtype: "F16", shape: [3, 0] },
      { name: "z", dtype: "U8", shape: [5] },
    ]);
    const json = JSON.parse(new TextDecoder().decode(header.subarray(8)));
    expect(json).toEqual({
      x: { dtype: "I64", shape: [], data_offsets: [0, 8] },
      y: { dtype: "F16", shape: [3, 0], data_offsets: [8, 8] },
      z: { dtype: "U8", shape: [5], data_offsets: [8, 13] },
    });
    const file = rawFile(json, new Uint8Array(13));
    const parsed = readSafetensors(memorySource(file));
    expect(parsed.tensor("y").byteLength).toBe(0);
    expect(parsed.tensor("x").shape).toEqual([]);
  });

  it("refuses a producer that yields the wrong byte count and leaves no file", () => {
    const path = join(dir, "short.safetensors");
    expect(codeOf(() => writeSafetensors(path, [entry("a", "F32", [2], new Uint8Array(4))]))).toBe("H1B_BAD_TENSOR");
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.partial`)).toBe(false);
    expect(codeOf(() => writeSafetensors(path, [entry("a", "U8", [1], new Uint8Array(1)), entry("a", "U8", [1], new Uint8Array(1))]))).toBe("H1B_BAD_ARGUMENT");
  });

  describe("refuses bad files with the right code", () => {
    const ok = { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] } };
    const cases: Array<[string, Uint8Array, string]> = [
      ["shorter than the length field", new Uint8Array(5), "H1B_TRUNCATED"],
      ["header length beyond the file", rawFile(ok, new Uint8Array(4), 10_000n), "H1B_TRUNCATED"],
      ["header length over 100 MB", rawFile(ok, new Uint8Array(4), 2n ** 63n), "H1B_TOO_LARGE"],
      [
        "header not JSON",
        (() => {
          const f = rawFile(ok, new Uint8Array(4));
          f[8] = 0x5b;
          f[9] = 0x7d;
          return f;
        })(),
        "H1B_BAD_METADATA",
      ],
      [
        "header not UTF-8",
        (() => {
          const f = rawFile(ok, new Uint8Array(4));
          f[12] = 0xff;
          return f;
        })(),
        "H1B_BAD_METADATA",
      ],
      ["header a JSON array", rawFile([1, 2], new Uint8Array(0)), "H1B_BAD_METADATA"],
      ["entry not an object", rawFile({ a: 3 }, new Uint8Array(0)), "H1B_BAD_METADATA"],
      ["metadata value not a string", rawFile({ __metadata__: { n: 1 }, ...ok }, new Uint8Array(4)), "H1B_BAD_METADATA"],
      ["unknown dtype", rawFile({ a: { dtype: "Q4", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), "H1B_UNKNOWN_DTYPE"],
      ["missing dtype", rawFile({ a: { shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), "H1B_BAD_METADATA"],
      ["negative dimension", rawFile({ a: { dtype: "U8", shape: [-4], data_offsets: [0, 4] } }, new Uint8Array(4)), "H1B_BAD_METADATA"],
      ["fractional dimension", rawFile({ a: { dtype: "U8", shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), "H1B_BAD_METADATA"],
      [
        "element count overflow",
        rawFile({ a: { dtype: "U8", shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, new Uint8Array(4)),
        "H1B_BAD_DIMENSION",
      ],
      ["shape vs byte size", rawFile({ a: { dtype: "F32", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), "H1B_BAD_TENSOR"],
      ["offsets reversed", rawFile({ a: { dtype: "U8", shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), "H1B_BAD_OFFSET"],
      ["offsets not a pair", rawFile({ a: { dtype: "U8", shape: [4], data_offsets: [0] } }, new Uint8Array(4)), "H1B_BAD_OFFSET"],
      ["tensor past the end of the file", rawFile({ a: { dtype: "U8", shape: [8], data_offsets: [0, 8] } }, new Uint8Array(4)), "H1B_TRUNCATED"],
      [
        "overlapping tensors",
        rawFile({ a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [2], data_offsets: [2, 4] } }, new Uint8Array(4)),
        "H1B_BAD_OFFSET",
      ],
      [
        "gap between tensors",
        rawFile({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2] }, b: { dtype: "U8", shape: [1], data_offsets: [3, 4] } }, new Uint8Array(4)),
        "H1B_BAD_OFFSET",
      ],
      ["data not starting at 0", rawFile({ a: { dtype: "U8", shape: [2], data_offsets: [2, 4] } }, new Uint8Array(4)), "H1B_BAD_OFFSET"],
      ["trailing bytes after the last tensor", rawFile(ok, new Uint8Array(6)), "H1B_BAD_OFFSET"],
    ];
    for (const [name, bytes, code] of cases) {
      it(name, () => {
        const source = guardedSource(bytes);
        expect(codeOf(() => readSafetensors(source))).toBe(code);
        expect(source.requested).toBeLessThanOrEqual(bytes.length);
      });
    }

    it("accepts unsorted header order when the offsets tile the buffer", () => {
      const file = rawFile(
        { b: { dtype: "U8", shape: [2], data_offsets: [2, 4] }, a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } },
        Uint8Array.from([1, 2, 3, 4]),
      );
      expect([...readSafetensors(memorySource(file)).read("b")]).toEqual([3, 4]);
    });

    it("names a missing file", () => {
      const path = join(dir, "absent.safetensors");
      let caught: unknown;
      try {
        openSafetensors(path);
      } catch (error) {
        caught = error;
      }
      expect(isHaloError(caught) && caught.code).toBe("H1B_MISSING_FILE");
      expect(isHaloError(caught) && caught.path).toBe(path);
    });
  });

  describe("fuzz", () => {
    /** Parses and reads every tensor; returns "ok" or the HaloError code, rethrows anything else. */
    function attempt(bytes: Uint8Array): string {
      const source = guardedSource(bytes);
      return codeOf(() => {
        const file = readSafetensors(source);
        for (const name of file.tensors.keys()) file.read(name);
        expect(source.requested).toBeLessThanOrEqual(2 * bytes.length + 8);
      });
    }

    it("throws only HaloErrors at every truncation point", () => {
      const bytes = tinyFile();
      for (let end = 0; end < bytes.length; end++) {
        const result = attempt(bytes.subarray(0, end));
        expect(result, `truncated at ${end}`).not.toBe("no error");
      }
      expect(attempt(bytes)).toBe("no error");
    });

    it("throws only HaloErrors for random byte mutations, insertions and deletions", () => {
      const bytes = tinyFile();
      const mutation = fc.oneof(
        fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), value: fc.constant(0) }),
      );
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 6 }), (mutations) => {
          const mutated = [...bytes];
          for (const m of mutations) {
            const at = m.at % (mutated.length + 1);
            if (m.kind === "set") mutated[Math.min(at, mutated.length - 1)] = m.value;
            else if (m.kind === "insert") mutated.splice(at, 0, m.value);
            else mutated.splice(at, 1);
          }
          attempt(Uint8Array.from(mutated));
        }),
        { numRuns: 3000 },
      );
    });

    it("throws only HaloErrors for structurally random headers", () => {
      const value = fc.oneof(
        fc.integer({ min: -3, max: 40 }),
        fc.constant(2 ** 60),
        fc.double(),
        fc.constantFrom("U8", "F32", "BF16", "F16", "I64", "Q4", ""),
        fc.constant(null),
        fc.array(fc.integer({ min: -2, max: 40 }), { maxLength: 3 }),
      );
      const header = fc.dictionary(
        fc.constantFrom("a", "b", "c", "__metadata__"),
        fc.oneof(fc.record({ dtype: value, shape: value, data_offsets: value }, { requiredKeys: [] }), value, fc.dictionary(fc.string(), value)),
      );
      fc.assert(
        fc.property(header, fc.integer({ min: 0, max: 48 }), (h, dataLength) => {
          attempt(rawFile(h, new Uint8Array(dataLength)));
        }),
        { numRuns: 3000 },
      );
    });
  });
});
