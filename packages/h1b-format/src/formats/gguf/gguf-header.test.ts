// GGUF header parser: every value type, nested arrays, v2/v3, alignment, and each validation error.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { memorySource } from "../../core/byte-source.js";
import { readGgufHeader } from "./gguf-header.js";

/** Raw little-endian GGUF bytes, written by hand so tests can produce any (broken) file. */
class Raw {
  private readonly out: number[] = [];
  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v).u8(v >> 8);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number | bigint): this {
    const b = BigInt(v);
    return this.u32(Number(b & 0xffffffffn)).u32(Number(b >> 32n));
  }
  f32(v: number): this {
    const buf = new DataView(new ArrayBuffer(4));
    buf.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.u8(buf.getUint8(i));
    return this;
  }
  f64(v: number): this {
    const buf = new DataView(new ArrayBuffer(8));
    buf.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.u8(buf.getUint8(i));
    return this;
  }
  str(s: string): this {
    const bytes = new TextEncoder().encode(s);
    this.u64(bytes.length);
    for (const b of bytes) this.u8(b);
    return this;
  }
  pad(alignment: number): this {
    while (this.out.length % alignment !== 0) this.u8(0);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.u8(0);
    return this;
  }
  get length(): number {
    return this.out.length;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

interface TensorSpec {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}

function file(kv: (r: Raw) => number, tensors: TensorSpec[], dataBytes: number, options: { version?: number; alignment?: number } = {}): Uint8Array {
  const body = new Raw();
  const kvCount = kv(body);
  const r = new Raw()
    .u32(0x46554747)
    .u32(options.version ?? 3)
    .u64(tensors.length)
    .u64(kvCount);
  const head = r.bytes();
  const infos = new Raw();
  for (const t of tensors) {
    infos.str(t.name).u32(t.dims.length);
    for (const d of t.dims) infos.u64(d);
    infos.u32(t.type).u64(t.offset);
  }
  const all = new Raw();
  for (const b of [...head, ...body.bytes(), ...infos.bytes()]) all.u8(b);
  all.pad(options.alignment ?? 32).zeros(dataBytes);
  return all.bytes();
}

function errorOf(bytes: Uint8Array): { code: string; offset?: number | undefined; field?: string | undefined } {
  try {
    readGgufHeader(memorySource(bytes, "t.gguf"));
  } catch (error) {
    if (!isHaloError(error)) throw error;
    return { code: error.code, offset: error.offset, field: error.field };
  }
  return { code: "none" };
}

const f32Tensor = (name: string, n: number, offset: number): TensorSpec => ({ name, dims: [n], type: 0, offset });

describe("readGgufHeader", () => {
  it("reads every value type, nested arrays, 64-bit values beyond 2^53 as bigint, v2 and v3", () => {
    for (const version of [2, 3]) {
      const bytes = file(
        (r) => {
          r.str("u8").u32(0).u8(200);
          r.str("i8").u32(1).u8(-5);
          r.str("u16").u32(2).u16(65000);
          r.str("i16")
            .u32(3)
            .u16(-300 & 0xffff);
          r.str("u32").u32(4).u32(4_000_000_000);
          r.str("i32").u32(5).u32(-7);
          r.str("f32").u32(6).f32(1e-5);
          r.str("bool").u32(7).u8(1);
          r.str("string").u32(8).str("héllo");
          r.str("u64")
            .u32(10)
            .u64(2n ** 60n);
          r.str("i64")
            .u32(11)
            .u64(-3n & 0xffffffffffffffffn);
          r.str("f64").u32(12).f64(Math.PI);
          r.str("arr").u32(9).u32(9).u64(2);
          r.u32(4).u64(2).u32(1).u32(2);
          r.u32(8).u64(1).str("x");
          r.str("general.alignment").u32(4).u32(64);
          return 14;
        },
        [f32Tensor("a", 16, 0), f32Tensor("b", 8, 64)],
        96,
        { version, alignment: 64 },
      );
      const header = readGgufHeader(memorySource(bytes));
      const value = (k: string): unknown => header.metadata.get(k)?.value;
      expect(header.version).toBe(version);
      expect([value("u8"), value("i8"), value("u16"), value("i16"), value("u32"), value("i32")]).toEqual([200, -5, 65000, -300, 4_000_000_000, -7]);
      expect(value("f32")).toBe(1e-5);
      expect(value("bool")).toBe(true);
      expect(value("string")).toBe("héllo");
      expect(value("u64")).toBe(2n ** 60n);
      expect(value("i64")).toBe(-3);
      expect(value("f64")).toBe(Math.PI);
      expect(value("arr")).toEqual([[1, 2], ["x"]]);
      expect(header.metadata.get("arr")?.itemType).toBe(9);
      expect(header.alignment).toBe(64);
      expect(header.dataOffset % 64).toBe(0);
      expect(header.tensors.map((t) => [t.name, t.offset - header.dataOffset, t.byteLength])).toEqual([
        ["a", 0, 64],
        ["b", 64, 32],
      ]);
    }
  });

  const ok = (r: Raw): number => {
    r.str("general.architecture").u32(8).str("bitnet");
    return 1;
  };

  it("rejects bad magic and versions", () => {
    const good = file(ok, [], 0);
    const badMagic = good.slice();
    badMagic[0] = 0x48;
    expect(errorOf(badMagic)).toMatchObject({ code: "H1B_BAD_MAGIC", offset: 0 });
    for (const v of [1, 4]) {
      const bad = good.slice();
      bad[4] = v;
      expect(errorOf(bad)).toMatchObject({ code: "H1B_BAD_VERSION", offset: 4 });
    }
    expect(errorOf(good.subarray(0, 3)).code).toBe("H1B_TRUNCATED");
  });

  it("refuses counts larger than the file before allocating", () => {
    const good = file(ok, [], 0);
    const kvs = good.slice();
    new DataView(kvs.buffer).setBigUint64(16, 1n << 40n, true);
    expect(errorOf(kvs).code).toBe("H1B_TOO_LARGE");
    const tensors = good.slice();
    new DataView(tensors.buffer).setBigUint64(8, 1n << 30n, true);
    expect(errorOf(tensors).code).toBe("H1B_TOO_LARGE");
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(8, 1n << 62n, true);
    expect(errorOf(huge).code).toBe("H1B_TOO_LARGE");
    const array = file(
      (r) => {
        r.str("arr")
          .u32(9)
          .u32(4)
          .u64(1n << 40n);
        return 1;
      },
      [],
      0,
    );
    expect(errorOf(array)).toMatchObject({ code: "H1B_TOO_LARGE", field: "arr" });
    const nested = file(
      (r) => {
        r.str("arr").u32(9).u32(9).u64(1).u32(8).u64(1_000_000);
        return 1;
      },
      [],
      0,
    );
    expect(errorOf(nested)).toMatchObject({ code: "H1B_TOO_LARGE", field: "arr" });
  });

  it("rejects strings past the end, unknown value types, bad bools, deep nesting, duplicate keys, bad alignment", () => {
    expect(errorOf(file((r) => (r.str("s").u32(8).u64(1000), 1), [], 0)).code).toBe("H1B_TRUNCATED");
    expect(errorOf(file((r) => (r.str("s").u32(13).u32(0), 1), [], 0))).toMatchObject({ code: "H1B_BAD_METADATA", field: "s" });
    expect(errorOf(file((r) => (r.str("s").u32(9).u32(77).u64(0), 1), [], 0)).code).toBe("H1B_BAD_METADATA");
    expect(errorOf(file((r) => (r.str("b").u32(7).u8(2), 1), [], 0)).code).toBe("H1B_BAD_METADATA");
    const deep = file(
      (r) => {
        r.str("deep").u32(9);
        for (let i = 0; i < 20; i++) r.u32(9).u64(1);
        return 1;
      },
      [],
      0,
    );
    expect(errorOf(deep).code).toBe("H1B_BAD_METADATA");
    expect(errorOf(file((r) => (r.str("k").u32(4).u32(1).str("k").u32(4).u32(2), 2), [], 0)).code).toBe("H1B_BAD_METADATA");
    for (const bad of [0, 3, 48]) {
      expect(errorOf(file((r) => (r.str("general.alignment").u32(4).u32(bad), 1), [], 0)).code).toBe("H1B_BAD_METADATA");
    }
    expect(errorOf(file((r) => (r.str("general.alignment").u32(8).str("32"), 1), [], 0)).code).toBe("H1B_BAD_METADATA");
  });

  it("rejects unknown tensor types, bad dims, misaligned, overlapping and out-of-file tensors", () => {
    const one = (t: TensorSpec, data = 64): { code: string; field?: string | undefined } => errorOf(file(ok, [t], data));
    expect(one({ name: "t", dims: [16], type: 99, offset: 0 })).toMatchObject({ code: "H1B_UNKNOWN_DTYPE", field: "t" });
    expect(one({ name: "t", dims: [0], type: 0, offset: 0 }).code).toBe("H1B_BAD_DIMENSION");
    expect(one({ name: "t", dims: [2 ** 30, 2 ** 30, 2 ** 30], type: 0, offset: 0 }).code).toBe("H1B_BAD_DIMENSION");
    expect(one({ name: "t", dims: [1, 1, 1, 1, 1], type: 0, offset: 0 }).code).toBe("H1B_BAD_DIMENSION");
    expect(one({ name: "t", dims: [100], type: 35, offset: 0 }).code).toBe("H1B_BAD_DIMENSION");
    expect(one({ name: "t", dims: [16], type: 0, offset: 8 }).code).toBe("H1B_BAD_OFFSET");
    expect(one({ name: "t", dims: [64], type: 0, offset: 0 }).code).toBe("H1B_TRUNCATED");
    expect(one({ name: "t", dims: [16], type: 0, offset: 2 ** 40 }).code).toBe("H1B_TRUNCATED");
    expect(errorOf(file(ok, [f32Tensor("a", 16, 0), f32Tensor("b", 16, 32)], 128))).toMatchObject({ code: "H1B_BAD_OFFSET", field: "b" });
    expect(errorOf(file(ok, [f32Tensor("a", 16, 0), f32Tensor("a", 16, 64)], 128)).code).toBe("H1B_BAD_TENSOR");
  });

  it("sizes I2_S as elements/4 + 32 bytes (bitnet.cpp's special case)", () => {
    const header = readGgufHeader(memorySource(file(ok, [{ name: "w", dims: [256, 4], type: 36, offset: 0 }], 256 + 32)));
    expect(header.tensors[0]!.byteLength).toBe(256 + 32);
    expect(header.tensors[0]!.type.name).toBe("I2_S");
  });
});
