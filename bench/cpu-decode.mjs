// halo's CPU backend vs node-llama-cpp 3.22.1 on the 2B-4T shape (synthetic SiLU weights, GGUF TQ2_0 + f16 head), one run:
// every target of the kernels-cpu issue, measured against the peer in the same process run, ratios printed.
// Usage (after `pnpm build`; ~6 minutes, more the first time while it writes the fixtures under /tmp/halo-bench):
//   flock /tmp/heavy.lock node bench/cpu-decode.mjs [--halo-only] [--quick]
// Prints JSON lines: the measured 2-thread read bandwidth; for each engine decode tok/s at context 64 (128 greedy
// tokens after a 64-token prompt) and at context ~1024 (32 tokens after a 960-token prompt), prefill tok/s of a
// 512-token prompt (best of 2); halo also with the int8 and the int4 head, eight sequences decoding together, and the load time
// of the .halo container (zero-copy: halo-i2x256 matrices and the f16 embedding mapped from the file), and everything
// again with the int8 KV cache (bytes per token still counted at f16 KV: the difference is < 0.5 %); the sparse down lane
// on the ReLU² .halo (lane off vs on, halo only); then ratios.
import { existsSync, mkdirSync } from "node:fs";
import { synthModel, writeGguf, readGguf, readHalo, writeHalo } from "../packages/h1b-format/dist/index.js";
import { backendFactory, createBackend } from "../packages/kernels-cpu/dist/index.js";
import { measureBandwidth } from "./bandwidth.mjs";

const THREADS = 2;
const PROMPT = 64;
const args = new Set(process.argv.slice(2));
const DECODE = args.has("--quick") ? 32 : 128;
const PREFILL = 512;
const LONG_PROMPT = 960;
const LONG_DECODE = 32;
const BATCH = 8;
const BATCH_STEPS = args.has("--quick") ? 8 : 24;
const dir = "/tmp/halo-bench";
const path = `${dir}/synth-2b-silu-tq2_0.gguf`;
const haloPath = `${dir}/bitnet-2b-4t.halo`;
mkdirSync(dir, { recursive: true });
const print = (o) => console.log(JSON.stringify(o));
const round = (v, d = 1) => +v.toFixed(d);

if (!existsSync(path)) {
  const t0 = performance.now();
  await writeGguf(synthModel({ shape: "bitnet-2b-4t", activation: "silu", seed: 0 }), path, { ternaryType: "tq2_0", embeddingType: "f16" });
  print({ wrote: path, seconds: round((performance.now() - t0) / 1000) });
}
if (!existsSync(haloPath)) {
  const t0 = performance.now();
  // In the cpu backend's own layout (its codec passed explicitly), so the load maps the matrices instead of repacking.
  await writeHalo(synthModel({ shape: "bitnet-2b-4t", activation: "relu2", seed: 0 }), haloPath, { codecs: backendFactory.packings });
  print({ wrote: haloPath, seconds: round((performance.now() - t0) / 1000) });
}

const bandwidth = measureBandwidth(THREADS);
print({ bandwidth });
const VOCAB = 128256;
const LAYERS = 30;
const KV_ROW_BYTES = 640 * 2 * 2; // k and v of one position of one layer, f16
const tokensOf = (n, seed) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729) % 120000);
const argmax = (a, off, len) => {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[off + i] > a[off + best]) best = i;
  return best;
};
/** Bytes a decode step reads: ternary weights, the head, this context's KV and the norm vectors. */
const bytesPerToken = (ternaryBytes, headBytes, context) => ternaryBytes + headBytes + context * LAYERS * KV_ROW_BYTES + LAYERS * 4 * 6912 * 4;
const utilisation = (bytes, tokS) => round((bytes * tokS) / (bandwidth.readGBps * 1e9), 3);

/** Loads of our container: readHalo + loadModel until the model can step (median of 3, warm page cache). */
async function containerLoad() {
  const times = [];
  let info;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    const weights = readHalo(haloPath);
    const model = await createBackend({ threads: THREADS }).loadModel(weights, { contextLength: 1024, kvDtype: "f16" });
    times.push(performance.now() - t0);
    info = model.nativeInfo();
    model.dispose();
    weights.close();
  }
  times.sort((a, b) => a - b);
  const result = { engine: "halo cpu", load: ".halo (halo-i2x256, 2B shape)", loadMs: Math.round(times[1]), mappedMB: Math.round(info.mappedBytes / 1e6) };
  print(result);
  return result;
}

async function haloRun(label, options, kvDtype = "f16") {
  const weights = readGguf(path);
  const t0 = performance.now();
  const backend = createBackend({ threads: THREADS, ...options });
  const model = await backend.loadModel(weights, { contextLength: 1024, maxSequences: BATCH, kvDtype });
  const loadMs = performance.now() - t0;
  const info = model.nativeInfo();
  const rows = (tokens, start, slot) => ({
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => start + i),
    slots: new Int32Array(tokens.length).fill(slot),
    logitRows: Int32Array.of(tokens.length - 1),
  });
  // Decode at context 64: a 64-token prompt, then greedy single-token steps.
  let slot = model.allocateSequence();
  let logits = await model.step(rows(tokensOf(PROMPT, 1), 0, slot));
  const generated = [];
  let t1 = performance.now();
  for (let i = 0; i < DECODE; i++) {
    const next = argmax(logits, 0, VOCAB);
    generated.push(next);
    logits = await model.step(rows([next], PROMPT + i, slot));
  }
  const decodeTokS = DECODE / ((performance.now() - t1) / 1000);
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
  // Decode at context ~1024: a 960-token prompt (two steps), then 32 greedy steps.
  slot = model.allocateSequence();
  const longPrompt = tokensOf(LONG_PROMPT, 5);
  await model.step(rows(longPrompt.slice(0, PREFILL), 0, slot));
  logits = await model.step(rows(longPrompt.slice(PREFILL), PREFILL, slot));
  t1 = performance.now();
  for (let i = 0; i < LONG_DECODE; i++) logits = await model.step(rows([argmax(logits, 0, VOCAB)], LONG_PROMPT + i, slot));
  const longTokS = LONG_DECODE / ((performance.now() - t1) / 1000);
  model.freeSequence(slot);
  // Eight sequences decoding together: each has a 64-token prompt, then every step carries one token of each.
  const slots = [];
  for (let b = 0; b < BATCH; b++) {
    slots.push(model.allocateSequence());
    await model.step(rows(tokensOf(PROMPT, 10 + b), 0, slots[b]));
  }
  t1 = performance.now();
  for (let i = 0; i < BATCH_STEPS; i++) {
    await model.step({
      tokens: Int32Array.from(slots, (_, b) => tokensOf(1, 20 + b + i)[0]),
      positions: new Int32Array(BATCH).fill(PROMPT + i),
      slots: Int32Array.from(slots),
      logitRows: Int32Array.from(slots, (_, b) => b),
    });
  }
  const batchTokS = (BATCH * BATCH_STEPS) / ((performance.now() - t1) / 1000);
  for (const s of slots) model.freeSequence(s);
  model.dispose();
  weights.close();
  // The head's bytes as this backend stores it (its own memory estimate: f16 as stored, or the int8 / int4 layout).
  const headBytes = backend.estimateMemory(weights.config, { contextLength: 1024, maxSequences: BATCH, kvDtype }).headBytes;
  const bytes64 = bytesPerToken(info.arenaBytes, headBytes, PROMPT + DECODE / 2);
  const result = {
    engine: `halo cpu ${label}`,
    isa: info.isa,
    kvDtype,
    headType: info.headType,
    loadMs: Math.round(loadMs),
    decodeTokS: round(decodeTokS, 2),
    prefillTokS: round(PREFILL / Math.min(...prefill)),
    decode1024TokS: round(longTokS, 2),
    batch8AggregateTokS: round(batchTokS),
    batch8Ratio: round(batchTokS / decodeTokS, 2),
    bytesPerTokenMB: round(bytes64 / 1e6),
    bandwidthUtilisation: utilisation(bytes64, decodeTokS),
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
  const context = await model.createContext({ contextSize: 1024 + 64, threads: THREADS, batchSize: PREFILL });
  const loadMs = performance.now() - t0;
  const sequence = context.getSequence();
  const decodeAfter = async (prompt, count) => {
    const results = await sequence.controlledEvaluate([...prompt.slice(0, -1), [prompt[prompt.length - 1], { generateNext: { token: true } }]]);
    const next = results[results.length - 1].next.token;
    const t1 = performance.now();
    let n = 0;
    for await (const token of sequence.evaluate([next], { temperature: 0, yieldEogToken: true })) {
      void token;
      if (++n >= count) break;
    }
    return n / ((performance.now() - t1) / 1000);
  };
  const decodeTokS = await decodeAfter(tokensOf(PROMPT, 1), DECODE);
  const prefill = [];
  for (let r = 0; r < 2; r++) {
    await sequence.clearHistory();
    const t = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(tokensOf(PREFILL, 2 + r));
    prefill.push((performance.now() - t) / 1000);
  }
  await sequence.clearHistory();
  const longTokS = await decodeAfter(tokensOf(LONG_PROMPT, 5), LONG_DECODE);
  await context.dispose();
  await model.dispose();
  const bytes64 = bytesPerToken(537.3e6, 656.7e6, PROMPT + DECODE / 2);
  const result = {
    engine: "node-llama-cpp 3.22.1 (TQ2_0, f16 head)",
    loadMs: Math.round(loadMs),
    decodeTokS: round(decodeTokS, 2),
    prefillTokS: round(PREFILL / Math.min(...prefill)),
    decode1024TokS: round(longTokS, 2),
    bytesPerTokenMB: round(bytes64 / 1e6),
    bandwidthUtilisation: utilisation(bytes64, decodeTokS),
  };
  print(result);
  return result;
}

/**
 * The sparse down lane (lossless, halo only: the peer's graph has no ReLU²): decode at context 64 on the ReLU² `.halo`
 * with the int4 head, the lane off and on, interleaved twice; the zero share of down's input its counters saw and the
 * share of layer products that took the sparse kernel (the synthetic weights' share, not a trained model's).
 */
async function sparseLaneRun() {
  const runs = { off: [], on: [] };
  let counts;
  for (let round = 0; round < 2; round++) {
    for (const lane of ["off", "on"]) {
      const weights = readHalo(haloPath);
      const t0 = performance.now();
      const model = await createBackend({ threads: THREADS, lmHead: "int4", sparseDown: lane === "on" }).loadModel(weights, {
        contextLength: 1024,
        kvDtype: "f16",
      });
      const loadMs = performance.now() - t0;
      const slot = model.allocateSequence();
      const step = (tokens, start) =>
        model.step({
          tokens: Int32Array.from(tokens),
          positions: Int32Array.from(tokens, (_, i) => start + i),
          slots: new Int32Array(tokens.length).fill(slot),
          logitRows: Int32Array.of(tokens.length - 1),
        });
      let logits = await step(tokensOf(PROMPT, 1), 0);
      const t1 = performance.now();
      for (let i = 0; i < DECODE; i++) logits = await step([argmax(logits, 0, VOCAB)], PROMPT + i);
      runs[lane].push({ decodeTokS: DECODE / ((performance.now() - t1) / 1000), loadMs });
      if (lane === "on") counts = model.nativeInfo().sparseDown;
      model.dispose();
      weights.close();
    }
  }
  const best = (list, key) => Math.max(...list.map((r) => r[key]));
  const result = {
    engine: "halo cpu sparse down lane (.halo ReLU², int4 head)",
    decodeTokSOff: round(best(runs.off, "decodeTokS"), 2),
    decodeTokSOn: round(best(runs.on, "decodeTokS"), 2),
    ratio: round(best(runs.on, "decodeTokS") / best(runs.off, "decodeTokS"), 3),
    loadMsOff: Math.round(Math.min(...runs.off.map((r) => r.loadMs))),
    loadMsOn: Math.round(Math.min(...runs.on.map((r) => r.loadMs))),
    downZeroShare: round(1 - counts.nonzeroColumns / counts.columns, 3),
    sparseShareOfProducts: round(counts.sparseCalls / (counts.sparseCalls + counts.denseCalls), 3),
    maxDensity: counts.maxDensity,
  };
  print(result);
  return result;
}

const load = await containerLoad();
const f16 = await haloRun("f16 head", {});
const int8 = await haloRun("int8 head", { lmHead: "int8" });
const int4 = await haloRun("int4 head", { lmHead: "int4" });
const int8Kv = await haloRun("f16 head, int8 KV", {}, "int8");
const sparse = await sparseLaneRun();
if (!args.has("--halo-only")) {
  const peer = await llamaRun();
  print({
    ratios: {
      decode64: round(f16.decodeTokS / peer.decodeTokS, 2),
      decode64Int8Head: round(int8.decodeTokS / peer.decodeTokS, 2),
      decode64Int4Head: round(int4.decodeTokS / peer.decodeTokS, 2),
      decode1024: round(f16.decode1024TokS / peer.decode1024TokS, 2),
      decode1024Int8Kv: round(int8Kv.decode1024TokS / peer.decode1024TokS, 2),
      // The context-1024 target names no head; these are halo's quantised heads against the peer's f16 head.
      decode1024Int8Head: round(int8.decode1024TokS / peer.decode1024TokS, 2),
      decode1024Int4Head: round(int4.decode1024TokS / peer.decode1024TokS, 2),
      prefill512: round(f16.prefillTokS / peer.prefillTokS, 2),
      batch8VsOne: f16.batch8Ratio,
      roofline: f16.bandwidthUtilisation,
      containerLoadMs: load.loadMs,
      sparseDownLaneOnVsOff: sparse.ratio,
    },
    targets: { decode64: 2, decode64Int8Head: 3, decode64Int4Head: 3, decode1024: 2, prefill512: 4, batch8VsOne: 4, roofline: 0.85, containerLoadMs: 300 },
  });
}
