// `corepack pnpm test:ci` (README command 2, what .ci/run runs): installs the system packages the tests need, then
// builds and typechecks every package, lints and checks the formatting of the repository, tests every package, checks
// the error docs and package manifests, installs the packed tarballs with no compiler, and runs the native sanitizer
// and aarch64 cross checks and the GPU backend's C++ emulator and kernel tests. Stops at the first failure.
//
// Nothing may quietly skip here. Every skipped test (from each package's vitest report, scripts/vitest-test-report.ts)
// and every `SKIP <what>: <reason>` line a native check prints is listed at the end, by package, with its reason; a
// skip that is not in ALLOWED_SKIPS below (hardware CI cannot have, whose emulated twin runs instead; a conformance
// check the backend does not claim; an opt-in) fails the run: a missing tool is a failure, not a skip.
//
// `node scripts/test-ci.mjs --summary DIR` runs nothing: it prints and checks the summary of the vitest reports in DIR
// (set HALO_TEST_REPORT_DIR=DIR for a `pnpm test` or a `vitest run` to write them).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const summaryOnly = process.argv[2] === "--summary";
if (summaryOnly && process.argv[3] === undefined) {
  console.error("usage: node scripts/test-ci.mjs [--summary DIR]");
  process.exit(2);
}
const reportDir = summaryOnly ? process.argv[3] : mkdtempSync(join(tmpdir(), "halo-test-ci-"));

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
  // Each package's vitest run writes its counts and skips here (turbo.json passes it through to the test tasks).
  HALO_TEST_REPORT_DIR: reportDir,
  // Steps run one at a time: the GPU code objects and the native C++ tests compile two files at once (CI has 2 cores).
  JOBS: process.env.JOBS ?? "2",
};

/**
 * The skips test:ci accepts, each with why. `where` is the package (vitest skips) or the step label (native `SKIP`
 * lines); `match` is tested against "<test name>: <reason>". Anything else that skips fails the run.
 */
const ALLOWED_SKIPS = [
  {
    where: "@halo/kernels-cpu",
    match: /\bAMX\b|this CPU lacks/,
    why: "hardware CI cannot have (an ISA this CPU lacks); `pnpm sanitize` runs the emulated twins (amx-check tile model, kernel-check)",
  },
  {
    where: "native sanitizers",
    match: /^(amx-check real tiles: .*AMX|kernel-check \S+: this CPU lacks)/,
    why: "hardware CI cannot have; the AMX tiles ran on the tile model, the other tables ran",
  },
  {
    where: "aarch64 cross check",
    match: /^kernel-check neondotprod: this CPU lacks/,
    why: "deliberate: the qemu cortex-a53 run checks the plain NEON path a CPU without dot products selects (the -cpu max run checks neondotprod)",
  },
  { where: "@halo/kernels-hip", match: /GPU .* is present here/, why: "checks the no-GPU answer, and a GPU is present" },
  {
    where: "@halo/cli",
    match: /a GPU is present here/,
    why: "checks what the CLI says where hip cannot run, and a GPU hip runs on is present",
  },
  { where: "@halo/kernels-hip", match: /the addon is built here/, why: "checks the missing-addon answer, and the addon is built (required here)" },
  {
    where: "GPU kernels: C++ emulator and kernel-twin tests",
    match: /^(the CUDA driver's branches past loading: no libcuda here|the device contract on a GPU)/,
    why: "needs a GPU or its driver, which CI cannot have; the emulator runs every kernel instead",
  },
  {
    where: "*",
    match: /(?:^| > )conformance: .*\b(does not claim|does not offer)\b/,
    why: "a conformance check for what the backend under test does not offer",
  },
  {
    where: "*",
    match: /(?:^| > )conformance: .*compared with itself this cannot fail/,
    why: "the backend under test is the reference: the self-comparison cannot fail, and the float64 oracle checks it instead",
  },
  { where: "@halo/h1b-format", match: /HALO_H1B_2B=1/, why: "opt-in (HALO_H1B_2B=1): the 1.8 GB 2B-4T write, minutes long" },
];

/** Why a skip is allowed, or null when it must fail the run. */
function allowed(where, name, reason) {
  const text = `${name}: ${reason}`;
  return ALLOWED_SKIPS.find((rule) => (rule.where === "*" || rule.where === where) && rule.match.test(text))?.why ?? null;
}

/** `SKIP <what>: <reason>` lines printed by the native checks, by step label. */
const nativeSkips = [];
// At the start of a line, or after a runner's "<package> <script>: " prefix.
const SKIP_LINE = /(?:^|: )SKIP (.+?): (.+)$/;

const STEPS = [
  ["system packages", "bash", ["scripts/setup-system.sh"]],
  ["build", "turbo", ["run", "build", "--concurrency=1"]],
  ["typecheck", "turbo", ["run", "typecheck", "--concurrency=1"]],
  // docs/code-style.md: eslint (typescript-eslint + the package layering rules), then prettier and clang-format 19.
  ["lint", "eslint", ["."]],
  ["format", "node", ["scripts/format.mjs", "--check"]],
  // --only --force: the test tasks alone (built by the step above), none replayed from turbo's cache, so every package
  // writes its report (a replayed run writes none, and the summary would miss its skips).
  ["test", "turbo", ["run", "test", "--concurrency=1", "--only", "--force"]],
  // The GPU kernels run here on the CPU emulator: its semantics (barriers, wave32 exchange and ballot, divergence
  // detection) and every kernel against its scalar twin, bit-exact; the devices' no-GPU answers (native/device_*.cpp).
  ["GPU kernels: C++ emulator and kernel-twin tests", "pnpm", ["--filter", "@halo/kernels-hip", "native-test"]],
  ["error codes documented", "node", ["scripts/check-errors-documented.mjs"]],
  ["package manifests", "node", ["scripts/check-packages.mjs"]],
  ["npm install of the tarballs without a compiler", "node", ["scripts/pack-install-test.mjs", "--prebuild"]],
  ["native sanitizers", "pnpm", ["--filter", "@halo/kernels-cpu", "sanitize"]],
  ["aarch64 cross check", "pnpm", ["--filter", "@halo/kernels-cpu", "cross-check"]],
];

/** Runs one step, its output passed on as it comes and scanned for `SKIP` lines; resolves to its exit status. */
function runStep(label, command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["inherit", "pipe", "pipe"] });
    const scan = (stream, sink) => {
      let pending = "";
      stream.setEncoding("utf8");
      stream.on("data", (text) => {
        sink.write(text);
        const lines = (pending + text).split("\n");
        pending = lines.pop();
        for (const line of lines) collectSkip(label, line);
      });
      stream.on("end", () => collectSkip(label, pending));
    };
    scan(child.stdout, process.stdout);
    scan(child.stderr, process.stderr);
    child.on("error", (error) => resolve({ error }));
    child.on("close", (status, signal) => resolve({ status, signal }));
  });
}

function collectSkip(label, line) {
  if (label === "test") return; // the vitest reports list the test step's skips, with their test names
  // eslint-disable-next-line no-control-regex -- colour codes, if a tool prints them
  const match = SKIP_LINE.exec(line.replace(/\x1b\[[0-9;]*m/g, "").trimEnd());
  if (match !== null) nativeSkips.push({ where: label, file: "", name: match[1], reason: match[2] });
}

/** The workspace packages (pnpm-workspace.yaml) whose `test` script turbo runs: each must leave a report. */
function testedPackages() {
  const workspace = readFileSync(join(root, "pnpm-workspace.yaml"), "utf8");
  const globs = [...(/^packages:\n((?:[ \t]+-.*\n)+)/m.exec(workspace)?.[1] ?? "").matchAll(/-\s*["']?([^"'\n]+?)["']?\s*$/gm)].map((m) => m[1]);
  if (globs.length === 0) throw new Error("test:ci: pnpm-workspace.yaml lists no packages");
  const dirs = globs.flatMap((glob) => (glob.endsWith("/*") ? readdirSync(join(root, glob.slice(0, -2))).map((dir) => join(glob.slice(0, -2), dir)) : [glob]));
  const names = [];
  for (const dir of dirs) {
    const manifest = join(root, dir, "package.json");
    if (!existsSync(manifest)) continue;
    const { name, scripts } = JSON.parse(readFileSync(manifest, "utf8"));
    if (scripts?.test !== undefined) names.push(name);
  }
  return names.sort();
}

/**
 * Every count and every skip, by package, from the reports and the native checks' output so far, and the problems that
 * fail the run (unexpected skips, missing reports); `print` prints them.
 */
function summarize({ requireReports, print }) {
  const reports = existsSync(reportDir)
    ? readdirSync(reportDir)
        .filter((file) => file.endsWith(".json"))
        .map((file) => JSON.parse(readFileSync(join(reportDir, file), "utf8")))
    : [];
  const problems = [];
  const seen = new Set(reports.map((report) => report.package));
  if (requireReports) {
    for (const name of testedPackages()) if (!seen.has(name)) problems.push(`${name} wrote no test report to ${reportDir} (did its tests run through vitest?)`);
  }
  let passed = 0;
  let failed = 0;
  const skips = [];
  const failures = [];
  for (const report of reports) {
    passed += report.passed;
    failed += report.failed;
    failures.push(...report.failures.map((failure) => `${report.package}: ${failure}`));
    skips.push(...report.skipped.map((skip) => ({ where: report.package, ...skip })));
  }
  skips.push(...nativeSkips);
  const groups = new Map();
  for (const skip of skips) {
    const why = allowed(skip.where, skip.name, skip.reason);
    if (why === null) problems.push(`unexpected skip in ${skip.where}: ${skip.file === "" ? "" : `${skip.file} > `}${skip.name}: ${skip.reason}`);
    const group = groups.get(skip.where) ?? [];
    group.push({ ...skip, why });
    groups.set(skip.where, group);
  }
  if (!print) return problems;
  console.log(`\ntest:ci: summary (${reports.length} vitest reports in ${reportDir}${nativeSkips.length > 0 ? ", native check output" : ""})`);
  for (const failure of failures) console.log(`  FAILED ${failure}`);
  if (skips.length > 0) console.log(`  skipped, by package or step (${skips.length}):`);
  for (const [where, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`    ${where} (${group.length})`);
    for (const skip of group) {
      console.log(`      ${skip.file === "" ? "" : `${skip.file} > `}${skip.name}`);
      console.log(`        reason: ${skip.reason}`);
      console.log(`        ${skip.why === null ? "NOT ALLOWED in CI: a missing tool or file is a failure here" : `allowed: ${skip.why}`}`);
    }
  }
  for (const problem of problems) console.error(`test:ci: ${problem}`);
  console.log(`test:ci: ${passed} passed, ${failed} failed, ${skips.length} skipped`);
  return problems;
}

if (summaryOnly) process.exit(summarize({ requireReports: false, print: true }).length === 0 ? 0 : 1);

let testsRan = false;
for (const [label, command, args] of STEPS) {
  const started = Date.now();
  console.log(`\ntest:ci: ${label} (${[command, ...args].join(" ")})`);
  const result = await runStep(label, command, args);
  if (label === "test") testsRan = true;
  if (result.error !== undefined) {
    summarize({ requireReports: false, print: true });
    console.error(`test:ci: ${label}: cannot run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    summarize({ requireReports: false, print: true });
    console.error(`test:ci: ${label} FAILED (exit ${result.status ?? result.signal}); test reports kept in ${reportDir}`);
    process.exit(result.status ?? 1);
  }
  // The skips so far must all be allowed: a step whose checks skipped for a missing tool fails here, like a failure.
  if (summarize({ requireReports: testsRan, print: false }).length > 0) {
    summarize({ requireReports: testsRan, print: true });
    console.error(`test:ci: ${label} FAILED: skips or missing reports CI does not accept (listed above); test reports kept in ${reportDir}`);
    process.exit(1);
  }
  console.log(`test:ci: ${label}: ok in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
summarize({ requireReports: true, print: true });
rmSync(reportDir, { recursive: true, force: true });
