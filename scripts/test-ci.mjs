// `corepack pnpm test:ci` (README command 2, what .ci/run runs): installs the system packages the tests need, then
// builds and typechecks every package, lints and checks the formatting of the repository, tests every package, checks
// the error docs and package manifests, installs the packed tarballs with no compiler, and runs the native sanitizer
// and aarch64 cross checks and the GPU backend's C++ emulator and kernel tests. Stops at the first failure.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// Here nothing may quietly skip: the native build, the browser test and the cross check must run; @halo/kernels-hip
// builds its code object for every GPU target (clang-19, nvcc) and its device test opens the real HIP runtime (no GPU
// here: it must answer "no device", not be missing).
const env = {
  ...process.env,
  HALO_REQUIRE_NATIVE: "1",
  HALO_REQUIRE_BROWSER: "1",
  HALO_REQUIRE_TORCH: "1",
  HALO_REQUIRE_GPU_BUILD: "1",
  HALO_DEVICE_TEST_REQUIRE_HIP_RUNTIME: "1",
  TURBO_TELEMETRY_DISABLED: "1",
  // Steps run one at a time: the GPU code objects and the native C++ tests compile two files at once (CI has 2 cores).
  JOBS: process.env.JOBS ?? "2",
};

const STEPS = [
  ["system packages", "bash", ["scripts/setup-system.sh"]],
  ["build", "turbo", ["run", "build", "--concurrency=1"]],
  ["typecheck", "turbo", ["run", "typecheck", "--concurrency=1"]],
  // docs/code-style.md: eslint (typescript-eslint + the package layering rules), then prettier and clang-format 19.
  ["lint", "eslint", ["."]],
  ["format", "node", ["scripts/format.mjs", "--check"]],
  ["test", "turbo", ["run", "test", "--concurrency=1"]],
  // The GPU kernels run here on the CPU emulator: its semantics (barriers, wave32 exchange and ballot, divergence
  // detection) and every kernel against its scalar twin, bit-exact; the devices' no-GPU answers (native/device_*.cpp).
  ["GPU kernels: C++ emulator and kernel-twin tests", "pnpm", ["--filter", "@halo/kernels-hip", "native-test"]],
  ["error codes documented", "node", ["scripts/check-errors-documented.mjs"]],
  ["package manifests", "node", ["scripts/check-packages.mjs"]],
  ["npm install of the tarballs without a compiler", "node", ["scripts/pack-install-test.mjs", "--prebuild"]],
  ["native sanitizers", "pnpm", ["--filter", "@halo/kernels-cpu", "sanitize"]],
  ["aarch64 cross check", "pnpm", ["--filter", "@halo/kernels-cpu", "cross-check"]],
];

for (const [label, command, args] of STEPS) {
  const started = Date.now();
  console.log(`\ntest:ci: ${label} (${[command, ...args].join(" ")})`);
  const result = spawnSync(command, args, { cwd: root, env, stdio: "inherit" });
  if (result.error !== undefined) {
    console.error(`test:ci: ${label}: cannot run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error(`test:ci: ${label} FAILED (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
  console.log(`test:ci: ${label}: ok in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
