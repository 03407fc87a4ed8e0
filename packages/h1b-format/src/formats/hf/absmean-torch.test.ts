// Cross-check of absmean ternarisation against PyTorch itself (transformers' WeightQuant recipe). Without torch it
// skips, except where HALO_REQUIRE_TORCH=1 (the test command sets it): there a missing torch fails with the fix.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { f32ToBf16 } from "../../core/half.js";
import { memorySource } from "../../core/byte-source.js";
import { Rng } from "../../synth/rng.js";
import { masterTernaryTensor } from "./master-ternary-tensor.js";
import { announceTorchSkip, requireTorch } from "../../../../../scripts/torch-python.js";

announceTorchSkip("absmean-vs-PyTorch test");

const dir = mkdtempSync(join(tmpdir(), "halo-torch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** transformers integrations/bitnet.py WeightQuant.forward, applied to raw bf16 matrices. */
const SCRIPT = `
import sys, json, numpy as np, torch
spec = json.load(open(sys.argv[1]))
for m in spec:
    u16 = np.fromfile(m["path"], dtype=np.uint16)
    w = torch.from_numpy((u16.astype(np.uint32) << 16).view(np.float32).reshape(m["rows"], m["cols"]))
    scale = 1.0 / w.abs().mean().clamp_(min=1e-5)
    q = (w * scale).round().clamp(-1, 1).to(torch.int8)
    q.numpy().tofile(m["path"] + ".q")
    m["scale"] = (1.0 / scale).to(torch.bfloat16).float().item()
json.dump(spec, open(sys.argv[1], "w"))
`;

describe("absmean ternarisation vs PyTorch (needs python3 with torch and numpy; set HALO_PYTHON)", () => {
  it("gives the same codes and bf16 scales as torch on random and tie-heavy master weights", (context) => {
    const python = requireTorch(context);
    const matrices: Array<{ name: string; rows: number; cols: number; bits: Uint16Array }> = [];
    const rng = new Rng(42);
    for (const [rows, cols] of [
      [64, 2560],
      [257, 300],
      [3, 6912],
      [1, 1],
    ] as const) {
      const std = 0.005 + 0.03 * rng.float();
      matrices.push({ name: `normal-${rows}x${cols}`, rows, cols, bits: Uint16Array.from({ length: rows * cols }, () => f32ToBf16(rng.normal() * std)) });
    }
    // Ties: |w| in {0.25, 0.75} with equal counts gives mean 0.5 exactly, so w·(1/mean) hits ±0.5 and ±1.5.
    const tie = Uint16Array.from({ length: 4096 }, (_, i) => f32ToBf16((i % 2 === 0 ? 0.25 : 0.75) * (i % 3 === 0 ? -1 : 1)));
    matrices.push({ name: "ties", rows: 64, cols: 64, bits: tie });
    // All zeros: the 1e-5 clamp.
    matrices.push({ name: "zeros", rows: 8, cols: 8, bits: new Uint16Array(64) });

    const spec = matrices.map((m) => {
      const path = join(dir, `${m.name}.bf16`);
      writeFileSync(path, new Uint8Array(m.bits.buffer));
      return { name: m.name, path, rows: m.rows, cols: m.cols };
    });
    const specPath = join(dir, "spec.json");
    writeFileSync(specPath, JSON.stringify(spec));
    const run = spawnSync(python, ["-c", SCRIPT, specPath], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const results = JSON.parse(readFileSync(specPath, "utf8")) as Array<{ name: string; path: string; scale: number }>;

    matrices.forEach((m, i) => {
      const tensor = masterTernaryTensor(m.name, m.rows, m.cols, "bf16", memorySource(new Uint8Array(m.bits.buffer)), 0);
      const trits = new Int8Array(m.rows * m.cols);
      tensor.decodeRows(0, m.rows, trits);
      const torchCodes = new Int8Array(Uint8Array.from(readFileSync(`${results[i]!.path}.q`)).buffer);
      let differing = 0;
      for (let j = 0; j < trits.length; j++) if (trits[j] !== torchCodes[j]) differing++;
      expect(differing, m.name).toBe(0);
      expect(tensor.scale.kind === "tensor" && tensor.scale.value, m.name).toBe(results[i]!.scale);
    });
  });
});
