#!/usr/bin/env node
// Load time of the 2B-4T-shaped .halo with and without load-time verification, cold and warm page cache, cache miss and hit: child process per measurement, median of N.
//
// Usage (heavy: writes a 1.2 GB file once; `--keep` leaves it for the next run):
//   pnpm --filter @halo/h1b-format --filter @halo/engine build
//   flock /tmp/heavy.lock node bench/load-verify.mjs [--runs 3] [--file /tmp/halo-bench-verify/bitnet-2b-4t.halo] [--backend cpu] [--keep] [--json]
//
// Each measurement is a fresh `node` process timing `loadModel(path, { backend, verify })` until
// the engine is ready (what `halo run` waits for before the first token). "Cold" evicts the file's
// pages first (posix_fadvise DONTNEED through python3, no root needed); "warm" reads the whole
// file once before. "Cache miss" points HALO_CACHE_DIR at an empty folder, "hit" at one that a
// previous load filled. The verification pass alone (`verifyModelWeights`, warm, cache off) is
// also timed with 1 and 2 worker threads, and on a cache hit (one stat and one small read).
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const engineUrl = pathToFileURL(join(root, "packages/engine/dist/index.js")).href;
const formatUrl = pathToFileURL(join(root, "packages/h1b-format/dist/index.js")).href;
const cli = join(root, "packages/h1b-format/dist/cli.js");

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    file: { type: "string", default: "/tmp/halo-bench-verify/bitnet-2b-4t.halo" },
    backend: { type: "string", default: "cpu" },
    shape: { type: "string", default: "bitnet-2b-4t" },
    keep: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const file = values.file;

if (!existsSync(file)) {
  mkdirSync(dirname(file), { recursive: true });
  console.error(`writing ${file} (synth --shape ${values.shape})…`);
  execFileSync(process.execPath, [cli, "synth", "--shape", values.shape, "--seed", "1", "-o", file], { stdio: ["ignore", "ignore", "inherit"] });
}

function evict(path) {
  const code = "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nos.fsync(fd)\nos.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\nos.close(fd)";
  execFileSync("python3", ["-c", code, path]);
}

async function warm(path) {
  await new Promise((done, fail) =>
    createReadStream(path, { highWaterMark: 8 << 20 })
      .on("data", () => {})
      .on("end", done)
      .on("error", fail),
  );
}

function child(script, env) {
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`child failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").at(-1));
}

const loadScript = (verify) => `
const { loadModel } = await import(${JSON.stringify(engineUrl)});
const t0 = performance.now();
const engine = await loadModel(${JSON.stringify(file)}, { backend: ${JSON.stringify(values.backend)}, verify: ${verify} });
const ms = performance.now() - t0;
engine.dispose();
console.log(JSON.stringify({ ms }));`;

const verifyScript = (threads, cacheDir = null) => `
const { readHalo, verifyModelWeights } = await import(${JSON.stringify(formatUrl)});
const model = readHalo(${JSON.stringify(file)});
const report = await verifyModelWeights(model, { cacheDir: ${JSON.stringify(cacheDir)}, threads: ${threads} });
model.close();
console.log(JSON.stringify({ ms: report.seconds * 1000, bytes: report.bytesChecksummed + report.bytesScanned }));`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const cases = [
  { name: "warm, verify off", cold: false, verify: false, cache: "none" },
  { name: "warm, verify on, first load (cache miss)", cold: false, verify: true, cache: "miss" },
  { name: "warm, verify on, remembered (cache hit)", cold: false, verify: true, cache: "hit" },
  { name: "cold, verify off", cold: true, verify: false, cache: "none" },
  { name: "cold, verify on, first load (cache miss)", cold: true, verify: true, cache: "miss" },
  { name: "cold, verify on, remembered (cache hit)", cold: true, verify: true, cache: "hit" },
];
const hitDir = mkdtempSync(join(tmpdir(), "halo-verify-hit-"));
await warm(file);
child(loadScript(true), { HALO_CACHE_DIR: hitDir }); // fills the hit cache
const results = [];
for (const c of cases) {
  const times = [];
  for (let r = 0; r < runs; r++) {
    const missDir = mkdtempSync(join(tmpdir(), "halo-verify-miss-"));
    if (c.cold) evict(file);
    else await warm(file);
    times.push(child(loadScript(c.verify), { HALO_CACHE_DIR: c.cache === "hit" ? hitDir : missDir }).ms);
    rmSync(missDir, { recursive: true, force: true });
  }
  results.push({ case: c.name, medianMs: median(times), runsMs: times });
}
for (const threads of [1, 2]) {
  const times = [];
  for (let r = 0; r < runs; r++) {
    await warm(file);
    times.push(child(verifyScript(threads), {}).ms);
  }
  results.push({ case: `verifyModelWeights alone, warm, ${threads} thread${threads > 1 ? "s" : ""}`, medianMs: median(times), runsMs: times });
}
{
  const times = [];
  for (let r = 0; r < runs; r++) times.push(child(verifyScript(2, hitDir), {}).ms);
  results.push({ case: "verifyModelWeights alone, remembered (cache hit)", medianMs: median(times), runsMs: times });
}
rmSync(hitDir, { recursive: true, force: true });

const machine = { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version, fileBytes: statSync(file).size, backend: values.backend };
if (values.json) console.log(JSON.stringify({ machine, results }, null, 2));
else {
  console.log(
    `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; ${file} (${(machine.fileBytes / 1e9).toFixed(2)} GB), backend ${machine.backend}, median of ${runs}`,
  );
  const ms = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(0));
  for (const r of results) console.log(`${r.case.padEnd(50)} ${ms(r.medianMs).padStart(7)} ms   (${r.runsMs.map(ms).join(", ")})`);
}
if (!values.keep) rmSync(file, { force: true });
