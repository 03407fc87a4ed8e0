// Proves that the kernel checks can fail (issue 24): applies each of a list of one-line mutations of the tile and row
// arithmetic in the ISA kernel sources, one at a time, rebuilds, runs `sanitize` (kernel-check, amx-check, …) and,
// where sanitize passes (or always, with --both), src/kernels.test.ts against an addon built from the mutated source,
// restores the source (always: try/finally from a backup copy) and prints a table: mutation → the check that caught
// it, or NOT CAUGHT. Exit status 1 when any mutation is not caught or the unmutated sources fail a check.
//
// Not run in CI (minutes: each mutation rebuilds a kernel source under ASan). It works on a scratch copy of this
// package under the system temp dir (linked to the repository's node_modules and sibling packages), so the working
// tree and its built addon are never mutated, even while the script runs or if it is killed.
//
// Usage: node scripts/mutate-kernels.mjs [--both] [--only id,id,…] [--keep]
//   --both  run kernels.test.ts on every mutation, not only on those sanitize passed
//   --only  the mutations to apply (ids from the table)
//   --keep  leave the scratch copy (its path is printed)
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(here, "..", "..");
const args = process.argv.slice(2);
const both = args.includes("--both");
const keep = args.includes("--keep");
const only = args.includes("--only") ? new Set(args[args.indexOf("--only") + 1].split(",")) : undefined;
/** A check that runs longer than this is stopped and counted as failing (a mutation may loop). */
const CHECK_TIMEOUT_MS = 15 * 60 * 1000;

const VNNI = "native/kernels_avx512vnni.cpp";
const AVX2 = "native/kernels_avx2.cpp";
const AMX = "native/kernels_amx.cpp";
const I4 = "native/head_i4_avx512.inc";
const TILES = "native/head_tiles.h";

/**
 * The mutations: `from` must occur exactly once in `file` (so a stale list fails loudly rather than testing nothing);
 * `to` replaces it. Each is a bug a one-line slip in the tile or row arithmetic would make.
 */
const MUTATIONS = [
  {
    id: "vnni-6tok-offset",
    file: VNNI,
    what: "6-token tile call drops `+ (rt - r0)` (second 64-row tile written over the first)",
    from: "gemm_i2_tokens<6>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, ahead);",
    to: "gemm_i2_tokens<6>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride, y_stride, ahead);",
  },
  {
    id: "vnni-6tok-token5",
    file: VNNI,
    what: "token 5 of each 6-token tile reads token 4's activations",
    from: "const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(t) * x_stride + b * 256 + 64 * j);",
    to: "const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(T == 6 && t == 5 ? 4 : t) * x_stride + b * 256 + 64 * j);",
  },
  {
    id: "vnni-4tok-token3",
    file: VNNI,
    what: "token 3 of each 4-token tile reads token 2's activations",
    from: "const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(t) * x_stride + b * 256 + 64 * j);",
    to: "const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(T == 4 && t == 3 ? 2 : t) * x_stride + b * 256 + 64 * j);",
  },
  {
    id: "vnni-4tok-offset",
    file: VNNI,
    what: "4-token tile call drops `+ (rt - r0)`",
    from: "gemm_i2_tokens<4>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, ahead);",
    to: "gemm_i2_tokens<4>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride, y_stride, ahead);",
  },
  {
    id: "vnni-row-tail",
    file: VNNI,
    what: "single-row tail loop after the 4-row micro tiles stops one row short",
    from: "for (; r < r1; r++) gemm_i2_micro<1, T>",
    to: "for (; r + 1 < r1; r++) gemm_i2_micro<1, T>",
  },
  {
    id: "vnni-row-tile-end",
    file: VNNI,
    what: "64-row tile ends one row early (`rt + kRowTile - 1`)",
    from: "const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;",
    to: "const int re = rt + kRowTile < r1 ? rt + kRowTile - 1 : r1;",
  },
  {
    id: "vnni-gemv-quarter",
    file: VNNI,
    what: "1-token GEMV: the last code quarter multiplies the third quarter's activations",
    from: "acc[t][3 % A] = _mm512_dpbusd_epi32(acc[t][3 % A], c3, _mm512_loadu_si512(xb + 192));",
    to: "acc[t][3 % A] = _mm512_dpbusd_epi32(acc[t][3 % A], c3, _mm512_loadu_si512(xb + 128));",
  },
  {
    id: "vnni-head-8pass",
    file: VNNI,
    what: "float head: the 8-row pass runs the 7-row kernel (8th logit row never computed)",
    from: "case 8: head_blocked<8>(hidden, r0, r1, xt, yt, y_stride, load); break;",
    to: "case 8: head_blocked<7>(hidden, r0, r1, xt, yt, y_stride, load); break;",
  },
  {
    id: "vnni-head-token7",
    file: VNNI,
    what: "float head: row 7 of an 8-row pass reads row 6's activations",
    from: "for (int t = 0; t < TN; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + static_cast<size_t>(t) * hidden + h), acc[t]);",
    to: "for (int t = 0; t < TN; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + static_cast<size_t>(TN == 8 && t == 7 ? 6 : t) * hidden + h), acc[t]);",
  },
  {
    id: "vnni-head-tile-offset",
    file: VNNI,
    what: "float head: a 16-row block writes at `r - rb` instead of `r - r0`",
    from: "y[static_cast<size_t>(t) * y_stride + (r - r0)] = _mm512_reduce_add_ps(_mm512_load_ps(acc_mem[r - rb][t]));",
    to: "y[static_cast<size_t>(t) * y_stride + (r - rb)] = _mm512_reduce_add_ps(_mm512_load_ps(acc_mem[r - rb][t]));",
  },
  {
    id: "vnni-head-i8-token7",
    file: VNNI,
    what: "int8 head: row 7 of an 8-row pass reads row 6's codes",
    from: "_mm512_loadu_si512(q + static_cast<size_t>(t) * stride + h), bias), wv);",
    to: "_mm512_loadu_si512(q + static_cast<size_t>(TN == 8 && t == 7 ? 6 : t) * stride + h), bias), wv);",
  },
  {
    id: "vnni-head-i4-token7",
    file: I4,
    what: "int4 head (AVX-512): row 7 of an 8-row pass reads row 6's codes",
    from: "_mm512_loadu_si512(q + static_cast<size_t>(t) * stride + HALO_HEAD_I4_GROUP * g)",
    to: "_mm512_loadu_si512(q + static_cast<size_t>(TN == 8 && t == 7 ? 6 : t) * stride + HALO_HEAD_I4_GROUP * g)",
  },
  {
    id: "avx2-4tok-offset",
    file: AVX2,
    what: "4-token tile call drops `+ (rt - r0)`",
    from: "x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, end, next);",
    to: "x_stride, y + static_cast<size_t>(t) * y_stride, y_stride, end, next);",
  },
  {
    id: "avx2-4tok-token3",
    file: AVX2,
    what: "token 3 of each 4-token tile reads token 2's activations",
    from: "const int8_t* xb = x + static_cast<size_t>(t) * x_stride + b * 256;",
    to: "const int8_t* xb = x + static_cast<size_t>(T == 4 && t == 3 ? 2 : t) * x_stride + b * 256;",
  },
  {
    id: "avx2-row-tile-end",
    file: AVX2,
    what: "GEMM 64-row tile ends one row early",
    from: "const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;\n    int t = 0;",
    to: "const int re = rt + kRowTile < r1 ? rt + kRowTile - 1 : r1;\n    int t = 0;",
  },
  {
    id: "avx2-head-pair-tail",
    file: AVX2,
    what: "float head: the single-row loop of token pairs stops one row short",
    from: "for (; r < re; r++) head_block<1, 2>(",
    to: "for (; r + 1 < re; r++) head_block<1, 2>(",
  },
  {
    id: "avx2-head-pair-token",
    file: AVX2,
    what: "float head: the second row of a pair reads the first's activations",
    from: "const __m256 xv = _mm256_loadu_ps(x + static_cast<size_t>(t0 + t) * hidden + h);",
    to: "const __m256 xv = _mm256_loadu_ps(x + static_cast<size_t>(t0 + (T == 2 ? 0 : t)) * hidden + h);",
  },
  {
    id: "avx2-head-i8-token3",
    file: AVX2,
    what: "int8 head: row 3 of a 4-row pass reads row 2's codes",
    from: "q + static_cast<size_t>(t0 + t) * stride + h));",
    to: "q + static_cast<size_t>(t0 + (t == 3 ? 2 : t)) * stride + h));",
  },
  {
    id: "tiles-row-tile-end",
    file: TILES,
    what: "int8/int4 head row tiles (AVX2, NEON) end one row early",
    from: "const int re = r1 - rt < kRowTile ? r1 : rt + kRowTile;",
    to: "const int re = r1 - rt < kRowTile ? r1 : rt + kRowTile - 1;",
  },
  {
    id: "amx-block-offset",
    file: AMX,
    what: "AMX prompt path drops `+ (rb - r0)` (second 64-row block written over the first)",
    from: "int32_t* yt = y + static_cast<size_t>(tb + j * kTile) * y_stride + (rb - r0) + i * kTile;",
    to: "int32_t* yt = y + static_cast<size_t>(tb + j * kTile) * y_stride + i * kTile;",
  },
  {
    id: "amx-valid-tokens",
    file: AMX,
    what: "AMX activation layout drops the last real token of a partial 16-token tile",
    from: "const int valid = count - j * kTile < kTile ? count - j * kTile : kTile;",
    to: "const int valid = count - j * kTile < kTile ? count - j * kTile - 1 : kTile;",
  },
];

function occurrences(text, part) {
  let count = 0;
  for (let at = text.indexOf(part); at !== -1; at = text.indexOf(part, at + 1)) count++;
  return count;
}

/** A scratch copy of the package whose relative links (node_modules, ../../scripts, sibling packages) still resolve. */
function makeScratch() {
  const top = mkdtempSync(join(tmpdir(), "halo-mutate-"));
  const pkg = join(top, "packages", "kernels-cpu");
  mkdirSync(pkg, { recursive: true });
  for (const name of ["node_modules", "scripts", "tsconfig.base.json"]) symlinkSync(join(repo, name), join(top, name));
  for (const name of ["kernels", "errors", "h1b-format"]) symlinkSync(join(repo, "packages", name), join(top, "packages", name));
  for (const name of ["src", "native", "test", "scripts", "node_modules", "binding.gyp", "package.json", "tsconfig.json", "vitest.config.ts"])
    cpSync(join(here, name), join(pkg, name), { recursive: true, verbatimSymlinks: true });
  return { top, pkg };
}

function run(command, commandArgs, cwd, env = {}) {
  const started = Date.now();
  const result = spawnSync(command, commandArgs, {
    cwd,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: CHECK_TIMEOUT_MS,
    maxBuffer: 256 << 20,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  return { ok: result.status === 0, status: result.status ?? result.signal, output, seconds: (Date.now() - started) / 1000 };
}

const scratch = makeScratch();
const objects = join(scratch.top, "sanitize-objects");
console.log(`mutate-kernels: scratch copy ${scratch.pkg}`);

/** sanitize on the scratch copy: undefined when clean, else the first lines that say what failed. */
function sanitize() {
  const result = run(process.execPath, ["scripts/sanitize.mjs", "--work", objects], scratch.pkg);
  if (result.ok) return { caught: undefined, seconds: result.seconds };
  // The kernel checks' own FAIL lines name the table, size and first wrong value; then sanitizer reports; then summaries.
  const all = result.output.split("\n");
  const lines = [/^FAIL /, /ERROR: AddressSanitizer|runtime error:/, /FAILED/].flatMap((pattern) => all.filter((line) => pattern.test(line)));
  return { caught: lines.slice(0, 2).join(" | ") || `exit ${result.status}`, seconds: result.seconds };
}

let addonBuilt = false;
/** The scratch addon (node-gyp: a full build the first time, then only the changed source). */
function buildAddon() {
  const gyp = join(scratch.pkg, "node_modules", "node-gyp", "bin", "node-gyp.js");
  const nodedir = existsSync("/usr/include/node/node_api.h") && existsSync("/usr/include/node/common.gypi") ? ["--nodedir=/usr"] : [];
  const result = run(process.execPath, [gyp, addonBuilt ? "build" : "rebuild", "-j", process.env.JOBS ?? "2", ...nodedir], scratch.pkg);
  if (!result.ok) throw new Error(`mutate-kernels: the scratch addon did not build:\n${result.output.slice(-3000)}`);
  addonBuilt = true;
}

/** kernels.test.ts on the scratch addon: undefined when it passes, else the failing tests' names. */
function vitest() {
  buildAddon();
  const report = join(scratch.top, "vitest.json");
  rmSync(report, { force: true });
  const result = run(join(repo, "node_modules", ".bin", "vitest"), ["run", "src/kernels.test.ts", "--reporter=json", `--outputFile=${report}`], scratch.pkg);
  if (result.ok) return { caught: undefined, seconds: result.seconds };
  let failed = [];
  if (existsSync(report)) {
    const json = JSON.parse(readFileSync(report, "utf8"));
    failed = json.testResults.flatMap((file) => file.assertionResults.filter((test) => test.status === "failed").map((test) => test.title));
  }
  return { caught: failed.length > 0 ? `${failed.length} failed: ${failed.slice(0, 2).join(" | ")}` : `exit ${result.status}`, seconds: result.seconds };
}

const rows = [];
let broken = false;
try {
  // The unmutated sources must pass, or a "caught" below means nothing.
  const clean = sanitize();
  if (clean.caught !== undefined) throw new Error(`mutate-kernels: sanitize fails on the unmutated sources: ${clean.caught}`);
  console.log(`mutate-kernels: unmutated sanitize clean (${clean.seconds.toFixed(0)} s)`);
  let vitestClean = false;
  for (const mutation of MUTATIONS) {
    if (only !== undefined && !only.has(mutation.id)) continue;
    const path = join(scratch.pkg, mutation.file);
    const original = readFileSync(path, "utf8");
    const found = occurrences(original, mutation.from);
    if (found !== 1) throw new Error(`mutate-kernels: ${mutation.id}: the text to mutate occurs ${found} times in ${mutation.file} (expected once)`);
    const backup = `${path}.orig`;
    writeFileSync(backup, original);
    const row = { ...mutation, sanitize: "not run", vitest: "not run", seconds: 0 };
    try {
      writeFileSync(path, original.replace(mutation.from, mutation.to));
      const checked = sanitize();
      row.seconds += checked.seconds;
      row.sanitize = checked.caught === undefined ? "passed" : `caught: ${checked.caught}`;
      if (checked.caught === undefined || both) {
        if (!vitestClean) {
          writeFileSync(path, original);
          const cleanRun = vitest();
          if (cleanRun.caught !== undefined) throw new Error(`mutate-kernels: kernels.test.ts fails on the unmutated sources: ${cleanRun.caught}`);
          vitestClean = true;
          writeFileSync(path, original.replace(mutation.from, mutation.to));
        }
        const tested = vitest();
        row.seconds += tested.seconds;
        row.vitest = tested.caught === undefined ? "passed" : `caught: ${tested.caught}`;
      }
    } finally {
      writeFileSync(path, readFileSync(backup, "utf8"));
      rmSync(backup);
    }
    const caught = row.sanitize.startsWith("caught") || row.vitest.startsWith("caught");
    if (!caught) broken = true;
    console.log(`mutate-kernels: ${mutation.id}: ${caught ? "caught" : "NOT CAUGHT"} (${row.seconds.toFixed(0)} s)`);
    rows.push(row);
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  broken = true;
} finally {
  if (keep) console.log(`mutate-kernels: kept ${scratch.top}`);
  else rmSync(scratch.top, { recursive: true, force: true });
}

const cell = (text) => text.replaceAll("|", "\\|").slice(0, 160);
console.log("\n| mutation | file | what | sanitize | kernels.test.ts | verdict |\n|---|---|---|---|---|---|");
for (const row of rows) {
  const caught = row.sanitize.startsWith("caught") || row.vitest.startsWith("caught");
  console.log(
    `| ${row.id} | ${row.file.replace("native/", "")} | ${cell(row.what)} | ${cell(row.sanitize)} | ${cell(row.vitest)} | ${caught ? "caught" : "NOT CAUGHT"} |`,
  );
}
process.exitCode = broken ? 1 : 0;
