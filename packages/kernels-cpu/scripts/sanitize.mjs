// Builds test/native/kernel-check.cpp with every native kernel source under ASan + UBSan and runs it, then (x86-64)
// test/native/amx-check.cpp against kernels_amx.cpp built with -DHALO_AMX_EMULATE (its tiles on the software model);
// test/native/avx512-i4-check.cpp (the AVX-512 int4 head on a software model of its intrinsics, every machine);
// test/native/file-map-check.cpp (the SIGBUS guard of model file mappings); non-zero on any failure or report.
// A check that cannot run on this CPU says so: a line `SKIP <what>: <reason>` (kernel-check for each table it cannot
// run, amx-check for the real tiles) or exit status 77 with such a line (amx-check without AVX-512 VNNI). Every skip is
// listed in the last line, which counts them; only hardware a CI machine may lack (AMX, AVX-512) is ever skipped.
// Usage: node scripts/sanitize.mjs [--cxx g++] [--keep] [--work DIR]. Compiles at most 2 translation units at a time.
// --work DIR keeps the objects in DIR and recompiles only those older than their source or any native header (for
// scripts/mutate-kernels.mjs, which changes one kernel source at a time).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const cxx = args.includes("--cxx") ? args[args.indexOf("--cxx") + 1] : (process.env.CXX ?? "g++");
const keep = args.includes("--keep");
const reuse = args.includes("--work") ? args[args.indexOf("--work") + 1] : undefined;
/** Exit status of a check that cannot run on this CPU at all (it prints `SKIP <what>: <reason>`). */
const SKIP_STATUS = 77;
const SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"];
const COMMON = ["-std=c++17", "-pthread", "-fno-math-errno", `-I${join(root, "native")}`, ...SANITIZE];
const X64 = process.arch === "x64";
const ARM64 = process.arch === "arm64";

// Per-TU ISA flags, as binding.gyp gives them.
const AVX512VNNI = ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"];
const sources = [
  ["native/kernels_ref.cpp", []],
  ["native/model.cpp", []],
  ["native/file_map.cpp", []],
  ["test/native/kernel-check.cpp", []],
  ...(X64
    ? [
        ["native/kernels_avx2.cpp", ["-mavx2", "-mfma", "-mf16c"]],
        ["native/kernels_avx512vnni.cpp", AVX512VNNI],
        ["native/kernels_amx.cpp", [...AVX512VNNI, "-mamx-tile", "-mamx-int8"]],
      ]
    : []),
  ...(ARM64
    ? [
        ["native/kernels_neon.cpp", []],
        ["native/kernels_neon_dotprod.cpp", ["-march=armv8.2-a+dotprod"]],
      ]
    : []),
];
// The AMX check: the AMX kernel on the tile model, with the tables it compares against and falls back to.
const amxOnly = X64
  ? [
      ["native/kernels_amx.cpp", [...AVX512VNNI, "-DHALO_AMX_EMULATE"], "emulated"],
      ["test/native/amx-check.cpp", []],
    ]
  : [];
// The AVX-512 int4 head on the intrinsics model: portable C++, run on every machine.
const emulatedOnly = [["test/native/avx512-i4-check.cpp", [`-I${join(root, "test", "native")}`]]];
// The SIGBUS guard of file mappings (native/file_map.cpp).
const fileMapOnly = [["test/native/file-map-check.cpp", []]];
const amxSources = X64 ? ["native/kernels_ref.cpp", "native/kernels_avx512vnni.cpp", "native/kernels_amx.cpp:emulated", "test/native/amx-check.cpp"] : [];

let work;
if (reuse === undefined) {
  work = mkdtempSync(join(tmpdir(), "halo-sanitize-"));
} else {
  mkdirSync(reuse, { recursive: true });
  work = reuse;
}
// With --work: an object is current when newer than its source and every header it may include.
const headerTime = Math.max(
  ...["native", "test/native"].flatMap((dir) =>
    readdirSync(join(root, dir))
      .filter((name) => /\.(h|inc)$/.test(name))
      .map((name) => statSync(join(root, dir, name)).mtimeMs),
  ),
);
const started = Date.now();

const objectOf = (key) => join(work, key.replace(/[/.:]/g, "_") + ".o");

function compile([source, flags, variant]) {
  const object = objectOf(variant === undefined ? source : `${source}:${variant}`);
  if (reuse !== undefined && existsSync(object)) {
    const built = statSync(object).mtimeMs;
    if (built > statSync(join(root, source)).mtimeMs && built > headerTime) return Promise.resolve(object);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cxx, [...COMMON, ...flags, "-c", join(root, source), "-o", object], { stdio: "inherit" });
    child.on("exit", (code) => (code === 0 ? resolve(object) : reject(new Error(`${cxx} failed on ${source} (exit ${code})`))));
    child.on("error", reject);
  });
}

async function compileAll(list) {
  const objects = [];
  const queue = [...list];
  const lanes = Array.from({ length: Math.min(2, queue.length) }, async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) objects.push(await compile(next));
  });
  await Promise.all(lanes);
  return objects;
}

const ENV = {
  ...process.env,
  ASAN_OPTIONS: "halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1",
  UBSAN_OPTIONS: "halt_on_error=1:print_stacktrace=1",
};

function run(binary) {
  const result = spawnSync(binary, [], { env: ENV, encoding: "utf8" });
  const output = `${result.stdout}${result.stderr}`;
  const reported = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/.test(output);
  return { status: result.status, output, reported };
}

function link(objects, output) {
  const result = spawnSync(cxx, [...objects, ...SANITIZE, "-pthread", "-o", output], { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`linking ${output} failed`);
}

try {
  // 1. The sanitizers must be live: a one-past-the-end heap read has to be reported, or a green run means nothing.
  const probeSource = join(work, "probe.cpp");
  writeFileSync(probeSource, "#include <vector>\nint main(int argc, char**) { std::vector<int> v(4, 1); return v.data()[argc + 3]; }\n");
  const probe = join(work, "probe");
  const probeBuild = spawnSync(cxx, [...COMMON, probeSource, "-o", probe], { stdio: "inherit" });
  if (probeBuild.status !== 0) throw new Error(`${cxx} cannot build with ${SANITIZE.join(" ")}`);
  const probeRun = run(probe);
  if (!probeRun.reported || probeRun.status === 0)
    throw new Error("AddressSanitizer did not report a heap overflow in the probe; the sanitizer build is not working");

  // 2. The kernel checks, then the AMX check (its object list shares the ref and VNNI objects).
  const objects = await compileAll([...sources, ...amxOnly, ...emulatedOnly, ...fileMapOnly]);
  const binaries = [["kernel-check", sources.map(([source]) => objectOf(source))]];
  if (X64) binaries.push(["amx-check", amxSources.map(objectOf)]);
  binaries.push(["avx512-i4-check", ["native/kernels_ref.cpp", "test/native/avx512-i4-check.cpp"].map(objectOf)]);
  binaries.push(["file-map-check", ["native/file_map.cpp", "test/native/file-map-check.cpp"].map(objectOf)]);
  let failed = false;
  const skips = [];
  const ran = [];
  for (const [name, list] of binaries) {
    const binary = join(work, name);
    link(list, binary);
    const runStarted = Date.now();
    const checked = run(binary);
    process.stdout.write(checked.output);
    const skipLines = [...checked.output.matchAll(/^SKIP (.+?): (.+)$/gm)].map((match) => `${match[1]} (${match[2]})`);
    skips.push(...skipLines);
    const took = `${((Date.now() - runStarted) / 1000).toFixed(1)} s`;
    if (checked.status === SKIP_STATUS && !checked.reported && skipLines.length > 0) {
      ran.push(`${name} skipped`);
    } else if (checked.status !== 0 || checked.reported) {
      console.error(`sanitize: ${name} FAILED (exit ${checked.status}${checked.reported ? ", sanitizer report above" : ""})`);
      failed = true;
    } else {
      ran.push(`${name} ${took}`);
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const skipped = skips.length === 0 ? "0 skipped" : `${skips.length} skipped: ${skips.join("; ")}`;
  if (failed) {
    console.error(`sanitize: FAILED after ${seconds} s (${skipped})`);
    process.exitCode = 1;
  } else {
    console.log(`sanitize: ASan + UBSan clean over ${objects.length} translation units, ${ran.join(", ")} (${cxx}) in ${seconds} s; ${skipped}`);
  }
} catch (error) {
  console.error(`sanitize: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  if (keep || reuse !== undefined) console.log(`sanitize: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
