// Quality of every lane halo has on a trained model and held-out text, against the exact path (reference backend, f32 KV):
// perplexity over independent windows (`halo ppl`'s method), its change, top-1 agreement and mean KL(exact ‖ lane) over
// every scored position. Lanes: the CPU backend's LM heads (f16 = as stored, int8, int4) and KV caches (f32, f16, int8),
// and every packing the model converts to (each .halo packing, the GGUF ternary types, the Hugging Face snapshot).
// Usage (after `pnpm build`):
//   nice -n 19 node bench/quality.mjs [--hf packages/model-tiny/hf/halo-tiny] [--text packages/model-tiny/data/heldout.txt]
//     [--context-length 256] [--windows N|all] [--json out.json]
// --hf is the model's Hugging Face snapshot (every lane's file is converted from it, in a temporary directory);
// --windows N (default 64) scores N evenly spaced windows, the same ones in every lane; `all` scores the whole text
// and also checks the default lane against Engine.perplexity (`halo ppl`'s number).
// Time on halo-tiny, 2 cores: the exact path costs ~3 s of one core per 256-token window (two workers share them),
// the 14 lanes ~0.7 s per window together. The default 64 windows: 190 s of CPU in the exact path (~95 s on two idle
// cores), 46 s the lanes; 299 s wall here with other jobs running. All 172 windows: 663 s wall with other jobs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { loadModel } from "../packages/engine/dist/index.js";
import { convertModel, openModel } from "../packages/h1b-format/dist/index.js";
import { backendFactory } from "../packages/kernels-cpu/dist/index.js";

const repo = resolve(fileURLToPath(new URL("..", import.meta.url)));
/** Windows scored by default: keeps a run on halo-tiny to a few minutes on 2 cores (the exact path is plain TypeScript). */
const DEFAULT_WINDOWS = 64;

/** Argmax and log-sum-exp (float64 sums) of one logits row. */
function rowStats(logits, offset, vocab) {
  let max = -Infinity;
  let best = 0;
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i];
    if (v > max) {
      max = v;
      best = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
  return { best, lse: max + Math.log(sum) };
}

/** Runs `chunk` from position 0 and returns its logits, [chunk.length][vocab]. */
async function windowLogits(engine, chunk) {
  const vocab = engine.config.vocabSize;
  const out = new Float32Array(chunk.length * vocab);
  let row = 0;
  await engine.evaluate(chunk, (logits, rows) => {
    out.set(logits, row * vocab);
    row += rows;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------

async function main() {
  const { values } = parseArgs({
    options: {
      hf: { type: "string", default: join(repo, "packages/model-tiny/hf/halo-tiny") },
      text: { type: "string", default: join(repo, "packages/model-tiny/data/heldout.txt") },
      "context-length": { type: "string", default: "256" },
      windows: { type: "string", default: String(DEFAULT_WINDOWS) },
      json: { type: "string" },
      workers: { type: "string", default: String(Math.min(2, cpus().length)) },
    },
  });
  const contextLength = Number(values["context-length"]);
  const started = performance.now();
  const print = (line) => process.stderr.write(`${line}\n`);
  const cpuModel = cpuName();
  const dir = mkdtempSync(join(tmpdir(), "halo-quality-"));
  try {
    const source = await openModel(values.hf);
    const text = readFileSync(values.text, "utf8");
    // The files of every lane, converted from the snapshot (lossless unless the lane says otherwise).
    const files = await laneFiles(source, dir, print);
    const lanes = LANES.map((lane) => ({ ...lane, path: files[lane.file] }));

    // Ids as `halo ppl` makes them (the engine's tokenizer: BOS first), cut into its independent windows.
    const exactEngine = await loadModel(files.halo, { backend: "reference", kvDtype: "f32", maxSequences: 1, contextLength });
    const ids = exactEngine.tokenize(text);
    const vocab = exactEngine.config.vocabSize;
    exactEngine.dispose();
    const allWindows = independentWindows(ids.length, contextLength);
    const windows = pickWindows(allWindows, values.windows);
    const scoredTokens = windows.reduce((s, w) => s + (w.end - w.begin - 1), 0);
    print(`${ids.length} ids, ${windows.length} of ${allWindows.length} windows of ${contextLength}, ${scoredTokens} scored positions`);

    // The exact path, in workers: the probabilities of every scored position, their argmax and next-token NLL.
    const t0 = performance.now();
    const exact = await exactPath(files.halo, contextLength, windows, ids, Number(values.workers), vocab);
    const exactNll = meanNll(exact);
    print(`exact path: ppl ${Math.exp(exactNll).toFixed(4)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const rows = [];
    const skipped = [];
    for (const lane of lanes) {
      const t = performance.now();
      let result;
      try {
        result = await runLane(lane, contextLength, windows, ids, exact, vocab);
      } catch (error) {
        if (!(lane.optional === true && error?.code === "ENGINE_NO_BACKEND")) throw error;
        skipped.push({ lane: lane.name, backend: lane.backend, reason: error.message });
        print(`${lane.name}: not run (${error.message})`);
        continue;
      }
      const seconds = (performance.now() - t) / 1000;
      const row = {
        lane: lane.name,
        key: lane.file,
        file: lane.fileLabel,
        backend: lane.backend,
        lmHead: lane.lmHead ?? (lane.backend === "cpu" ? "f16" : "f32"),
        kvDtype: lane.kvDtype,
        lossy: files.lossy[lane.file] ?? false,
        perplexity: Math.exp(result.meanNll),
        meanNll: result.meanNll,
        pplDeltaPercent: (Math.exp(result.meanNll - exactNll) - 1) * 100,
        top1Agreement: result.top1,
        meanKl: result.meanKl,
        maxKl: result.maxKl,
        seconds: +seconds.toFixed(1),
      };
      rows.push(row);
      print(
        `${lane.name}: ppl ${row.perplexity.toFixed(4)} (${signed(row.pplDeltaPercent, 3)} %), top-1 ${(row.top1Agreement * 100).toFixed(2)} %, KL ${row.meanKl.toExponential(2)} (${seconds.toFixed(1)} s)`,
      );
    }

    // `halo ppl` computes the default lane's number itself: the two must agree (same windows, same ids).
    let pplCheck = null;
    if (windows.length === allWindows.length) {
      const engine = await loadModel(files.halo, { maxSequences: 1, contextLength });
      const own = await engine.perplexity(ids, { contextLength });
      engine.dispose();
      const lane = rows.find((r) => r.lane === DEFAULT_LANE);
      pplCheck = { enginePerplexity: own.perplexity, lanePerplexity: lane.perplexity, relativeDifference: Math.abs(own.perplexity / lane.perplexity - 1) };
      if (pplCheck.relativeDifference > 1e-9) throw new Error(`the default lane's perplexity ${lane.perplexity} is not Engine.perplexity's ${own.perplexity}`);
    }

    const exactRow = {
      lane: "exact",
      file: "halo-v2 .halo",
      backend: "reference",
      lmHead: "f32",
      kvDtype: "f32",
      perplexity: Math.exp(exactNll),
      meanNll: exactNll,
    };
    const report = {
      date: new Date().toISOString(),
      cpu: cpuModel,
      snapshot: values.hf,
      text: values.text,
      contextLength,
      ids: ids.length,
      windows: windows.length,
      allWindows: allWindows.length,
      scoredTokens,
      exact: exactRow,
      lanes: rows,
      skipped,
      conversions: files.changes,
      pplCheck,
      seconds: +((performance.now() - started) / 1000).toFixed(1),
    };
    console.log(markdown(report));
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 1)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The lane `halo run` / `halo ppl` use with no flags: the cpu backend, f16 (as stored) head, f16 KV, the shipped .halo. */
const DEFAULT_LANE = "cpu default";

/** Every lane: which file (a key of laneFiles), backend and options. */
const LANES = [
  { name: "cpu, f32 KV", file: "halo", fileLabel: "halo-v2 .halo", backend: "cpu", kvDtype: "f32" },
  { name: DEFAULT_LANE, file: "halo", fileLabel: "halo-v2 .halo", backend: "cpu", kvDtype: "f16" },
  { name: "cpu, int8 head", file: "halo", fileLabel: "halo-v2 .halo", backend: "cpu", kvDtype: "f16", lmHead: "int8" },
  { name: "cpu, int4 head", file: "halo", fileLabel: "halo-v2 .halo", backend: "cpu", kvDtype: "f16", lmHead: "int4" },
  { name: "cpu, int8 KV", file: "halo", fileLabel: "halo-v2 .halo", backend: "cpu", kvDtype: "int8" },
  { name: "HF snapshot", file: "hf", fileLabel: "hf-packed snapshot", backend: "cpu", kvDtype: "f16" },
  { name: ".halo halo-i2x256", file: "haloI2x256", fileLabel: "halo-i2x256 .halo", backend: "cpu", kvDtype: "f16" },
  { name: ".halo tq1-v4", file: "haloTq1v4", fileLabel: "tq1-v4 .halo", backend: "cpu", kvDtype: "f16" },
  { name: ".halo int8", file: "haloInt8", fileLabel: "int8 .halo", backend: "cpu", kvDtype: "f16" },
  { name: "GGUF TQ1_0", file: "tq1_0", fileLabel: "TQ1_0 .gguf", backend: "cpu", kvDtype: "f16" },
  { name: "GGUF TQ2_0", file: "tq2_0", fileLabel: "TQ2_0 .gguf", backend: "cpu", kvDtype: "f16" },
  { name: "GGUF I2_S", file: "i2_s", fileLabel: "I2_S .gguf", backend: "cpu", kvDtype: "f16" },
  { name: ".halo sherry (forced)", file: "haloSherry", fileLabel: "sherry .halo", backend: "cpu", kvDtype: "f16" },
  { name: "HF bf16 master weights (forced)", file: "hfBf16", fileLabel: "hf-bf16 snapshot", backend: "cpu", kvDtype: "f16" },
  // The GPU backend where one opens (a HIP or CUDA runtime); elsewhere these rows say why they did not run.
  { name: "hip, f32 KV", file: "halo", fileLabel: "halo-v2 .halo", backend: "hip", kvDtype: "f32", optional: true },
  { name: "hip default", file: "halo", fileLabel: "halo-v2 .halo", backend: "hip", kvDtype: "f16", optional: true },
];

/** Converts the snapshot to every lane's file; lossless conversions refuse to be lossy (no force), the forced ones say what changed. */
async function laneFiles(source, dir, print) {
  const plan = [
    ["halo", "m.halo", { format: "halo" }],
    ["haloI2x256", "i2x256.halo", { format: "halo", codecs: backendFactory.packings }],
    ["haloTq1v4", "tq1-v4.halo", { format: "halo", packing: "tq1-v4" }],
    ["haloInt8", "int8.halo", { format: "halo", packing: "int8" }],
    ["tq1_0", "m-tq1_0.gguf", { format: "gguf-tq1_0" }],
    ["tq2_0", "m-tq2_0.gguf", { format: "gguf-tq2_0" }],
    ["i2_s", "m-i2_s.gguf", { format: "gguf-i2_s" }],
    ["haloSherry", "sherry.halo", { format: "halo", packing: "sherry", force: true }],
    ["hfBf16", "hf-bf16", { format: "hf-bf16", force: true }],
  ];
  const files = { hf: source.source.path, lossy: {}, changes: {} };
  for (const [key, name, options] of plan) {
    const path = join(dir, name);
    const report = await convertModel(source, path, options);
    files[key] = path;
    files.lossy[key] = report.lossy;
    files.changes[key] = report.changes;
    print(`${key}: ${report.changes.join("; ")}${report.lossy ? " (lossy)" : ""}`);
  }
  return files;
}

/** `halo ppl`'s independent windows: [begin, begin + window) from 0, the last one cut at the end of the text. */
function independentWindows(length, window) {
  const windows = [];
  for (let begin = 0; begin < length - 1; begin += window) {
    const end = Math.min(begin + window, length);
    windows.push({ index: windows.length, begin, end });
    if (end === length) break;
  }
  return windows;
}

/** All windows, or `count` of them evenly spaced (first and last included). */
function pickWindows(all, option) {
  if (option === "all") return all;
  const count = Number(option);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--windows must be "all" or a whole number ≥ 1, not ${option}`);
  if (count >= all.length) return all;
  const picked = new Set(Array.from({ length: count }, (_, i) => Math.round((i * (all.length - 1)) / Math.max(1, count - 1))));
  return [...picked].sort((a, b) => a - b).map((i, k) => ({ ...all[i], index: k }));
}

/** The exact path's probabilities, argmax and NLL per window, computed by `workers` worker threads. */
async function exactPath(model, contextLength, windows, ids, workers, vocab) {
  const results = new Array(windows.length);
  const shares = Array.from({ length: workers }, (_, k) => windows.filter((_, i) => i % workers === k));
  await Promise.all(
    shares.map(
      (share) =>
        new Promise((resolvePromise, reject) => {
          const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { model, contextLength, windows: share, ids } });
          worker.on("message", (message) => {
            if (message.done === true) resolvePromise();
            else results[message.index] = message;
          });
          worker.on("error", reject);
          worker.on("exit", (code) => (code === 0 ? resolvePromise() : reject(new Error(`exact-path worker exited with ${code}`))));
        }),
    ),
  );
  for (const [i, r] of results.entries())
    if (r === undefined || r.probs.length !== (windows[i].end - windows[i].begin - 1) * vocab) throw new Error(`window ${i} missing`);
  return results;
}

/** Mean NLL of the next token over every scored position of the exact path. */
function meanNll(exact) {
  let sum = 0;
  let count = 0;
  for (const window of exact) {
    for (const v of window.nll) {
      sum += v;
      count++;
    }
  }
  return sum / count;
}

/** One lane over the windows: mean NLL, top-1 agreement with the exact path, mean and largest KL(exact ‖ lane). */
async function runLane(lane, contextLength, windows, ids, exact, vocab) {
  const engine = await loadModel(lane.path, {
    backend: lane.backend,
    kvDtype: lane.kvDtype,
    maxSequences: 1,
    contextLength,
    ...(lane.lmHead !== undefined ? { backendOptions: { cpu: { lmHead: lane.lmHead } } } : {}),
  });
  if (engine.backend !== lane.backend) throw new Error(`${lane.name} ran on ${engine.backend}, not ${lane.backend}`);
  let nll = 0;
  let same = 0;
  let kl = 0;
  let maxKl = 0;
  let count = 0;
  try {
    for (const [i, w] of windows.entries()) {
      const chunk = ids.slice(w.begin, w.end);
      const logits = await windowLogits(engine, chunk);
      const { probs, sumP, sumPLogP, argmax } = exact[i];
      for (let r = 0; r < chunk.length - 1; r++) {
        const base = r * vocab;
        const { best, lse } = rowStats(logits, base, vocab);
        nll += lse - logits[base + chunk[r + 1]];
        if (best === argmax[r]) same++;
        // KL(exact ‖ lane) = Σp·(log p − (logit − lse)) over the exact row's p.
        let dot = 0;
        for (let v = 0; v < vocab; v++) dot += probs[base + v] * logits[base + v];
        const d = sumPLogP[r] - dot + lse * sumP[r];
        kl += d;
        if (d > maxKl) maxKl = d;
        count++;
      }
    }
  } finally {
    engine.dispose();
  }
  return { meanNll: nll / count, top1: same / count, meanKl: kl / count, maxKl };
}

function cpuName() {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    return `${line?.split(":")[1]?.trim() ?? cpus()[0]?.model ?? "unknown"} (${cpus().length} logical cores)`;
  } catch {
    return `${cpus()[0]?.model ?? "unknown"} (${cpus().length} logical cores)`;
  }
}

function signed(value, digits) {
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

function markdown(report) {
  const lines = [
    `Quality of halo's lanes against the exact path (reference backend, f32 KV) — ${report.snapshot}`,
    `CPU: ${report.cpu}; text: ${report.text}; ${report.scoredTokens} scored positions in ${report.windows} of ${report.allWindows} independent ${report.contextLength}-token windows; ${report.date}`,
    "",
    "| lane | file | backend | LM head | KV | PPL | ΔPPL vs exact | top-1 agreement | mean KL(exact‖lane) |",
    "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    `| exact | ${report.exact.file} | reference | ${report.exact.lmHead} | f32 | ${report.exact.perplexity.toFixed(4)} | — | — | — |`,
  ];
  for (const r of report.lanes) {
    lines.push(
      `| ${r.lane} | ${r.file}${r.lossy ? " (lossy)" : ""} | ${r.backend} | ${r.lmHead} | ${r.kvDtype} | ${r.perplexity.toFixed(4)} | ${signed(r.pplDeltaPercent, 3)} % | ${(r.top1Agreement * 100).toFixed(2)} % | ${r.meanKl.toExponential(2)} |`,
    );
  }
  const reasons = new Map();
  for (const lane of report.skipped) reasons.set(lane.reason, [...(reasons.get(lane.reason) ?? []), lane]);
  for (const [reason, lanes] of reasons) lines.push("", `${lanes.map((lane) => lane.lane).join(", ")}: not run — ${reason}`);
  for (const lane of report.lanes.filter((r) => r.lossy)) lines.push("", `${lane.lane}: ${report.conversions[lane.key].join("; ")}`);
  if (report.pplCheck !== null)
    lines.push(
      "",
      `cpu default lane = Engine.perplexity (halo ppl): ${report.pplCheck.enginePerplexity.toFixed(6)} (relative difference ${report.pplCheck.relativeDifference.toExponential(1)})`,
    );
  lines.push("", `${report.seconds} s in all`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------------
// Worker: the exact path for a share of the windows (the reference backend runs on one thread; two workers use two cores).

if (!isMainThread) {
  const { model, contextLength, windows, ids } = workerData;
  const engine = await loadModel(model, { backend: "reference", kvDtype: "f32", maxSequences: 1, contextLength, verify: false });
  const vocab = engine.config.vocabSize;
  for (const w of windows) {
    const chunk = ids.slice(w.begin, w.end);
    const logits = await windowLogits(engine, chunk);
    const scored = chunk.length - 1;
    // Per scored row: the probabilities p (float32), Σp and Σp·log p over those same float32 p (float64 sums), so a
    // lane's KL(exact ‖ lane) = Σp·log p − Σp·logit + lse·Σp needs no exp of the exact row; argmax; NLL of the next token.
    const probs = new Float32Array(scored * vocab);
    const sumP = new Float64Array(scored);
    const sumPLogP = new Float64Array(scored);
    const argmax = new Int32Array(scored);
    const nll = new Float64Array(scored); // in float64, as Engine.perplexity computes it
    for (let r = 0; r < scored; r++) {
      const base = r * vocab;
      const { best, lse } = rowStats(logits, base, vocab);
      let total = 0;
      let entropyTerm = 0;
      for (let i = 0; i < vocab; i++) {
        const p = Math.fround(Math.exp(logits[base + i] - lse));
        probs[base + i] = p;
        total += p;
        entropyTerm += p * (logits[base + i] - lse);
      }
      sumP[r] = total;
      sumPLogP[r] = entropyTerm;
      argmax[r] = best;
      nll[r] = lse - logits[base + chunk[r + 1]];
    }
    parentPort.postMessage({ index: w.index, probs, sumP, sumPLogP, argmax, nll }, [probs.buffer, sumP.buffer, sumPLogP.buffer, argmax.buffer, nll.buffer]);
  }
  engine.dispose();
  parentPort.postMessage({ done: true });
} else {
  await main();
}
