// The AMX-INT8 GEMM on real tiles against its scalar twin; runs only where availableIsas() lists "amx".
import { describe, expect, it } from "vitest";
import { SeededRandom } from "@halo/kernels";
import { synthModel } from "@halo/h1b-format";
import { createBackend } from "./cpu-backend.js";
import type { CpuLoadedModel } from "./cpu-loaded-model.js";
import { nativeBinding } from "./native-binding.js";

const native = nativeBinding();
const hasAmx = native.isas().includes("amx");
const NEEDS =
  "needs a CPU with AMX-INT8 (Intel Sapphire Rapids or later) on Linux >= 5.16; without one, `pnpm sanitize` checks the tile logic on an emulation (test/native/amx-check.cpp)";
if (!hasAmx) console.warn(`kernels-amx test skipped: ${NEEDS}`);
// Around the 16-wide tiles and the 2 × 2 tile blocks, both sides of the few-token stream path (≤ 32 tokens) and of the
// 64-row blocks and 128, prompt lengths up to 512; below 4 tokens the path is the avx512vnni kernel (kernels.test.ts).
const ROWS = [1, 15, 16, 17, 33, 63, 65, 80, 129] as const;
const COLS = [256, 300, 700] as const;
const TOKENS = [3, 4, 8, 12, 16, 17, 32, 33, 40, 70, 300, 512] as const;

describe.skipIf(!hasAmx)(`amx gemm_i2 on AMX tiles (${NEEDS})`, () => {
  it("equals the scalar twin exactly over row and token tails", () => {
    const random = new SeededRandom(1123);
    for (const rows of ROWS) {
      for (const cols of COLS) {
        for (const n of TOKENS) {
          const trits = random.trits(rows * cols);
          const x = Int8Array.from({ length: n * cols }, () => random.int(256) - 128);
          if (rows === 80) x.fill(-128, 0, cols); // largest magnitudes in one token
          expect(native.gemmRaw("amx", trits, rows, cols, x, false), `amx rows=${rows} cols=${cols} n=${n}`).toEqual(
            native.gemmRaw("scalar", trits, rows, cols, x, false),
          );
        }
      }
    }
  });

  it("is listed first, and a model loaded with auto runs it", async () => {
    expect(native.isas()[0]).toBe("amx");
    const model = (await createBackend({ threads: 1 }).loadModel(synthModel({ shape: "tiny", seed: 1 }), { contextLength: 8 })) as CpuLoadedModel;
    try {
      expect(model.nativeInfo().isa).toBe("amx");
    } finally {
      model.dispose();
    }
  });
});
