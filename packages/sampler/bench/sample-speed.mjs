// Micro-benchmark: microseconds per sampled token at a Llama-3 vocabulary (128256) for common option sets.
// Run after building: `node packages/sampler/bench/sample-speed.mjs` (wrap in `flock /tmp/heavy.lock` on shared machines).
import { performance } from "node:perf_hooks";
import { createRng, createSampler } from "../dist/index.js";

const VOCAB = 128256;
const ROWS = 16;
const TOKENS = Number(process.env.TOKENS ?? 400);

// Logit rows shaped like an LM head: mostly N(0, ~2.3) with a few strong candidates.
const rng = createRng(1);
const rows = Array.from({ length: ROWS }, () => {
  const row = new Float32Array(VOCAB);
  for (let i = 0; i < VOCAB; i++) row[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 2) * 4;
  for (let j = 0; j < 8; j++) row[rng.nextUint32() % VOCAB] = 12 + j;
  return row;
});
const history = Array.from({ length: 256 }, () => rng.nextUint32() % VOCAB);

const cases = {
  greedy: { temperature: 0 },
  "plain T=1": { temperature: 1 },
  "llama.cpp defaults (T .8, k 40, p .95, min-p .05, repeat 1.1)": { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1 },
  "top-p .95 without top-k (quickselect over V)": { temperature: 1, topP: 0.95 },
  "top-p .95 without top-k, flat logits": { temperature: 1, topP: 0.95, flat: true },
  "OpenAI penalties + bias + 5 top logprobs": { temperature: 0.7, presencePenalty: 0.5, frequencyPenalty: 0.5, logitBias: { 42: -100 }, topLogprobs: 5 },
};

const flat = Array.from({ length: ROWS }, () => {
  const row = new Float32Array(VOCAB);
  for (let i = 0; i < VOCAB; i++) row[i] = rng.nextFloat() * 0.1;
  return row;
});

for (const [name, { flat: useFlat, ...options }] of Object.entries(cases)) {
  const sampler = createSampler({ ...options, seed: 3 }, { vocabSize: VOCAB });
  const source = useFlat ? flat : rows;
  for (let i = 0; i < 50; i++) sampler.sample(source[i % ROWS], history); // warm up the JIT
  const start = performance.now();
  for (let i = 0; i < TOKENS; i++) sampler.sample(source[i % ROWS], history);
  const perToken = ((performance.now() - start) * 1000) / TOKENS;
  console.log(`${name.padEnd(64)} ${perToken.toFixed(0).padStart(6)} µs/token`);
}

// Reference point for the top-p design: a full sort of V ids by logit (what a naive top-p does).
{
  const ids = new Int32Array(VOCAB);
  const row = rows[0];
  const start = performance.now();
  const reps = 20;
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < VOCAB; i++) ids[i] = i;
    ids.sort((a, b) => row[b] - row[a] || a - b);
  }
  console.log(`${"(reference) full sort of V ids by logit".padEnd(64)} ${(((performance.now() - start) * 1000) / reps).toFixed(0).padStart(6)} µs`);
}
