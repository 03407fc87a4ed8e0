// Time to first token with a shared 1,000-token system prompt, first request against later ones (the engine's prefix
// cache), on the 2B-4T shape (the .halo bench/cpu-decode.mjs writes) and on the trained tiny model, cpu backend.
// Usage (after `pnpm build` and bench/cpu-decode.mjs): flock /tmp/heavy.lock node bench/prefix-cache.mjs [--tiny-only]
import { existsSync } from "node:fs";
import { loadModel } from "../packages/engine/dist/index.js";
import { tinyModelPath } from "../packages/model-tiny/dist/index.js";
import { measureBandwidth } from "./bandwidth.mjs";

const SYSTEM = 1000;
const QUESTION = 12;
const print = (o) => console.log(JSON.stringify(o));
const round = (v) => Math.round(v * 10) / 10;

async function ttft(engine, prompt, options = {}) {
  const t0 = performance.now();
  let first = 0;
  let end = null;
  for await (const event of engine.generate({ prompt, maxTokens: 4, temperature: 0, ignoreEos: true, ...options })) {
    if (event.type === "token-delta" && first === 0) first = performance.now() - t0;
    if (event.type === "request-end") end = event;
  }
  return { ttftMs: round(first), cached: end.usage.cachedPromptTokens, prompt: end.usage.promptTokens };
}

async function measure(label, path, contextLength) {
  const engine = await loadModel(path, { backend: "cpu", backendOptions: { cpu: { threads: 2 } }, contextLength, maxSequences: 2 });
  const vocab = engine.config.vocabSize;
  const system = Array.from({ length: SYSTEM }, (_, i) => 100 + ((i * 7919) % (vocab - 200)));
  const question = (k) => Array.from({ length: QUESTION }, (_, i) => 100 + ((k * 104729 + i * 31) % (vocab - 200)));
  const runs = [];
  runs.push({ request: "first (computes the system prompt)", ...(await ttft(engine, [...system, ...question(0)])) });
  for (let k = 1; k <= 3; k++) runs.push({ request: `later #${k} (other question)`, ...(await ttft(engine, [...system, ...question(k)])) });
  runs.push({ request: "later, cachePrompt: false", ...(await ttft(engine, [...system, ...question(9)], { cachePrompt: false })) });
  const stats = engine.stats().prefixCache;
  engine.dispose();
  const first = runs[0].ttftMs;
  const later = runs.slice(1, 4).map((r) => r.ttftMs);
  const result = { model: label, runs, firstMs: first, laterMs: later, speedup: round(first / Math.max(...later)), prefixCache: stats };
  print(result);
  return result;
}

print({ bandwidth: measureBandwidth(2) });
await measure("halo-tiny (4 layers, hidden 256)", tinyModelPath, 1024);
const big = "/tmp/halo-bench/bitnet-2b-4t.halo";
if (!process.argv.includes("--tiny-only") && existsSync(big)) await measure("2B-4T shape (synthetic, .halo)", big, 2048);
