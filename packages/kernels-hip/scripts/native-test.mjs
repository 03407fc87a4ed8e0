// Builds and runs the C++ tests of test/native (the emulator, the kernels against their twins) with the host
// compiler — no GPU needed — and exits non-zero when a build or a test fails or a sanitizer reports.
// Usage: node scripts/native-test.mjs [--sanitize] [--cxx g++] [--jobs N] [name …] [-- args for every test]
//   --jobs N    compilers at once (default: JOBS, else 2 on a machine with more than 2 CPUs, else 1)
//   --sanitize  ASan + UBSan build (its own object directory); each test gets its sanitizeArgs instead of args
//   name        run only these tests (emu_test, kernels_test, …)
// Objects are kept in build/native-test/<mode>/ and rebuilt when their source, a header or the flags change.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * One entry per test binary: `test` is its main source, `sources` what it links besides, `args` what it runs with
 * (`sanitizeArgs` under --sanitize, where timings mean nothing). Paths are relative to the package. Add a test here.
 */
const TESTS = [
  {
    test: "test/native/emu_test.cpp",
    sources: ["kernels/emu/emu.cpp", "native/device_emu.cpp"],
    args: [],
    sanitizeArgs: ["--no-bench"],
  },
  {
    // Every kernel of kernels/halo_kernels.cpp under the emulator against its scalar twin (memcmp) and float64.
    test: "test/native/kernels_test.cpp",
    sources: ["kernels/halo_kernels.cpp", "native/twins.cpp", "native/pack_g2.cpp", "kernels/emu/emu.cpp"],
    args: [],
    sanitizeArgs: [],
  },
  {
    // gpu_model on the emulated device: graphs vs launches, device top-k, refusals, injected faults, KV copy / export / import.
    test: "test/native/model_test.cpp",
    sources: [
      "native/gpu_model.cpp",
      "native/device.cpp",
      "native/device_hip.cpp",
      "native/device_cuda.cpp",
      "native/device_emu.cpp",
      "native/pack_g2.cpp",
      "kernels/halo_kernels.cpp",
      "kernels/emu/emu.cpp",
    ],
    args: [],
    sanitizeArgs: ["--short"],
  },
  {
    // open_device / probe_device and the HIP / CUDA devices: no-runtime branches through the library overrides, the
    // real HIP runtime's no-device branch (libamdhip64-5 installed; skipped otherwise unless
    // HALO_DEVICE_TEST_REQUIRE_HIP_RUNTIME=1), the Device contract on the emulator — and on a GPU with HALO_DEVICE_TEST_CODE_DIR.
    test: "test/native/device_test.cpp",
    sources: ["native/device.cpp", "native/device_hip.cpp", "native/device_cuda.cpp", "native/device_emu.cpp", "kernels/emu/emu.cpp"],
    args: [],
  },
  {
    // bench/gpu-check.sh's real-GPU harness, run here on the emulator with tiny shapes (kernels vs twins, the model vs the
    // emulator, and the bandwidth / GEMV / end-to-end paths), so the script a lent GPU runs keeps compiling and running.
    test: "test/native/gpu_check.cpp",
    sources: [
      "native/device.cpp",
      "native/device_cuda.cpp",
      "native/device_hip.cpp",
      "native/device_emu.cpp",
      "native/gpu_model.cpp",
      "native/pack_g2.cpp",
      "native/twins.cpp",
      "kernels/halo_kernels.cpp",
      "kernels/emu/emu.cpp",
    ],
    args: ["--device", "emulator", "--tiny"],
    // Under the sanitizers the model section alone takes ~40 s; gpu_model runs sanitized in model_test already.
    sanitizeArgs: ["--device", "emulator", "--tiny", "--only", "bandwidth,conformance,gemv,e2e"],
  },
];

const argv = process.argv.slice(2);
const dashDash = argv.indexOf("--");
const options = dashDash < 0 ? argv : argv.slice(0, dashDash);
const passThrough = dashDash < 0 ? [] : argv.slice(dashDash + 1);
const sanitize = options.includes("--sanitize");
const valueOf = (flag) => (options.includes(flag) ? options[options.indexOf(flag) + 1] : undefined);
const cxx = valueOf("--cxx") ?? process.env.CXX ?? "g++";
// --jobs, else JOBS (the knob build-native.mjs and build-kernels.mjs read), else 2 where there are more than 2 CPUs.
const jobsAsked = Number(valueOf("--jobs") ?? process.env.JOBS);
const jobs = Number.isInteger(jobsAsked) && jobsAsked >= 1 ? jobsAsked : availableParallelism() > 2 ? 2 : 1;
const selected = options.filter((arg, i) => !arg.startsWith("--") && !["--cxx", "--jobs"].includes(options[i - 1]));

const FLAGS = [
  "-std=c++17",
  "-ffp-contract=off",
  "-pthread",
  "-Wall",
  "-Wextra",
  `-I${join(root, "kernels")}`,
  `-I${join(root, "native")}`,
  ...(sanitize ? ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"] : ["-O2"]),
];
const LINK = ["-pthread", ...(sanitize ? ["-fsanitize=address,undefined"] : [])];
const ENV = {
  ...process.env,
  ASAN_OPTIONS: "halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1",
  UBSAN_OPTIONS: "halt_on_error=1:print_stacktrace=1",
};

const unknown = selected.filter((name) => !TESTS.some((entry) => basename(entry.test, ".cpp") === name));
if (unknown.length > 0) {
  console.error(`native-test: no test named ${unknown.join(", ")} (known: ${TESTS.map((entry) => basename(entry.test, ".cpp")).join(", ")})`);
  process.exit(2);
}
const tests = TESTS.filter((entry) => selected.length === 0 || selected.includes(basename(entry.test, ".cpp")));

const version = spawnSync(cxx, ["--version"], { encoding: "utf8" });
if (version.error !== undefined || version.status !== 0) {
  console.error(`native-test: the C++ compiler '${cxx}' does not run (Debian: apt-get install g++, or pass --cxx <compiler>)`);
  process.exit(1);
}

// Objects are shared between tests; a header change (anywhere under kernels/, native/, test/native/) or new flags
// rebuild everything — the headers are few and a stale object would test old code.
const work = join(root, "build", "native-test", sanitize ? "sanitize" : "release");
const stamp = join(work, "flags.txt");
const stampText = `${version.stdout.split("\n")[0]}\n${FLAGS.join(" ")}\n`;
if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== stampText) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(stamp, stampText);
}

function newestHeader(directory) {
  let newest = 0;
  if (!existsSync(directory)) return newest;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestHeader(path));
    else if (/\.(h|hpp|inc)$/.test(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}
const headers = Math.max(...["kernels", "native", join("test", "native")].map((directory) => newestHeader(join(root, directory))));

const objectOf = (source) => join(work, source.replace(/[/\\.]/g, "_") + ".o");

function compile(source) {
  const object = objectOf(source);
  const input = join(root, source);
  if (existsSync(object)) {
    const built = statSync(object).mtimeMs;
    if (built > statSync(input).mtimeMs && built > headers) return Promise.resolve(object);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cxx, [...FLAGS, "-c", input, "-o", object], { stdio: "inherit" });
    child.on("exit", (code) => (code === 0 ? resolve(object) : reject(new Error(`${cxx} failed on ${source} (exit ${code})`))));
    child.on("error", reject);
  });
}

async function compileAll(sources) {
  const queue = [...new Set(sources)];
  const failures = [];
  const lanes = Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      try {
        await compile(next);
      } catch (error) {
        rmSync(objectOf(next), { force: true });
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
  });
  await Promise.all(lanes);
  return failures;
}

const started = Date.now();
const failed = [];
const compileFailures = await compileAll(tests.flatMap((entry) => [entry.test, ...entry.sources]));
for (const message of compileFailures) console.error(`native-test: ${message}`);

for (const entry of tests) {
  const name = basename(entry.test, ".cpp");
  const objects = [entry.test, ...entry.sources].map(objectOf);
  if (objects.some((object) => !existsSync(object))) {
    failed.push(`${name} (not built)`);
    continue;
  }
  const binary = join(work, name);
  const link = spawnSync(cxx, [...objects, ...LINK, "-o", binary], { stdio: "inherit" });
  if (link.status !== 0) {
    failed.push(`${name} (link failed)`);
    continue;
  }
  const testStarted = Date.now();
  const args = [...((sanitize ? entry.sanitizeArgs : entry.args) ?? []), ...passThrough];
  const run = spawnSync(binary, args, { env: ENV, encoding: "utf8", maxBuffer: 256 * 1024 * 1024, timeout: 20 * 60 * 1000 });
  process.stdout.write(run.stdout ?? "");
  process.stderr.write(run.stderr ?? "");
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  const reported = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/.test(output);
  const seconds = ((Date.now() - testStarted) / 1000).toFixed(1);
  if (run.status === 0 && !reported) {
    console.log(`native-test: ${name} passed (${seconds} s${sanitize ? ", ASan + UBSan" : ""})`);
  } else {
    const why = run.error !== undefined ? run.error.message : run.signal !== null ? `signal ${run.signal}` : `exit ${run.status}`;
    failed.push(`${name} (${why}${reported ? ", sanitizer report above" : ""})`);
  }
}

const total = ((Date.now() - started) / 1000).toFixed(1);
if (failed.length > 0 || compileFailures.length > 0) {
  console.error(`native-test: FAILED: ${failed.join(", ") || "build"} after ${total} s`);
  process.exit(1);
}
console.log(`native-test: ${tests.length} test${tests.length === 1 ? "" : "s"} passed (${cxx}${sanitize ? ", sanitized" : ""}) in ${total} s`);
