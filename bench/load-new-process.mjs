// The 2B-4T .halo loaded by the CPU backend in a new process (issue 20's load target: ≤ 300 ms with a warm page cache):
// time to import the packages, readHalo + loadModel, and the first one-token step, from a fresh `node` process.
// Usage (after bench/cpu-decode.mjs wrote /tmp/halo-bench/bitnet-2b-4t.halo): for i in 1 2 3; do node bench/load-new-process.mjs; done
// HALO_CPU_COPY_HEAD=0 keeps the f16 head in the file mapping instead of copying it into huge pages.
const t0 = performance.now();
const { readHalo } = await import("../packages/h1b-format/dist/index.js");
const { createBackend } = await import("../packages/kernels-cpu/dist/index.js");
const t1 = performance.now();
const weights = readHalo("/tmp/halo-bench/bitnet-2b-4t.halo");
const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 1024, kvDtype: "f16" });
const t2 = performance.now();
const slot = model.allocateSequence();
await model.step({ tokens: Int32Array.of(1), positions: Int32Array.of(0), slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
const t3 = performance.now();
console.log(
  JSON.stringify({
    processStartToImportsMs: Math.round(t1),
    importsMs: Math.round(t1 - t0),
    loadMs: Math.round(t2 - t1),
    firstStepMs: Math.round(t3 - t2),
    processStartToFirstLogitsMs: Math.round(t3),
    copyHead: process.env.HALO_CPU_COPY_HEAD !== "0",
  }),
);
model.dispose();
weights.close();
