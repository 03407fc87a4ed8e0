import { describe, expect, it } from "vitest";
import "../index.js";
import { ternaryCodec } from "../codecs/registry.js";
import { memorySource, type ByteSource } from "./byte-source.js";
import { lazyTernaryTensor } from "./tensors.js";
import { testBackendCodec } from "../codecs/backend-codec.test-support.js";

function counting(source: ByteSource): ByteSource & { readonly reads: number[] } {
  const reads: number[] = [];
  return {
    path: source.path,
    byteLength: source.byteLength,
    reads,
    read(offset: number, length: number) {
      reads.push(length);
      return source.read(offset, length);
    },
    close: () => source.close(),
  };
}

describe("lazyTernaryTensor", () => {
  const rows = 8;
  const cols = 256;
  const trits = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 7) % 3) - 1);
  const scale = { kind: "tensor", value: 0.5 } as const;

  it.each(["halo-v2", "test-backend-i2", "tq2_0", "i2_s", "int8", "hf-packed"] as const)(
    "%s: decodeRows gives the encoded trits, reading only the rows asked for when rows are independent",
    (packing) => {
      const backend = testBackendCodec(); // a codec passed in, as a backend's layout is
      const codec = ternaryCodec(packing, [backend]);
      const bytes = codec.encode(trits, rows, cols, { scale });
      const padded = new Uint8Array(bytes.length + 16);
      padded.set(bytes, 16);
      const source = counting(memorySource(padded));
      const tensor = lazyTernaryTensor("t", packing, rows, cols, scale, { source, offset: 16 }, codec);
      const out = new Int8Array(3 * cols);
      tensor.decodeRows(4, 3, out);
      expect(out).toEqual(trits.subarray(4 * cols, 7 * cols));
      const rowBytes = codec.rowBytes?.(cols) ?? null;
      expect(source.reads).toEqual([rowBytes === null ? codec.byteLength(rows, cols) : 3 * rowBytes]);
      expect(() => tensor.decodeRows(7, 2, new Int8Array(2 * cols))).toThrow(/decodeRows out of range/);
    },
  );
});
