import { describe, expect, it } from "vitest";
import { f32Decimal, h1bLayout, h1bWeightFormat, checkFlags, slotAt } from "./h1b-layout.js";

const BITNET_2B = { hiddenSize: 2560, intermediateSize: 6912, numLayers: 30, numHeads: 20, numKvHeads: 5, vocabSize: 128256 };

describe("h1b layout", () => {
  it("matches the seed's 2B-4T file sizes (research/seed-system.md §1.4)", () => {
    const v2 = h1bLayout(BITNET_2B, 2, "halo-v2", "x");
    expect(v2.totalBytes).toBe(1_840_384_052n);
    expect(v2.layerBytes).toBe(17_567_744);
    expect(h1bLayout(BITNET_2B, 3, "sherry", "x").totalBytes).toBe(1_645_004_852n);
    expect(h1bLayout(BITNET_2B, 4, "tq1-v4", "x").totalBytes).toBe(1_736_304_692n);
    expect(v2.firstLayerOffset - v2.embeddingOffset - 4 * 2560).toBe(1_313_341_440);
    expect(h1bLayout(BITNET_2B, 1, "halo-v2", "x").totalBytes).toBe(1_840_384_052n - 8n);
  });

  it("resolves the weight format from version and flags (Bonsai overrides the version)", () => {
    expect([1, 2, 3, 4].map((v) => h1bWeightFormat(v, 0))).toEqual(["halo-v2", "halo-v2", "sherry", "tq1-v4"]);
    expect(h1bWeightFormat(3, 0x2)).toBe("sherry-fp16");
    expect(h1bWeightFormat(2, 0x2)).toBe("halo-v2");
    expect(h1bWeightFormat(3, 0x8 | 0x2)).toBe("bonsai-tq2");
    expect(h1bWeightFormat(1, 0x4 | 0x1)).toBe("bonsai-q1");
    expect(() => checkFlags(0xc, "x", 40)).toThrow(/cannot both be set/);
  });

  it("names the slot at an offset", () => {
    const layout = h1bLayout(BITNET_2B, 2, "halo-v2", "x");
    expect(slotAt(layout, 10)).toBe("header");
    expect(slotAt(layout, 60)).toBe("embedding");
    expect(slotAt(layout, layout.firstLayerOffset + 3 * layout.layerBytes + 1)).toBe("layer 3 input_norm");
    expect(slotAt(layout, Number(layout.totalBytes) - 1)).toBe("layer 29 down.scales");
  });

  it("reads float32 header values back as their shortest decimals", () => {
    expect(f32Decimal(Math.fround(1e-5))).toBe(1e-5);
    expect(f32Decimal(Math.fround(500000))).toBe(500000);
    expect(f32Decimal(Math.fround(1e-6))).toBe(1e-6);
    expect(f32Decimal(Math.fround(0.1234567))).toBe(0.1234567);
    for (const x of [3.4e38, 1.17549435e-38, 1e-45, 12345.678]) expect(Math.fround(f32Decimal(Math.fround(x)))).toBe(Math.fround(x));
  });
});
