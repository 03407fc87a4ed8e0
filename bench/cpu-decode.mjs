// halo's CPU backend vs node-llama-cpp 3.22.1 on the 2B-4T shape (synthetic SiLU weights, GGUF TQ2_0 + f16 head), one run.
// Usage (after building @halo/h1b-format, @halo/kernels and @halo/kernels-cpu):
//   flock /tmp/heavy.lock node bench/cpu-decode.mjs [--halo-only] [--variants]
// Prints JSON lines: bandwidth, each engine's decode tok/s at context 64 (128 greedy tokens after a 64-token
// prompt), prefill tok/s of 512 tokens, bytes read per decoded token and bandwidth utilisation, and ratios.
import { existsSync, mkdirSync } from "node:fs";
import { synthModel, writeGguf, readGguf } from "../packages/h1b-format/dist/index.js";
import { createBackend } from "../packages/kernels-cpu/dist/index.js";
import { measureBandwidth } from "./bandwidth.mjs";

const THREADS = 2;
const PROMPT = 64;
const DECODE = 128;
const PREFILL = 512;
const args = new Set(process.argv.slice(2));
const dir = "/tmp/halo-bench";
const path = `${dir}/synth-2b-silu-tq2_0.gguf`;
mkdirSync(dir, { recursive: true });
const print = (o) => console.log(JSON.stringify(o));

if (!existsSync(path)) {
  const t0 = performance.now();
  await writeGguf(synthModel({ shape: "bitnet-2b-4t", activation: "silu", seed: 0 }), path, { ternaryType: "tq2_0", embeddingType: "f16" });
  print({ wrote: path, seconds: +((performance.now() - t0) / 1000).toFixed(1) });
}

const bandwidth = measureBandwidth(THREADS);
print({ bandwidth });
const vocab = 128256;
const tokensOf = (n, seed) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % 120000);
const argmax = (a, off, len) => {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[off + i] > a[off + best]) best = i;
  return best;
};

async function haloRun(label, options) {
  const weights = readGguf(path);
  const t0 = performance.now();
  const backend = createBackend({ threads: THREADS, ...options });
  const model = await backend.loadModel(weights, { contextLength: 1024, maxSequences: 1, kvDtype: "f16" });
  const loadMs = performance.now() - t0;
  weights.close();
  const info = model.nativeInfo();
  const rows = (tokens, start, slot) => ({
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => start + i),
    slots: new Int32Array(tokens.length).fill(slot),
    logitRows: Int32Array.of(tokens.length - 1),
  });
  // Decode: 64-token prompt, then 128 greedy single-token steps.
  let slot = model.allocateSequence();
  let logits = await model.step(rows(tokensOf(PROMPT, 1), 0, slot));
  const t1 = performance.now();
  const generated = [];
  for (let i = 0; i < DECODE; i++) {
    const next = argmax(logits, 0, vocab);
    generated.push(next);
    logits = await model.step(rows([next], PROMPT + i, slot));
  }
  const decodeS = (performance.now() - t1) / 1000;
  model.freeSequence(slot);
  // Prefill: 512 tokens in one step, best of 2.
  const prefill = [];
  for (let r = 0; r < 2; r++) {
    slot = model.allocateSequence();
    const t = performance.now();
    await model.step(rows(tokensOf(PREFILL, 2 + r), 0, slot));
    prefill.push((performance.now() - t) / 1000);
    model.freeSequence(slot);
  }
  model.dispose();
  const headBytes = vocab * 2560 * (info.headType === "int8" ? 1 : 2) + (info.headType === "int8" ? vocab * 4 : 0);
  const meanContext = PROMPT + DECODE / 2;
  const kvBytes = meanContext * 30 * 640 * 2 * 2;
  const bytesPerToken = info.arenaBytes + headBytes + kvBytes + 30 * 4 * 6912 * 4;
  const tokS = DECODE / decodeS;
  const result = {
    engine: `halo cpu ${label}`,
    isa: info.isa,
    hugePages: info.hugePages,
    headType: info.headType,
    loadSeconds: +(loadMs / 1000).toFixed(1),
    decodeTokS: +tokS.toFixed(2),
    prefillTokS: +(PREFILL / Math.min(...prefill)).toFixed(1),
    bytesPerTokenMB: +(bytesPerToken / 1e6).toFixed(1),
    bandwidthUtilisation: +((bytesPerToken * tokS) / (bandwidth.readGBps * 1e9)).toFixed(3),
    firstTokens: generated.slice(0, 8),
  };
  print(result);
  return result;
}

async function llamaRun() {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: THREADS, logLevel: LlamaLogLevel.error });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 1024, threads: THREADS, batchSize: PREFILL });
  const loadMs = performance.now() - t0;
  const sequence = context.getSequence();
  const prompt = tokensOf(PROMPT, 1);
  const results = await sequence.controlledEvaluate([...prompt.slice(0, -1), [prompt[prompt.length - 1], { generateNext: { token: true } }]]);
  let next = results[results.length - 1].next.token;
  const t1 = performance.now();
  const generated = [];
  for await (const token of sequence.evaluate([next], { temperature: 0, yieldEogToken: true })) {
    generated.push(Number(token));
    if (generated.length >= DECODE) break;
  }
  const decodeS = (performance.now() - t1) / 1000;
  const prefill = [];
  for (let r = 0; r < 2; r++) {
    await sequence.clearHistory();
    const t = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(tokensOf(PREFILL, 2 + r));
    prefill.push((performance.now() - t) / 1000);
  }
  await context.dispose();
  await model.dispose();
  const tokS = generated.length / decodeS;
  const bytesPerToken = 537.3e6 + 656.7e6 + (PROMPT + DECODE / 2) * 76800;
  const result = {
    engine: "node-llama-cpp 3.22.1 (TQ2_0, f16 head)",
    loadSeconds: +(loadMs / 1000).toFixed(1),
    decodeTokS: +tokS.toFixed(2),
    prefillTokS: +(PREFILL / Math.min(...prefill)).toFixed(1),
    bytesPerTokenMB: +(bytesPerToken / 1e6).toFixed(1),
    bandwidthUtilisation: +((bytesPerToken * tokS) / (bandwidth.readGBps * 1e9)).toFixed(3),
  };
  print(result);
  return result;
}

const halo = await haloRun("f16 head", {});
if (args.has("--variants")) {
  await haloRun("int8 head", { lmHead: "int8" });
  await haloRun("f16 head, 4 KiB pages", { hugePages: false });
  await haloRun("avx2 kernels", { isa: "avx2" });
}
if (!args.has("--halo-only")) {
  const peer = await llamaRun();
  print({
    decodeRatio: +(halo.decodeTokS / peer.decodeTokS).toFixed(2),
    prefillRatio: +(halo.prefillTokS / peer.prefillTokS).toFixed(2),
    haloRoofline: halo.bandwidthUtilisation,
    targets: { decodeRatio: 2, roofline: 0.85, prefillRatio: 4 },
  });
}
