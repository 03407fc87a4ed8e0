// Cross-compiles every aarch64 native source (NEON kernels included) and runs the kernel checks and the file-mapping
// guard check under qemu-aarch64.
// Usage: node scripts/cross-check.mjs [--no-run]. Needs g++-aarch64-linux-gnu (and qemu-user unless --no-run);
// scripts/setup-system.sh installs both. The x86 kernel TUs (kernels_avx2/avx512vnni) are x86-only and not built here.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cxx = process.env.CXX_AARCH64 ?? "aarch64-linux-gnu-g++";
const qemu = process.env.QEMU_AARCH64 ?? "qemu-aarch64";
const run = !process.argv.includes("--no-run");
const native = join(root, "native");
const CHECK = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-march=armv8.2-a+dotprod", `-I${native}`];

function has(command) {
  return spawnSync(command, ["--version"], { stdio: "ignore" }).status === 0;
}

/** node_api.h for the binding: Debian's nodejs-dev, then node-gyp's header cache for this Node. */
function nodeHeaders() {
  const version = process.versions.node;
  const candidates = [
    "/usr/include/node",
    join(homedir(), ".cache", "node-gyp", version, "include", "node"),
    resolve(process.execPath, "..", "..", "include", "node"),
  ];
  return candidates.find((dir) => existsSync(join(dir, "node_api.h")));
}

function compile(label, args) {
  const started = Date.now();
  const result = spawnSync(cxx, args, { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`${label}: ${cxx} exited ${result.status}`);
  console.log(`cross-check: ${label} ok (${Date.now() - started} ms)`);
}

const work = mkdtempSync(join(tmpdir(), "halo-aarch64-"));
try {
  if (!has(cxx)) throw new Error(`${cxx} not found: apt-get install -y g++-aarch64-linux-gnu (scripts/setup-system.sh does)`);
  // 1. Every TU binding.gyp builds on arm64, with the flags of the CI brief.
  for (const source of ["kernels_ref.cpp", "model.cpp", "file_map.cpp", "kernels_neon.cpp", "kernels_neon_dotprod.cpp"]) {
    compile(`${source} (armv8.2-a+dotprod)`, [...CHECK, "-c", join(native, source), "-o", join(work, `${source}.o`)]);
  }
  // The plain-NEON table must also build for baseline ARMv8-A (no dotprod): that is the CPU it exists for.
  compile("kernels_neon.cpp (armv8-a, no dotprod)", [
    ...CHECK.filter((f) => !f.startsWith("-march")),
    "-march=armv8-a",
    "-c",
    join(native, "kernels_neon.cpp"),
    "-o",
    join(work, "neon-base.o"),
  ]);
  const headers = nodeHeaders();
  if (headers === undefined) throw new Error("node_api.h not found (install nodejs-dev or run `npx node-gyp install`); binding.cpp was not checked");
  // node-addon-api gives include_dir relative to the current directory, not to this package.
  const addonApi = createRequire(import.meta.url)("node-addon-api").include_dir;
  const bindingDefines = [
    "-DNAPI_VERSION=8",
    "-DNAPI_DISABLE_CPP_EXCEPTIONS",
    "-DNODE_ADDON_API_DISABLE_DEPRECATED",
    "-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
  ];
  compile("binding.cpp (armv8.2-a+dotprod)", [
    ...CHECK,
    ...bindingDefines,
    `-I${resolve(process.cwd(), addonApi)}`,
    `-I${headers}`,
    "-fPIC",
    "-c",
    join(native, "binding.cpp"),
    "-o",
    join(work, "binding.o"),
  ]);

  // 2. The kernel checks, statically linked, on an emulated CPU with dotprod and on one without.
  if (!run) {
    console.log("cross-check: --no-run, kernel checks not executed");
  } else {
    if (!has(qemu)) throw new Error(`${qemu} not found: apt-get install -y qemu-user (or pass --no-run)`);
    // Everything but the dotprod TU at baseline armv8-a, as binding.gyp builds it: compiled with +dotprod, gcc
    // auto-vectorises the scalar code into SDOT and a CPU without it dies of SIGILL before any dispatch.
    const binary = join(work, "kernel-check");
    const baseline = CHECK.filter((f) => f !== "-Werror" && !f.startsWith("-march")).concat("-march=armv8-a");
    compile("kernel-check (static, armv8-a + the dotprod TU)", [
      ...baseline,
      "-pthread",
      "-static",
      join(native, "kernels_ref.cpp"),
      join(native, "model.cpp"),
      join(native, "file_map.cpp"),
      join(root, "test", "native", "kernel-check.cpp"),
      join(work, "neon-base.o"),
      join(work, "kernels_neon_dotprod.cpp.o"),
      "-o",
      binary,
    ]);
    for (const [cpu, expected] of [
      ["max", "neondotprod"],
      ["cortex-a53", "neon"],
    ]) {
      const result = spawnSync(qemu, ["-cpu", cpu, binary], { encoding: "utf8" });
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      if (result.status !== 0) throw new Error(`kernel checks failed under ${qemu} -cpu ${cpu} (exit ${result.status})`);
      // The path under test must really be the one this emulated CPU selects: the first per-table result line
      // (`<table>: ok`; the production-size sweep's summary line and SKIP lines come before or between them).
      const firstTable = /^([a-z0-9]+): ok$/m.exec(result.stdout)?.[1];
      if (firstTable !== expected) throw new Error(`-cpu ${cpu}: expected ${expected} to be the first path checked, found ${firstTable ?? "none"}`);
      console.log(`cross-check: kernel checks pass under ${qemu} -cpu ${cpu}`);
    }
    // The SIGBUS guard of model file mappings: its si_addr and MAP_FIXED replacement on arm64.
    const fileMapCheck = join(work, "file-map-check");
    compile("file-map-check (static, armv8-a)", [
      ...baseline,
      "-pthread",
      "-static",
      join(native, "file_map.cpp"),
      join(root, "test", "native", "file-map-check.cpp"),
      "-o",
      fileMapCheck,
    ]);
    const guard = spawnSync(qemu, ["-cpu", "max", fileMapCheck], { encoding: "utf8" });
    process.stdout.write(guard.stdout);
    process.stderr.write(guard.stderr);
    if (guard.status !== 0) throw new Error(`file-map-check failed under ${qemu} (exit ${guard.status})`);
  }
} catch (error) {
  console.error(`cross-check: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
