import { describe, expect, it } from "vitest";
import { Tokenizer } from "tokenizers";
import { synthModel } from "./synth-model.js";

describe("synthModel", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    const a = synthModel({ seed: 3 });
    const b = synthModel({ seed: 3 });
    const c = synthModel({ seed: 4 });
    expect(Buffer.from(a.layers[1]!.gate.bytes()).equals(Buffer.from(b.layers[1]!.gate.bytes()))).toBe(true);
    expect(Buffer.from(a.layers[1]!.gate.bytes()).equals(Buffer.from(c.layers[1]!.gate.bytes()))).toBe(false);
    expect(a.tokenEmbedding.toFloat32()).toEqual(b.tokenEmbedding.toFloat32());
  });

  it("decodeRows agrees with bytes and has the requested zero fraction", () => {
    const m = synthModel({ seed: 1, zeroFraction: 0.5 });
    const t = m.layers[0]!.up;
    const all = new Int8Array(t.bytes().buffer);
    const rows = new Int8Array(3 * t.cols);
    t.decodeRows(5, 3, rows);
    expect(rows).toEqual(all.subarray(5 * t.cols, 8 * t.cols));
    const zeros = all.filter((v) => v === 0).length / all.length;
    expect(zeros).toBeGreaterThan(0.47);
    expect(zeros).toBeLessThan(0.53);
  });

  it("has the exact 2B-4T shapes without generating weights", () => {
    const m = synthModel({ shape: "bitnet-2b-4t", activation: "silu" });
    expect(m.layers).toHaveLength(30);
    expect([m.layers[0]!.down.rows, m.layers[0]!.down.cols]).toEqual([2560, 6912]);
    expect([m.layers[29]!.k.rows, m.layers[29]!.k.cols]).toEqual([640, 2560]);
    expect(m.tokenEmbedding.shape).toEqual([128256, 2560]);
    expect(m.config.bosTokenId).toBe(128000);
    expect(m.config.eosTokenIds).toEqual([128001, 128009]);
  });

  it("carries a tokenizer.json that Hugging Face tokenizers loads and round-trips", async () => {
    const m = synthModel();
    if (m.tokenizer?.kind !== "hf-json") throw new Error("expected hf-json tokenizer");
    const tok = Tokenizer.fromString(m.tokenizer.tokenizerJson);
    expect(tok.getVocabSize(true)).toBe(512);
    const text = "The capital of France is Paris. 12345 ünïcödé 🙂";
    const encoding = await tok.encode(text);
    const ids = encoding.getIds();
    expect(ids[0]).toBe(m.config.bosTokenId);
    expect(ids.every((id) => id >= 0 && id < 512)).toBe(true);
    expect(ids.length).toBeLessThan(Buffer.byteLength(text)); // merges actually apply
    expect(await tok.decode(ids.slice(1), false)).toBe(text);
  });
});
