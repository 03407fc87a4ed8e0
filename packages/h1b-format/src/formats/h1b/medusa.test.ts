import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { memorySource } from "../../core/byte-source.js";
import { floatTensor } from "../../core/tensors.js";
import { f32ToF16 } from "../../core/half.js";
import { encodeMedusa, readMedusa, writeMedusa, type MedusaHead } from "./medusa.js";
import { caught } from "../../error-code.test-support.js";

/** Four heads of `hd × hd` fp16 matrices with distinct values per head and matrix. */
function heads(hd: number): MedusaHead[] {
  return Array.from({ length: 4 }, (_, h) => {
    const make = (which: number): Uint8Array => {
      const bits = Uint16Array.from({ length: hd * hd }, (_, i) => f32ToF16(h * 2 + which + i / 1024));
      return new Uint8Array(bits.buffer);
    };
    return {
      wIn: floatTensor(`h${h}.in`, "f16", [hd, hd], { data: make(0) }),
      wOut: floatTensor(`h${h}.out`, "f16", [hd, hd], { data: make(1) }),
    };
  });
}

describe(".h1b-medusa", () => {
  it("writes the 68-byte v2 header exactly and reads heads back lazily", () => {
    const bytes = encodeMedusa({ hiddenDim: 8, heads: heads(8) });
    expect(bytes.byteLength).toBe(68 + 4 * 2 * 8 * 8 * 2);
    expect(Buffer.from(bytes.subarray(0, 28)).toString("hex")).toBe(
      Buffer.from("MEDUSA1\0").toString("hex") + "02000000" + "04000000" + "08000000" + "01000000" + "01000000",
    );
    expect(bytes.subarray(28, 68).every((b) => b === 0)).toBe(true);
    const medusa = readMedusa(memorySource(bytes));
    expect(medusa.hiddenDim).toBe(8);
    expect(medusa.heads).toHaveLength(4);
    expect(medusa.heads[2]!.wOut.toFloat32()[0]).toBe(5);
    expect(medusa.heads[3]!.wIn.shape).toEqual([8, 8]);
    expect(Buffer.from(encodeMedusa(medusa)).equals(Buffer.from(bytes))).toBe(true);
  });

  it("requires the caller's hidden size when given (the seed only wrote 2560)", () => {
    const bytes = encodeMedusa({ hiddenDim: 8, heads: heads(8) });
    expect(readMedusa(memorySource(bytes), { hiddenDim: 8 }).hiddenDim).toBe(8);
    const error = caught(() => readMedusa(memorySource(bytes), { hiddenDim: 2560 }));
    expect([error.code, error.field, error.offset]).toEqual(["H1B_BAD_DIMENSION", "hidden_dim", 16]);
  });

  it("accepts a seed-sized file (2560: exactly 104,857,668 bytes) without reading past the header", () => {
    const header = encodeMedusa({ hiddenDim: 1, heads: heads(1) }).slice(0, 68);
    new DataView(header.buffer).setUint32(16, 2560, true);
    const reads: number[] = [];
    const sized = (byteLength: number) => ({
      path: "seed.h1b-medusa",
      byteLength,
      read(offset: number, length: number): Uint8Array {
        reads.push(length);
        if (offset !== 0 || length > 68) throw new Error("read past the header");
        return header.subarray(0, length);
      },
      close(): void {},
    });
    const medusa = readMedusa(sized(104_857_668), { hiddenDim: 2560 });
    expect(medusa.heads[3]!.wOut.byteLength).toBe(2560 * 2560 * 2);
    expect(reads).toEqual([68]);
    expect(caught(() => readMedusa(sized(104_857_667))).code).toBe("H1B_TRUNCATED");
  });

  it("checks every header field and the exact file size", () => {
    const good = encodeMedusa({ hiddenDim: 4, heads: heads(4) });
    const set = (offset: number, value: number): Uint8Array => {
      const copy = good.slice();
      new DataView(copy.buffer).setUint32(offset, value, true);
      return copy;
    };
    expect(caught(() => readMedusa(memorySource(Uint8Array.from([0, ...good.subarray(1)])))).code).toBe("H1B_BAD_MAGIC");
    expect(caught(() => readMedusa(memorySource(set(8, 1)))).code).toBe("H1B_BAD_VERSION");
    expect(caught(() => readMedusa(memorySource(set(12, 3)))).field).toBe("num_heads");
    expect(caught(() => readMedusa(memorySource(set(20, 2)))).field).toBe("residual_layers");
    expect(caught(() => readMedusa(memorySource(set(24, 0)))).code).toBe("H1B_UNKNOWN_DTYPE");
    expect(caught(() => readMedusa(memorySource(set(16, 5)))).code).toBe("H1B_TRUNCATED");
    expect(caught(() => readMedusa(memorySource(set(16, 3)))).code).toBe("H1B_BAD_DIMENSION");
    expect(caught(() => readMedusa(memorySource(set(16, 0)))).code).toBe("H1B_BAD_DIMENSION");
    expect(caught(() => readMedusa(memorySource(good.subarray(0, good.length - 2)))).code).toBe("H1B_TRUNCATED");
    expect(caught(() => readMedusa(memorySource(Uint8Array.from([...good, 0])))).code).toBe("H1B_BAD_DIMENSION");
    expect(caught(() => readMedusa(memorySource(good.subarray(0, 40)))).code).toBe("H1B_TRUNCATED");
  });

  it("converts f32 heads to fp16 only when exact, unless forced; writes to disk", async () => {
    const hd = 4;
    const f32 = (value: number): MedusaHead["wIn"] => floatTensor("x", "f32", [hd, hd], { data: new Uint8Array(new Float32Array(hd * hd).fill(value).buffer) });
    const exact = Array.from({ length: 4 }, () => ({ wIn: f32(0.5), wOut: f32(-2) }));
    const dir = mkdtempSync(join(tmpdir(), "medusa-"));
    await writeMedusa({ hiddenDim: hd, heads: exact }, join(dir, "m.h1b-medusa"));
    const read = readMedusa(join(dir, "m.h1b-medusa"));
    expect(read.heads[1]!.wOut.toFloat32()[3]).toBe(-2);
    read.close();
    expect(readFileSync(join(dir, "m.h1b-medusa")).byteLength).toBe(68 + 4 * 2 * hd * hd * 2);
    const inexact = Array.from({ length: 4 }, () => ({ wIn: f32(0.1), wOut: f32(1) }));
    expect(caught(() => encodeMedusa({ hiddenDim: hd, heads: inexact })).code).toBe("H1B_LOSSY_CONVERSION");
    expect(encodeMedusa({ hiddenDim: hd, heads: inexact }, { force: true }).byteLength).toBe(68 + 4 * 2 * hd * hd * 2);
    expect(caught(() => encodeMedusa({ hiddenDim: hd, heads: exact.slice(0, 3) })).code).toBe("H1B_BAD_ARGUMENT");
    expect(caught(() => encodeMedusa({ hiddenDim: 8, heads: exact })).code).toBe("H1B_BAD_TENSOR");
  });
});
