// Range checks of validateConfig, and the header probes of issue 15 that used to pass verify: every format goes through them.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import "../index.js";
import { CONFIG_LIMITS, shapeConfig, validateConfig } from "./config.js";
import type { ModelConfig } from "./model.js";
import { memorySource } from "./byte-source.js";
import { synthModel } from "../synth/synth-model.js";
import { writeHalo } from "../formats/halo/write-halo.js";
import { readHalo } from "../formats/halo/read-halo.js";
import { HALO_PREAMBLE_BYTES } from "../formats/halo/halo-layout.js";
import { encodeH1b } from "../formats/h1b/write-h1b.js";
import { readH1b } from "../formats/h1b/read-h1b.js";
import { cfgOffset } from "../formats/h1b/h1b-layout.js";
import { caught } from "../error-code.test-support.js";

const tiny = shapeConfig("tiny");

describe("validateConfig ranges", () => {
  it("accepts the built-in shapes", () => {
    for (const shape of ["tiny", "tiny-gqa", "bitnet-2b-4t"] as const) expect(validateConfig(shapeConfig(shape))).toBeTruthy();
  });

  const cases: Array<[keyof ModelConfig | string, Partial<ModelConfig>]> = [
    ["rmsNormEps", { rmsNormEps: 9.2e18 }],
    ["rmsNormEps", { rmsNormEps: 0 }],
    ["rmsNormEps", { rmsNormEps: Number.NaN }],
    ["ropeTheta", { ropeTheta: 0.5 }],
    ["ropeTheta", { ropeTheta: 1e30 }],
    ["ropeTheta", { ropeTheta: Number.POSITIVE_INFINITY }],
    ["hiddenSize", { hiddenSize: 2 ** 20 }],
    ["intermediateSize", { intermediateSize: 0 }],
    ["numLayers", { numLayers: 5000 }],
    ["numHeads", { numHeads: 1.5 }],
    ["numKvHeads", { numKvHeads: 3 }],
    ["headDim", { headDim: 63 }],
    ["headDim", { headDim: 4096 }],
    ["vocabSize", { vocabSize: 2 ** 30 }],
    ["maxPositionEmbeddings", { maxPositionEmbeddings: 2 ** 31 }],
    ["bosTokenId", { bosTokenId: 512 }],
    ["eosTokenIds[1]", { eosTokenIds: [1, -1] }],
    ["vocabSize × hiddenSize (embedding)", { vocabSize: 4_000_000, hiddenSize: 65_536 }],
  ];
  it.each(cases)("refuses %s out of range, naming field, range and a remedy", (field, change) => {
    const error = caught(() => validateConfig({ ...tiny, ...change }, "m.halo"));
    expect(error.code).toBe("H1B_BAD_DIMENSION");
    expect(error.field).toBe(field);
    expect(error.path).toBe("m.halo");
    expect(String(error.expected)).toMatch(/\[|divisor|even|at most/);
    expect(error.message).toMatch(/convert or download/);
  });

  it("documents every range with its bounds", () => {
    for (const [, range] of Object.entries(CONFIG_LIMITS)) expect(range.min).toBeLessThan(range.max);
    expect(CONFIG_LIMITS.rmsNormEps.max).toBeLessThan(1);
  });
});

describe("headers that used to pass verify", () => {
  it(".halo: a header re-signed with rmsNormEps 9.2e18 is refused on open", async () => {
    const dir = mkdtempSync(join(tmpdir(), "halo-config-"));
    try {
      const path = join(dir, "tiny.halo");
      await writeHalo(synthModel({ shape: "tiny", seed: 1 }), path);
      const file = new Uint8Array(readFileSync(path));
      const dv = new DataView(file.buffer, file.byteOffset);
      const length = Number(dv.getBigUint64(24, true));
      const text = Buffer.from(file.subarray(HALO_PREAMBLE_BYTES, HALO_PREAMBLE_BYTES + length)).toString("utf8");
      const header = JSON.parse(text) as { config: { rmsNormEps: number } };
      header.config.rmsNormEps = 9.2e18;
      const edited = Buffer.from(JSON.stringify(header), "utf8");
      const out = new Uint8Array(file);
      out.fill(0x20, HALO_PREAMBLE_BYTES, HALO_PREAMBLE_BYTES + length);
      out.set(edited, HALO_PREAMBLE_BYTES);
      const odv = new DataView(out.buffer, out.byteOffset);
      odv.setBigUint64(24, BigInt(edited.byteLength), true);
      odv.setUint32(56, crc32(edited), true);
      odv.setUint32(60, crc32(out.subarray(0, 60)), true);
      const error = caught(() => readHalo(memorySource(out, "eps.halo")));
      expect(error.code).toBe("H1B_BAD_DIMENSION");
      expect(error.field).toBe("rmsNormEps");
      expect(error.actual).toBe(9.2e18);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const h1b = encodeH1b(synthModel({ shape: "tiny", seed: 1 }));
  const withCfg = (index: number, value: number): Uint8Array => {
    const out = new Uint8Array(h1b);
    new DataView(out.buffer).setInt32(cfgOffset(index), value, true);
    return out;
  };

  it(".h1b: the unmodified file opens", () => {
    expect(readH1b(memorySource(h1b, "ok.h1b")).config.intermediateSize).toBe(512);
  });

  it(".h1b: intermediate_size 1 is refused (the file is larger than the header describes)", () => {
    const error = caught(() => readH1b(memorySource(withCfg(1, 1), "ffn.h1b")));
    expect(error.code).toBe("H1B_BAD_DIMENSION");
    expect(String(error.actual)).toMatch(/after the last layer/);
    expect(error.message).toMatch(/intermediate_size/);
  });

  it(".h1b: fewer KV heads, layers or tokens than the weights hold are refused", () => {
    for (const [index, value] of [
      [4, 1],
      [2, 1],
      [5, 511],
    ] as const) {
      expect(caught(() => readH1b(memorySource(withCfg(index, value), "dims.h1b"))).code).toBe("H1B_BAD_DIMENSION");
    }
  });

  it(".h1b: more KV heads than the weights hold is refused as truncated", () => {
    expect(caught(() => readH1b(memorySource(withCfg(4, 4), "kv.h1b"))).code).toBe("H1B_TRUNCATED");
  });
});
