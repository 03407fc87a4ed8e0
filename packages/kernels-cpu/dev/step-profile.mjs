// step-profile.mjs: times decode steps of the 2B-4T shape (HALO_CPU_PROFILE=1 adds per-phase native timings).
// Usage: flock /tmp/heavy.lock node packages/kernels-cpu/dev/step-profile.mjs [gguf | .halo] [steps] [f16|int8|int4]  (PROMPT=n sets the context before decoding, default 64; SPARSE=1 turns the sparse down lane on)  (HALO_CPU_HUGEPAGES=0, HALO_CPU_ISA=…, HALO_CPU_SPARSE_MAX=… apply)
import { readGguf, readHalo } from "../../h1b-format/dist/index.js";
import { createBackend } from "../dist/index.js";

const path = process.argv[2] ?? "/tmp/halo-bench/synth-2b-silu-tq2_0.gguf";
const steps = Number(process.argv[3] ?? 20);
const weights = path.endsWith(".halo") ? readHalo(path) : readGguf(path);
const promptLength = Number(process.env.PROMPT ?? 64);
const model = await createBackend({
  threads: Number(process.env.THREADS ?? 2),
  lmHead: process.argv[4] ?? "f16",
  sparseDown: process.env.SPARSE === "1",
}).loadModel(weights, {
  contextLength: promptLength + steps + 8,
  kvDtype: process.env.KV ?? "f16",
});
weights.close();
const slot = model.allocateSequence();
const prompt = Int32Array.from({ length: promptLength }, (_, i) => i + 5);
await model.step({
  tokens: prompt,
  positions: Int32Array.from(prompt, (_, i) => i),
  slots: new Int32Array(promptLength).fill(slot),
  logitRows: Int32Array.of(promptLength - 1),
});
const times = [];
for (let i = 0; i < steps; i++) {
  const t = performance.now();
  await model.step({ tokens: Int32Array.of(7), positions: Int32Array.of(promptLength + i), slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    ...model.nativeInfo(),
    steps,
    medianMs: +times[Math.floor(steps / 2)].toFixed(1),
    p10Ms: +times[Math.floor(steps / 10)].toFixed(1),
    bestMs: +times[0].toFixed(1),
    worstMs: +times[steps - 1].toFixed(1),
  }),
);
model.dispose();
