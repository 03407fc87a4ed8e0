// prefill-profile.mjs: one prefill step of N tokens on the 2B-4T shape; run with HALO_CPU_PROFILE=1 for phase timings.
// Usage: HALO_CPU_PROFILE=1 flock /tmp/heavy.lock node packages/kernels-cpu/dev/prefill-profile.mjs [gguf] [tokens]
import { readGguf } from "../../h1b-format/dist/index.js";
import { createBackend } from "../dist/index.js";

const path = process.argv[2] ?? "/tmp/halo-bench/synth-2b-silu-tq2_0.gguf";
const n = Number(process.argv[3] ?? 512);
const weights = readGguf(path);
const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 1024, kvDtype: "f16" });
weights.close();
for (let r = 0; r < 2; r++) {
  const slot = model.allocateSequence();
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 104729) % 120000);
  const t = performance.now();
  await model.step({ tokens, positions: Int32Array.from(tokens, (_, i) => i), slots: new Int32Array(n).fill(slot), logitRows: Int32Array.of(n - 1) });
  console.log(JSON.stringify({ tokens: n, seconds: +((performance.now() - t) / 1000).toFixed(2), tokS: +(n / ((performance.now() - t) / 1000)).toFixed(1) }));
  model.freeSequence(slot);
}
model.dispose();
