// The CPU backend on a Hugging Face-layout snapshot of the 2B-4T shape (hf-packed ternary weights, bf16 embedding and
// norms, as microsoft/bitnet-b1.58-2B-4T ships them): open time, backend load time, how the head is held, decode speed.
// Usage (after `pnpm build`; writes the 1.2 GB snapshot once under /tmp/halo-bench):
//   flock /tmp/heavy.lock node bench/hf-snapshot.mjs [--steps 16]
// Prints one JSON line: openMs, loadMs (loadModel until the model can step), headType, mappedMB (bytes borrowed from the
// file mapping), decodeMedianMs over single-token steps after a 4-token prompt, 2 threads.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { openModel, synthModel, writeHfSnapshot } from "../packages/h1b-format/dist/index.js";
import { createBackend } from "../packages/kernels-cpu/dist/index.js";

const { values } = parseArgs({ options: { steps: { type: "string", default: "16" } } });
const steps = Number(values.steps);
const dir = "/tmp/halo-bench/bitnet-2b-4t-hf-bf16";
if (!existsSync(`${dir}/model.safetensors`)) await writeHfSnapshot(synthModel({ shape: "bitnet-2b-4t", seed: 0 }), dir, { floatDtype: "bf16" });

const t0 = performance.now();
const weights = await openModel(dir);
const openMs = performance.now() - t0;
const t1 = performance.now();
const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: steps + 8, kvDtype: "f16" });
const loadMs = performance.now() - t1;
const info = model.nativeInfo();
const slot = model.allocateSequence();
await model.step({ tokens: Int32Array.of(1, 2, 3, 4), positions: Int32Array.of(0, 1, 2, 3), slots: new Int32Array(4).fill(slot), logitRows: Int32Array.of(3) });
const times = [];
for (let i = 0; i < steps; i++) {
  const t = performance.now();
  await model.step({ tokens: Int32Array.of(7), positions: Int32Array.of(4 + i), slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
model.dispose();
weights.close();
console.log(
  JSON.stringify({
    snapshot: dir,
    openMs: Math.round(openMs),
    loadMs: Math.round(loadMs),
    headType: info.headType,
    mappedMB: Math.round(info.mappedBytes / 1e6),
    decodeMedianMs: +times[Math.floor(steps / 2)].toFixed(1),
  }),
);
