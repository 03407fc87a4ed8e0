// sparse-share.mjs: the sparse down lane on a model's own text, one token per step (as decoding runs): the zero share of
// down's int8 input the native counters see, and the step time with the lane off, on at its measured density and forced
// on every layer (HALO_CPU_SPARSE_MAX=1), interleaved.
// Usage (after `pnpm build`): node packages/model-tiny/train/heldout-ids.mjs packages/model-tiny/hf/halo-tiny \
//   packages/model-tiny/data/heldout.txt /tmp/heldout.u16 && node packages/kernels-cpu/dev/sparse-share.mjs [model.halo] [ids.u16] [tokens]
import { readFileSync } from "node:fs";
import { readHalo } from "../../h1b-format/dist/index.js";
import { tinyModelPath } from "../../model-tiny/dist/index.js";
import { createBackend } from "../dist/index.js";

const path = process.argv[2] ?? tinyModelPath;
const idsBytes = readFileSync(process.argv[3] ?? "/tmp/heldout.u16");
const count = Number(process.argv[4] ?? 1000);
const ids = Array.from(new Uint16Array(idsBytes.buffer, idsBytes.byteOffset, idsBytes.byteLength / 2).subarray(0, count));

async function pass(label, options, env) {
  const saved = process.env.HALO_CPU_SPARSE_MAX;
  if (env === undefined) delete process.env.HALO_CPU_SPARSE_MAX;
  else process.env.HALO_CPU_SPARSE_MAX = env;
  const weights = readHalo(path);
  const model = await createBackend({ threads: 2, ...options }).loadModel(weights, { contextLength: 256, kvDtype: "f16" });
  if (saved === undefined) delete process.env.HALO_CPU_SPARSE_MAX;
  else process.env.HALO_CPU_SPARSE_MAX = saved;
  let slot = model.allocateSequence();
  const times = [];
  // Windows of 256 positions (the model's context here), one token per step.
  for (let i = 0; i < ids.length; i++) {
    const position = i % 256;
    if (position === 0 && i > 0) {
      model.freeSequence(slot);
      slot = model.allocateSequence();
    }
    const t = performance.now();
    await model.step({ tokens: Int32Array.of(ids[i]), positions: Int32Array.of(position), slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
    times.push(performance.now() - t);
  }
  const info = model.nativeInfo();
  model.dispose();
  weights.close?.();
  times.sort((a, b) => a - b);
  const s = info.sparseDown;
  return {
    label,
    isa: info.isa,
    medianMs: +times[times.length >> 1].toFixed(4),
    zeroShare: s.columns > 0 ? +(1 - s.nonzeroColumns / s.columns).toFixed(4) : null,
    sparseCalls: s.sparseCalls,
    denseCalls: s.denseCalls,
    sparseBytes: s.bytes,
  };
}

const rounds = [];
for (let r = 0; r < 3; r++) {
  rounds.push(await pass("dense", {}));
  rounds.push(await pass("sparse (measured density)", { sparseDown: true }));
  rounds.push(await pass("sparse (every layer)", { sparseDown: true }, "1"));
}
for (const row of rounds) console.log(JSON.stringify(row));
