// Reference backend speed: prefill and decode tok/s on the tiny shape, and decode steps of 2B-4T shapes.
// Run after `pnpm build`: node bench/reference-speed.mjs [tiny|2b-slice|2b-full]...  (wrap 2B runs in flock /tmp/heavy.lock)
import { shapeConfig, synthModel } from "@halo/h1b-format";
import { referenceBackend } from "../dist/index.js";

const which = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["tiny"];

function batch(slot, tokens, start) {
  return {
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => start + i),
    slots: new Int32Array(tokens.length).fill(slot),
    logitRows: Int32Array.of(tokens.length - 1),
  };
}

async function run(label, weights, prefill, decode) {
  const t0 = performance.now();
  const model = await referenceBackend().loadModel(weights, { contextLength: prefill + decode + 1 });
  const loadMs = performance.now() - t0;
  const slot = model.allocateSequence();
  const prompt = Array.from({ length: prefill }, (_, i) => (i * 7919) % weights.config.vocabSize);
  const t1 = performance.now();
  await model.step(batch(slot, prompt, 0));
  const prefillMs = performance.now() - t1;
  const t2 = performance.now();
  for (let i = 0; i < decode; i++) await model.step(batch(slot, [(i * 31) % weights.config.vocabSize], prefill + i));
  const decodeMs = performance.now() - t2;
  model.dispose();
  console.log(
    `${label}: load ${(loadMs / 1000).toFixed(2)} s; prefill ${prefill} tokens ${(prefill / (prefillMs / 1000)).toFixed(1)} tok/s; ` +
      `decode ${decode} tokens ${(decode / (decodeMs / 1000)).toFixed(2)} tok/s (${(decodeMs / decode).toFixed(1)} ms/token)`,
  );
}

for (const name of which) {
  if (name === "tiny") {
    for (const activation of ["relu2", "silu"]) await run(`tiny ${activation}`, synthModel({ shape: "tiny", activation, seed: 1 }), 64, 64);
  } else if (name === "2b-slice") {
    await run("2B-4T shapes, 2-layer slice", synthModel({ shape: { ...shapeConfig("bitnet-2b-4t"), numLayers: 2 }, seed: 1 }), 8, 4);
  } else if (name === "2b-full") {
    await run("2B-4T shapes, 30 layers", synthModel({ shape: "bitnet-2b-4t", seed: 1 }), 4, 2);
  }
}
