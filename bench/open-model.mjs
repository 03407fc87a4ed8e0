#!/usr/bin/env node
// Open time and RSS of the 2B-4T shape in every format halo writes: child process per measurement, warm cache, median of 3.
//
// Usage (heavy: ~6 GB of writes the first time, cached under /tmp/halo-bench/):
//   pnpm --filter @halo/h1b-format build
//   flock /tmp/heavy.lock node bench/open-model.mjs [--runs 3] [--formats halo,h1b-v2,gguf-tq2_0,gguf-tq1_0,hf-packed] [--json] [--shape tiny]
//
// Per format: `h1b synth --shape bitnet-2b-4t --seed 0` writes the file once. Then, for each of
// `runs` fresh `node` processes (after one warm-up read of the whole file so the page cache is
// warm): time `openModel(path)` and RSS right after it; then read every tensor's bytes once
// (dropping each) and report the time, the RSS after, and the peak RSS (getrusage maxrss).
// For the container, also the time of `verifyHalo(path, {checksums: true})`.
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "packages/h1b-format/dist");
const cli = join(dist, "cli.js");
const benchDir = "/tmp/halo-bench";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    formats: { type: "string", default: "halo,h1b-v2,gguf-tq2_0,gguf-tq1_0,hf-packed" },
    json: { type: "boolean", default: false },
    shape: { type: "string", default: "bitnet-2b-4t" },
  },
});
const runs = Number(values.runs);
const formats = values.formats.split(",");
const shape = values.shape; // tiny / tiny-gqa for a quick check of the script itself
const FILES = {
  halo: `${shape}.halo`,
  "h1b-v2": `${shape}-v2.h1b`,
  "gguf-tq2_0": `${shape}-tq2_0.gguf`,
  "gguf-tq1_0": `${shape}-tq1_0.gguf`,
  "hf-packed": `${shape}-hf`,
};

if (!existsSync(cli)) {
  console.error(`missing ${cli}: run \`pnpm --filter @halo/h1b-format build\` first`);
  process.exit(1);
}
mkdirSync(benchDir, { recursive: true });

function sizeOf(path) {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((a, n) => a + sizeOf(join(path, n)), 0) : s.size;
}

async function warm(path) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path)) await warm(join(path, name));
    return;
  }
  await new Promise((done, fail) =>
    createReadStream(path, { highWaterMark: 8 << 20 })
      .on("data", () => {})
      .on("end", done)
      .on("error", fail),
  );
}

// The measured child: imports the built library, opens, touches, prints one JSON line.
const CHILD = `
const lib = await import(${JSON.stringify(join(dist, "index.js"))});
const path = process.argv[1];
const mode = process.argv[2];
const mib = (b) => b / 1048576;
const { readFileSync } = await import("node:fs");
// rchar: bytes this process read through read()/pread() (page cache included): what open really reads.
const rchar = () => Number(/rchar: ([0-9]+)/.exec(readFileSync("/proc/self/io", "utf8"))[1]);
const rss0 = process.memoryUsage().rss;
if (mode === "verify") {
  const t = performance.now();
  const r = lib.verifyHalo(path, { checksums: true });
  console.log(JSON.stringify({ verifyMs: performance.now() - t, checkedBytes: r.bytesChecked }));
  process.exit(0);
}
const read0 = rchar();
let t = performance.now();
const model = await lib.openModel(path);
const openMs = performance.now() - t;
const openReadMiB = mib(rchar() - read0);
const rssOpen = process.memoryUsage().rss;
t = performance.now();
let tensorBytes = 0;
const tensors = [model.tokenEmbedding, model.outputNorm, ...(model.lmHead ? [model.lmHead] : [])];
for (const layer of model.layers) for (const k of Object.keys(layer)) tensors.push(layer[k]);
for (const tensor of tensors) tensorBytes += tensor.bytes().byteLength;
const touchMs = performance.now() - t;
const rssTouched = process.memoryUsage().rss;
model.close();
console.log(JSON.stringify({ openMs, openReadMiB, touchMs, tensorBytes, baseRssMiB: mib(rss0), openRssMiB: mib(rssOpen), touchedRssMiB: mib(rssTouched), peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
`;

function child(path, mode = "open") {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD, path, mode], { encoding: "utf8", maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`child failed for ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const results = [];
for (const format of formats) {
  const file = FILES[format];
  if (file === undefined) throw new Error(`unknown format ${format}`);
  const path = join(benchDir, file);
  if (!existsSync(path)) {
    // Write into a staging directory, then move everything it holds (the file or snapshot, and an
    // .htok sidecar) into place, so an interrupted run never leaves a half-written cached file.
    const stage = join(benchDir, `.stage-${format}`);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(stage);
    const t = performance.now();
    const args = ["synth", "--shape", shape, "--seed", "0", "-o", join(stage, file), "--format", format];
    if (format.startsWith("gguf")) args.push("--force"); // synthetic f32 scales round to f16 in TQ blocks
    execFileSync(process.execPath, [cli, ...args], { stdio: "inherit" });
    for (const name of readdirSync(stage)) execFileSync("mv", [join(stage, name), join(benchDir, name)]);
    rmSync(stage, { recursive: true, force: true });
    console.error(`generated ${path} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  await warm(path);
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(child(path));
  const row = { format, path, bytes: sizeOf(path) };
  for (const key of Object.keys(samples[0])) row[key] = median(samples.map((s) => s[key]));
  if (format === "halo") {
    const v = [];
    for (let i = 0; i < runs; i++) v.push(child(path, "verify"));
    row.verifyMs = median(v.map((s) => s.verifyMs));
    row.verifyCheckedBytes = v[0].checkedBytes;
    row.verifyGBps = row.verifyCheckedBytes / 1e9 / (row.verifyMs / 1000);
  }
  results.push(row);
  console.error(JSON.stringify(row));
}

const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} vCPU, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
if (values.json) {
  console.log(JSON.stringify({ machine, runs, results }, null, 2));
} else {
  console.log(`machine: ${machine}; median of ${runs} child processes, warm page cache`);
  console.log("| format | size | open | bytes read by open | RSS after open | read all tensor bytes | RSS after | peak RSS |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of results) {
    console.log(
      `| ${r.format} | ${(r.bytes / 1e9).toFixed(2)} GB | ${r.openMs.toFixed(1)} ms | ${r.openReadMiB.toFixed(1)} MiB | ${r.openRssMiB.toFixed(0)} MiB | ${(r.touchMs / 1000).toFixed(2)} s | ${r.touchedRssMiB.toFixed(0)} MiB | ${r.peakRssMiB.toFixed(0)} MiB |`,
    );
  }
  const halo = results.find((r) => r.format === "halo");
  if (halo)
    console.log(
      `\nverifyHalo (checksums) over ${(halo.verifyCheckedBytes / 1e9).toFixed(2)} GB of tensors and blobs: ${(halo.verifyMs / 1000).toFixed(2)} s = ${halo.verifyGBps.toFixed(2)} GB/s`,
    );
  console.log(`baseline RSS of node + the library before opening: ${results[0]?.baseRssMiB.toFixed(0)} MiB`);
}
