// Full-size check: a synthetic BitNet 2B-4T written as .h1b v2 and v4 has the seed's exact file sizes (slow, opt-in).
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { synthModel } from "../../synth/synth-model.js";
import { floatTensor } from "../../core/tensors.js";
import { readH1b } from "./read-h1b.js";
import { writeH1b } from "./write-h1b.js";

const ENABLED = process.env["HALO_H1B_2B"] === "1";
if (!ENABLED) {
  console.log("h1b-2b.test.ts skipped: set HALO_H1B_2B=1 to write a 1.8 GB synthetic 2B-4T .h1b (needs ~4 GB free disk, ~3 min)");
}

function sample(fn: () => Promise<unknown>): Promise<{ ms: number; peakRssMiB: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const start = performance.now();
  return fn().then(() => {
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    return { ms: performance.now() - start, peakRssMiB: Math.round(peak / 2 ** 20) };
  });
}

describe.skipIf(!ENABLED)("2B-4T shape", () => {
  it("writes v2 (1,840,384,052 B) streaming, reopens lazily, converts to v4 (1,736,304,692 B)", async () => {
    const dir = mkdtempSync(join(process.env["HALO_TMP"] ?? tmpdir(), "h1b-2b-"));
    try {
      const synth = synthModel({ shape: "bitnet-2b-4t", seed: 1 });
      // The synthetic embedding is generated value by value in one synchronous call (minutes at
      // this size); a constant f16 embedding keeps the run about the writer, not the generator.
      const embedding = new Uint16Array(128256 * 2560).fill(0x3c00); // 1.0
      const model = { ...synth, tokenEmbedding: floatTensor("token_embd", "f16", [128256, 2560], { data: new Uint8Array(embedding.buffer) }) };
      const v2 = join(dir, "synth-2b.h1b");
      const write = await sample(() => writeH1b(model, v2, { version: 2 }));
      expect(statSync(v2).size).toBe(1_840_384_052);
      const openStart = performance.now();
      const read = readH1b(v2);
      const openMs = performance.now() - openStart;
      const t = read.layers[29]!.down;
      const got = new Int8Array(2 * t.cols);
      const want = new Int8Array(2 * t.cols);
      t.decodeRows(100, 2, got);
      model.layers[29]!.down.decodeRows(100, 2, want);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      expect(read.config.bosTokenId).toBe(128000);
      expect(read.config.eosTokenIds).toEqual([128001, 128009]);
      const v4 = join(dir, "synth-2b-tq1.h1b");
      const convert = await sample(() => writeH1b(read, v4, { version: 4 }));
      expect(statSync(v4).size).toBe(1_736_304_692);
      read.close();
      console.log(
        `2B-4T synth → .h1b v2: ${(write.ms / 1000).toFixed(1)} s, peak RSS ${write.peakRssMiB} MiB; ` +
          `open: ${openMs.toFixed(2)} ms; v2 → v4: ${(convert.ms / 1000).toFixed(1)} s, peak RSS ${convert.peakRssMiB} MiB`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
