// Builds the GPU code objects of kernels/halo_kernels.cpp and checks every one of them:
//   AMD     clang++-19 -x hip (no HIP headers or device libraries)  → prebuilds/gpu/halo_kernels.<gfx…>.hsaco
//   NVIDIA  nvcc -cubin for sm_80 / sm_90, nvcc -ptx for compute_80 → .sm_80.cubin, .sm_90.cubin, .compute_80.ptx
// Checks: the code object's target and wave size, every kernel present with its block size, and NO scratch — a
// non-zero private segment (AMD) or local memory / stack frame (NVIDIA: register spills or stack arrays) fails the
// build naming the kernel. Writes prebuilds/gpu/manifest.json (per target: file, bytes, source hash, per kernel
// vgprs/sgprs or registers, lds, scratch) and prints a table.
//
//   node scripts/build-kernels.mjs [--check-only] [--force] [--jobs N] [--targets gfx1151,sm_90]
//
// --jobs: compilers run at once (default: JOBS, else 2 on a machine with more than 2 CPUs, else 1).
//
// A target is compiled only when its object is missing or its inputs changed: each manifest entry keeps `buildKey`,
// the sha256 of every file under kernels/ (*.h, *.cpp), the target, the exact compile command (package paths made
// relative), the compiler's `--version` output and, for the NVIDIA targets, scripts/nvcc-flags.txt; and `objectSha256`,
// the object's own hash. When both still match, the object is "up to date" and only checked again (the checks take
// well under a second) — so the build step, prepack and every pack after it compile each object once. --force
// compiles every requested target again.
//
// Tools are looked up on PATH, then in HALO_LLVM_BIN (default /usr/lib/llvm-19/bin) and HALO_CUDA_BIN (default
// /usr/local/cuda/bin). A missing toolchain (clang++-19 + llvm-readelf-19, or nvcc) is reported with what to install; with
// HALO_REQUIRE_GPU_BUILD=1 (CI, prepack) that fails, otherwise the other targets are still built and it exits 0 (the
// package then lacks those targets, and probe() names the targets it has). Contraction is off everywhere
// (-ffp-contract=off, --fmad=false), as in the emulator build, so the kernels round where their twins do.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const kernelsDir = join(root, "kernels");
const source = join(kernelsDir, "halo_kernels.cpp");
const outDir = join(root, "prebuilds", "gpu");
const manifestPath = join(outDir, "manifest.json");
const required = process.env.HALO_REQUIRE_GPU_BUILD === "1";

const AMD_TARGETS = ["gfx1151", "gfx1150", "gfx1100", "gfx1101", "gfx1201", "gfx1030"];
const CUBIN_TARGETS = ["sm_80", "sm_90"];
const PTX_TARGETS = ["compute_80"];
const ALL_TARGETS = [...AMD_TARGETS, ...CUBIN_TARGETS, ...PTX_TARGETS];
/** Every kernel and the constant of halo_kernel_args.h its HALO_KERNEL line declares as its block size. */
const KERNELS = {
  halo_embed: "HALO_ROW_THREADS",
  halo_norm_quant: "HALO_ROW_THREADS",
  halo_matmul: "HALO_MATMUL_THREADS",
  halo_rope_kv: "HALO_ROW_THREADS",
  halo_attention: "HALO_ATTN_THREADS",
  halo_attention_merge: "HALO_ATTN_THREADS",
  halo_lm_head: "HALO_HEAD_THREADS",
  halo_topk: "HALO_TOPK_THREADS",
  halo_topk_merge: "HALO_TOPK_THREADS",
};
// Where the tools are looked for after PATH (override for an LLVM 19 or CUDA installed elsewhere).
const LLVM_BIN = process.env.HALO_LLVM_BIN ?? "/usr/lib/llvm-19/bin";
const CUDA_BIN = process.env.HALO_CUDA_BIN ?? "/usr/local/cuda/bin";

function usage(message) {
  console.error(`build-kernels: ${message}\nusage: node scripts/build-kernels.mjs [--check-only] [--force] [--jobs N] [--targets ${ALL_TARGETS.join(",")}]`);
  process.exit(2);
}

// ------------------------------------------------------------------------------------------------ options
let checkOnly = false;
let force = false;
let jobs = null;
let targets = ALL_TARGETS;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === "--check-only") checkOnly = true;
  else if (arg === "--force") force = true;
  else if (arg === "--jobs" || arg.startsWith("--jobs=")) {
    jobs = Number(arg === "--jobs" ? argv[++i] : arg.slice("--jobs=".length));
    if (!Number.isInteger(jobs) || jobs < 1) usage("--jobs needs a positive whole number");
  } else if (arg === "--targets" || arg.startsWith("--targets=")) {
    const list = arg === "--targets" ? argv[++i] : arg.slice("--targets=".length);
    if (list === undefined || list === "") usage("--targets needs a comma-separated list");
    targets = list.split(",").map((t) => t.trim());
    const unknown = targets.filter((t) => !ALL_TARGETS.includes(t));
    if (unknown.length > 0) usage(`unknown target(s) ${unknown.join(", ")}`);
  } else if (arg === "--help" || arg === "-h") usage("help");
  else usage(`unknown option ${arg}`);
}
// JOBS is the parallelism knob build-native.mjs reads too (turbo passes it through). One job where there are 2 CPUs or
// fewer unless asked: a developer's machine stays usable; CI sets JOBS to use both of its cores.
const envJobs = Number(process.env.JOBS);
jobs ??= Number.isInteger(envJobs) && envJobs >= 1 ? envJobs : availableParallelism() > 2 ? 2 : 1;

// ------------------------------------------------------------------------------------------------ tools
/**
 * The first of `names` that runs (`--version`), looked up on PATH then in `extraDir`; null when none does. `version` is
 * the first line of its answer, `versionText` all of it (nvcc names its release on a later line): part of the build key.
 */
function findTool(names, extraDir) {
  for (const name of names) {
    for (const candidate of [name, join(extraDir, name)]) {
      const probe = spawnSync(candidate, ["--version"], { encoding: "utf8" });
      if (probe.status === 0) {
        const versionText = probe.stdout || probe.stderr;
        return { path: candidate, version: versionText.split("\n").find((l) => l.trim() !== "") ?? "", versionText };
      }
    }
  }
  return null;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error !== undefined) return { ok: false, output: String(result.error), stdout: "" };
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}`, stdout: result.stdout ?? "" };
}

const wantAmd = targets.some((t) => AMD_TARGETS.includes(t));
const wantNvidia = targets.some((t) => !AMD_TARGETS.includes(t));
const clang = wantAmd && !checkOnly ? findTool(["clang++-19"], LLVM_BIN) : null;
const readelf = wantAmd ? findTool(["llvm-readelf-19", "llvm-readelf"], LLVM_BIN) : null;
const nvcc = wantNvidia && !checkOnly ? findTool(["nvcc"], CUDA_BIN) : null;
const cuobjdump = wantNvidia ? findTool(["cuobjdump"], CUDA_BIN) : null;

const missing = [];
if (wantAmd && ((!checkOnly && clang === null) || readelf === null))
  missing.push({
    kinds: AMD_TARGETS,
    text:
      `${!checkOnly && clang === null ? "clang++-19" : "llvm-readelf-19"} not found (PATH, ${LLVM_BIN}): the AMD targets (${AMD_TARGETS.join(" ")}) are not built. ` +
      "Install LLVM 19: `apt-get install clang-19 lld-19 llvm-19` (Debian 12, Ubuntu 24.04; or apt.llvm.org), or `bash scripts/setup-system.sh` as root.",
  });
if (wantNvidia && !checkOnly && nvcc === null)
  missing.push({
    kinds: [...CUBIN_TARGETS, ...PTX_TARGETS],
    text:
      `nvcc not found (PATH, ${CUDA_BIN}): the NVIDIA targets (${[...CUBIN_TARGETS, ...PTX_TARGETS].join(" ")}) are not built. ` +
      "Install the CUDA toolkit 12 or newer (https://developer.nvidia.com/cuda-downloads; the compiler alone is enough, no GPU needed) and put its bin/ on PATH.",
  });
for (const m of missing) console.error(`build-kernels: ${required ? "ERROR" : "warning"}: ${m.text}`);
const unavailable = new Set(missing.flatMap((m) => m.kinds));
const buildable = targets.filter((t) => !unavailable.has(t));

// ------------------------------------------------------------------------------------------------ sources
/** Every file the code objects are built from, hashed, so a stale object is recognised. */
function sourceHash() {
  const hash = createHash("sha256");
  const files = readdirSync(kernelsDir)
    .filter((f) => f.endsWith(".h") || f.endsWith(".cpp"))
    .sort();
  for (const f of files)
    hash
      .update(f)
      .update("\0")
      .update(readFileSync(join(kernelsDir, f)))
      .update("\0");
  return hash.digest("hex").slice(0, 16);
}

function blockSizes() {
  const header = readFileSync(join(kernelsDir, "halo_kernel_args.h"), "utf8");
  const sizes = {};
  for (const [kernel, constant] of Object.entries(KERNELS)) {
    const match = new RegExp(`#define\\s+${constant}\\s+(\\d+)`).exec(header);
    if (match === null) throw new Error(`build-kernels: ${constant} is not defined in kernels/halo_kernel_args.h`);
    sizes[kernel] = Number(match[1]);
  }
  return sizes;
}

function fileOf(target) {
  const ext = AMD_TARGETS.includes(target) ? "hsaco" : CUBIN_TARGETS.includes(target) ? "cubin" : "ptx";
  return `halo_kernels.${target}.${ext}`;
}

// ------------------------------------------------------------------------------------------------ build
const COMMON_FLAGS = ["-O3", "-std=c++17", "-I", kernelsDir];
/** nvcc's flags come from scripts/nvcc-flags.txt, which bench/gpu-check.sh reads too (no Node.js on a GPU machine). */
const NVCC_FLAGS = readFileSync(join(root, "scripts", "nvcc-flags.txt"), "utf8")
  .split("\n")
  .map((line) => line.replace(/#.*/, ""))
  .join(" ")
  .split(/\s+/)
  .filter((flag) => flag !== "");

/** The compile command of one target: { tool, args, env } (env: undefined = this process's). */
function commandFor(target, path) {
  if (AMD_TARGETS.includes(target)) {
    const env = { ...process.env, PATH: `${LLVM_BIN}:${process.env.PATH ?? ""}` };
    const args = [
      "-x",
      "hip",
      "--cuda-device-only",
      "--no-gpu-bundle-output",
      "-nogpuinc",
      "-nogpulib",
      `--offload-arch=${target}`,
      "-ffp-contract=off",
      ...COMMON_FLAGS,
    ];
    return { tool: clang, args: [...args, "-o", path, source], env };
  }
  const nv = [...NVCC_FLAGS, "-I", kernelsDir];
  if (CUBIN_TARGETS.includes(target)) return { tool: nvcc, args: ["-cubin", `-arch=${target}`, "--resource-usage", ...nv, "-o", path, source] };
  return { tool: nvcc, args: ["-ptx", `-arch=${target}`, ...nv, "-o", path, source] };
}

/** Compiles one target (asynchronously: --jobs of them run at once); resolves to { ok, output } (ptxas's report for cubins). */
function build(command) {
  return new Promise((resolve) => {
    const child = spawn(command.tool.path, command.args, { env: command.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    child.on("error", (error) => resolve({ ok: false, output: String(error) }));
    child.on("close", (code) => resolve({ ok: code === 0, output: `${stdout}${stderr}` }));
  });
}

// ------------------------------------------------------------------------------------------------ build cache
/** Every file under kernels/ that a translation unit can include (all *.h and *.cpp, emu/ too), sorted, relative. */
function kernelInputs(directory = kernelsDir, prefix = "") {
  const files = [];
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const relative = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...kernelInputs(join(directory, entry.name), relative));
    else if (entry.name.endsWith(".h") || entry.name.endsWith(".cpp")) files.push(relative);
  }
  return files.sort();
}

/** sha256 of the kernel sources (computed once: every target compiles the same translation unit). */
const inputsDigest = (() => {
  const hash = createHash("sha256");
  for (const file of kernelInputs())
    hash
      .update(`${file}\0`)
      .update(readFileSync(join(kernelsDir, file)))
      .update("\0");
  return hash.digest("hex");
})();
const nvccFlagsText = readFileSync(join(root, "scripts", "nvcc-flags.txt"), "utf8");

/**
 * The build key of one target: what its object depends on. The package directory is replaced by "<pkg>" in the
 * command, so a clone elsewhere (turbo's cache, another checkout) computes the same key for the same inputs.
 */
function buildKey(target, command) {
  const relative = (arg) => arg.split(root).join("<pkg>");
  return createHash("sha256")
    .update("halo build-kernels key 1\0")
    .update(`${target}\0`)
    .update(`${command.args.map(relative).join("\0")}\0`)
    .update(`${command.tool.versionText}\0`)
    .update(`${AMD_TARGETS.includes(target) ? "" : nvccFlagsText}\0`)
    .update(inputsDigest)
    .digest("hex");
}

function fileSha256(path) {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

// ptxas's resource report of a cubin build is kept beside the build (build/gpu/<object>.log, first line the build key),
// so an up-to-date cubin is checked against it exactly as a fresh build is. Not part of the tarball.
const logDir = join(root, "build", "gpu");
const logPathOf = (target) => join(logDir, `${fileOf(target)}.log`);
function saveLog(target, key, output) {
  mkdirSync(logDir, { recursive: true });
  writeFileSync(logPathOf(target), `${key}\n${output}`);
}
function savedLog(target, key) {
  if (!existsSync(logPathOf(target))) return null;
  const text = readFileSync(logPathOf(target), "utf8");
  return text.startsWith(`${key}\n`) ? text.slice(key.length + 1) : null;
}

// ------------------------------------------------------------------------------------------------ checks
/** amdhsa metadata of an hsaco: { target, kernels: { name: { key: value } } } from `llvm-readelf --notes`. */
function amdMetadata(path) {
  const result = run(readelf.path, ["--notes", path]);
  if (!result.ok) return { error: `llvm-readelf --notes failed: ${result.output.trim()}` };
  const kernels = {};
  let target = null;
  let current = null;
  for (const line of result.stdout.split("\n")) {
    const top = /^amdhsa\.target:\s*(\S+)/.exec(line);
    if (top !== null) target = top[1];
    const item = /^ {2}- \.([\w]+):\s*(.*)$/.exec(line);
    const key = /^ {4}\.([\w]+):\s*(.*)$/.exec(line);
    if (item !== null) {
      current = {};
      if (item[2] !== "") current[item[1]] = item[2].trim();
    } else if (key !== null && current !== null) {
      current[key[1]] = key[2].trim();
      if (key[1] === "name") kernels[key[2].trim()] = current;
    } else if (/^\S/.test(line)) current = null;
  }
  return { target, kernels };
}

function checkAmd(target, path, sizes, problems) {
  const meta = amdMetadata(path);
  if (meta.error !== undefined) return void problems.push(meta.error);
  const expected = `amdgcn-amd-amdhsa--${target}`;
  if (meta.target !== expected) problems.push(`amdhsa.target is ${meta.target ?? "missing"}, expected ${expected}`);
  const kernels = {};
  for (const name of Object.keys(KERNELS)) {
    const k = meta.kernels[name];
    if (k === undefined) {
      problems.push(`${name}: not in the code object`);
      continue;
    }
    const number = (field) => Number(k[field] ?? NaN);
    const entry = {
      vgprs: number("vgpr_count"),
      sgprs: number("sgpr_count"),
      lds: number("group_segment_fixed_size"),
      scratch: number("private_segment_fixed_size"),
      maxThreads: number("max_flat_workgroup_size"),
      kernargBytes: number("kernarg_segment_size"),
    };
    kernels[name] = entry;
    if (number("wavefront_size") !== 32) problems.push(`${name}: .wavefront_size ${k.wavefront_size}, expected 32 (the kernels are written for wave32)`);
    if (!(entry.scratch === 0))
      problems.push(`${name}: ${k.private_segment_fixed_size} bytes of scratch (.private_segment_fixed_size): register spills or a stack array`);
    if (k.uses_dynamic_stack === "true") problems.push(`${name}: uses a dynamic stack`);
    if (number("vgpr_spill_count") > 0) problems.push(`${name}: ${k.vgpr_spill_count} VGPR spills`);
    if (entry.maxThreads !== sizes[name]) problems.push(`${name}: .max_flat_workgroup_size ${entry.maxThreads}, expected ${sizes[name]} (${KERNELS[name]})`);
  }
  return kernels;
}

/** Minimal ELF64 reader: sections by name and the symbol table. */
function readElf(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, false) !== 0x7f454c46 || bytes[4] !== 2) throw new Error("not an ELF64 file");
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({
      nameOffset: view.getUint32(o, true),
      type: view.getUint32(o + 4, true),
      offset: Number(view.getBigUint64(o + 0x18, true)),
      size: Number(view.getBigUint64(o + 0x20, true)),
      link: view.getUint32(o + 0x28, true),
      info: view.getUint32(o + 0x2c, true),
    });
  }
  const cstring = (offset) => {
    let end = offset;
    while (bytes[end] !== 0) end++;
    return Buffer.from(bytes.subarray(offset, end)).toString("latin1");
  };
  const sections = raw.map((s) => ({ ...s, name: cstring(raw[shstrndx].offset + s.nameOffset) }));
  const symtab = sections.find((s) => s.type === 2);
  const symbols = [];
  if (symtab !== undefined) {
    const strtab = sections[symtab.link];
    for (let o = symtab.offset; o < symtab.offset + symtab.size; o += 24) {
      symbols.push({ name: cstring(strtab.offset + view.getUint32(o, true)), info: bytes[o + 4], section: view.getUint16(o + 6, true) });
    }
  }
  return { view, sections, symbols };
}

// EIATTR codes of a cubin's .nv.info (format 0x04 = value with a u16 size; entries are (symbol index, u32 value)).
const EIATTR_FRAME_SIZE = 0x11;
const EIATTR_MIN_STACK_SIZE = 0x12;
const EIATTR_REGCOUNT = 0x2f;

/** Per-kernel registers, frame (local memory) bytes and static shared bytes of a cubin, from its ELF. */
function cubinResources(bytes) {
  const { view, sections, symbols } = readElf(bytes);
  const byIndex = {};
  const info = sections.find((s) => s.name === ".nv.info");
  if (info !== undefined) {
    for (let p = info.offset; p < info.offset + info.size;) {
      const format = bytes[p];
      const attribute = bytes[p + 1];
      if (format === 0x04) {
        const size = view.getUint16(p + 2, true);
        if (size >= 8 && [EIATTR_FRAME_SIZE, EIATTR_MIN_STACK_SIZE, EIATTR_REGCOUNT].includes(attribute)) {
          const symbol = view.getUint32(p + 4, true);
          (byIndex[symbol] ??= {})[attribute] = view.getUint32(p + 8, true);
        }
        p += 4 + size;
      } else p += format === 0x01 ? 2 : 4;
    }
  }
  // sm_90 cubins put the 1 KiB of shared memory the system reserves per block into every kernel's .nv.shared section
  // (and then carry a .nv.shared.reserved.0 marker); ptxas's "bytes smem" and cuobjdump's SHARED leave it out.
  const reserved = sections.some((s) => s.name.startsWith(".nv.shared.reserved.")) ? 1024 : 0;
  const kernels = {};
  symbols.forEach((sym, index) => {
    if ((sym.info & 0xf) !== 2 || sym.info >> 4 === 0) return; // global functions only
    const shared = sections.find((s) => s.name === `.nv.shared.${sym.name}`);
    const attrs = byIndex[index] ?? {};
    kernels[sym.name] = {
      registers: attrs[EIATTR_REGCOUNT] ?? NaN,
      lds: Math.max(0, (shared?.size ?? 0) - reserved),
      scratch: Math.max(attrs[EIATTR_FRAME_SIZE] ?? 0, attrs[EIATTR_MIN_STACK_SIZE] ?? 0),
    };
  });
  return kernels;
}

/** ptxas's `--resource-usage` report from the build: { kernel: { registers, stack, spillStores, spillLoads } }. */
function ptxasReport(log) {
  const report = {};
  const re =
    /Function properties for (\w+)\s*\n\s*(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads[^\n]*\n([^\n]*Used (\d+) registers[^\n]*)/g;
  for (const m of log.matchAll(re)) {
    const smem = /(\d+) bytes smem/.exec(m[5]);
    report[m[1]] = {
      stack: Number(m[2]),
      spillStores: Number(m[3]),
      spillLoads: Number(m[4]),
      registers: Number(m[6]),
      smem: smem === null ? 0 : Number(smem[1]),
    };
  }
  return report;
}

function checkCubin(target, path, buildLog, problems) {
  let kernels;
  try {
    kernels = cubinResources(readFileSync(path));
  } catch (error) {
    problems.push(`cannot read the cubin: ${error.message}`);
    return {};
  }
  const report = buildLog === null ? null : ptxasReport(buildLog);
  const out = {};
  for (const name of Object.keys(KERNELS)) {
    const k = kernels[name];
    if (k === undefined) {
      problems.push(`${name}: not in the cubin`);
      continue;
    }
    out[name] = k;
    if (!Number.isFinite(k.registers)) problems.push(`${name}: no register count (EIATTR_REGCOUNT) in .nv.info`);
    if (k.scratch > 0) problems.push(`${name}: ${k.scratch} bytes of local memory per thread (stack frame): register spills or a stack array`);
    const r = report?.[name];
    if (report !== null && r === undefined) problems.push(`${name}: missing from ptxas's resource report`);
    if (r !== undefined) {
      if (r.spillStores > 0 || r.spillLoads > 0 || r.stack > 0)
        problems.push(`${name}: ptxas reports ${r.stack} bytes stack, ${r.spillStores} bytes spill stores, ${r.spillLoads} bytes spill loads`);
      if (r.registers !== k.registers || r.smem !== k.lds)
        problems.push(
          `${name}: ptxas says ${r.registers} registers and ${r.smem} bytes smem, the cubin reader ${k.registers} and ${k.lds} (reader out of date?)`,
        );
    }
  }
  if (cuobjdump !== null) {
    // Cross-check with NVIDIA's own reader where it is installed: `Function NAME:` then `REG:n STACK:n SHARED:n LOCAL:n`.
    const dump = run(cuobjdump.path, ["-res-usage", path]);
    for (const m of dump.output.matchAll(/Function (\w+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)/g)) {
      const k = out[m[1]];
      if (k === undefined) continue;
      if (Number(m[2]) !== k.registers || Number(m[4]) !== k.lds)
        problems.push(`${m[1]}: cuobjdump says REG:${m[2]} SHARED:${m[4]}, the ELF reader ${k.registers} / ${k.lds}`);
      if (Number(m[3]) > 0 || Number(m[5]) > 0) problems.push(`${m[1]}: cuobjdump reports STACK:${m[3]} LOCAL:${m[5]}`);
    }
  }
  return out;
}

function checkPtx(target, path, problems) {
  const text = readFileSync(path, "utf8");
  const arch = target.replace("compute_", "sm_");
  if (!new RegExp(`^\\.target\\s+${arch}\\b`, "m").test(text)) problems.push(`.target is not ${arch}`);
  const out = {};
  for (const name of Object.keys(KERNELS)) {
    if (!new RegExp(`\\.entry\\s+${name}\\(`).test(text)) problems.push(`${name}: no .entry in the PTX`);
    else out[name] = {};
  }
  // Local arrays in PTX become local memory whatever the JIT does with registers.
  if (/^\s*\.local\b/m.test(text)) problems.push(".local declarations (stack arrays) in the PTX");
  return out;
}

// ------------------------------------------------------------------------------------------------ main
const hash = sourceHash();
const sizes = blockSizes();
let previous = { targets: {} };
if (existsSync(manifestPath)) {
  try {
    previous = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    previous = { targets: {} };
  }
}
const manifest = { source: "kernels/halo_kernels.cpp", sourceHash: hash, targets: {} };
// Objects already present keep their entry (re-checked below) unless this run replaces them.
for (const [target, entry] of Object.entries(previous.targets ?? {})) if (existsSync(join(outDir, fileOf(target)))) manifest.targets[target] = entry;
if (!checkOnly) {
  mkdirSync(outDir, { recursive: true });
  manifest.compilers = { ...(previous.compilers ?? {}) };
  if (clang !== null) manifest.compilers.clang = clang.version;
  if (nvcc !== null)
    manifest.compilers.nvcc = nvcc.version.includes("release")
      ? nvcc.version
      : (run(nvcc.path, ["--version"]).output.match(/release [^\n]*/)?.[0] ?? nvcc.version);
} else if (previous.compilers !== undefined) manifest.compilers = previous.compilers;

const failures = [];
const logs = {};
const upToDate = [];
const stale = [];
for (const target of buildable) {
  const path = join(outDir, fileOf(target));
  if (checkOnly) continue;
  const command = commandFor(target, path);
  const key = buildKey(target, command);
  const old = manifest.targets[target];
  if (!force && old?.buildKey === key && old.sourceHash === hash && existsSync(path) && old.objectSha256 === fileSha256(path)) {
    // Checked again below like a fresh object (with the saved ptxas report, for a cubin), so a failing check still fails.
    const log = CUBIN_TARGETS.includes(target) ? savedLog(target, key) : null;
    if (log !== null) logs[target] = log;
    upToDate.push(target);
    console.log(`build-kernels: ${fileOf(target)} up to date (its inputs and compiler are unchanged; --force rebuilds it)`);
    continue;
  }
  stale.push({ target, path, command, key });
}
async function compile({ target, path, command, key }) {
  const started = Date.now();
  rmSync(path, { force: true });
  const result = await build(command);
  if (!result.ok || !existsSync(path)) {
    delete manifest.targets[target];
    failures.push(`${target}: the build failed:\n${result.output.trim()}`);
    return;
  }
  logs[target] = result.output;
  if (CUBIN_TARGETS.includes(target)) saveLog(target, key, result.output);
  manifest.targets[target] = { file: fileOf(target), sourceHash: hash, buildKey: key, objectSha256: fileSha256(path) };
  console.log(`build-kernels: built ${fileOf(target)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
const lanes = Array.from({ length: Math.min(jobs, stale.length) }, async () => {
  for (let next = stale.shift(); next !== undefined; next = stale.shift()) await compile(next);
});
await Promise.all(lanes);
// Targets in ALL_TARGETS order, whatever order the jobs finished in, so the manifest reads the same after every build.
manifest.targets = Object.fromEntries(ALL_TARGETS.filter((t) => manifest.targets[t] !== undefined).map((t) => [t, manifest.targets[t]]));

// Check every requested target whose object is here (all of them after a build; whatever exists with --check-only).
const checked = [];
for (const target of targets) {
  const path = join(outDir, fileOf(target));
  if (!existsSync(path)) {
    if (checkOnly || !unavailable.has(target)) failures.push(`${target}: ${fileOf(target)} is missing${checkOnly ? " (build it first)" : ""}`);
    continue;
  }
  if (AMD_TARGETS.includes(target) && readelf === null) continue;
  const problems = [];
  const kernels = AMD_TARGETS.includes(target)
    ? checkAmd(target, path, sizes, problems)
    : CUBIN_TARGETS.includes(target)
      ? checkCubin(target, path, logs[target] ?? null, problems)
      : checkPtx(target, path, problems);
  const entry = manifest.targets[target] ?? { file: fileOf(target) };
  if (entry.sourceHash !== hash) problems.push(`built from other sources (hash ${entry.sourceHash ?? "unknown"}, now ${hash}): rebuild it`);
  manifest.targets[target] = {
    file: fileOf(target),
    bytes: statSync(path).size,
    sourceHash: entry.sourceHash ?? null,
    buildKey: entry.buildKey ?? null,
    objectSha256: entry.objectSha256 ?? null,
    kernels,
  };
  for (const p of problems) failures.push(`${target}: ${p}`);
  checked.push(target);
}

// ------------------------------------------------------------------------------------------------ report
if (checked.length > 0) {
  const cell = (target, name) => {
    const k = manifest.targets[target]?.kernels?.[name];
    if (k === undefined) return "-";
    if (AMD_TARGETS.includes(target)) return `${k.vgprs}v ${k.sgprs}s ${k.lds}L${k.scratch > 0 ? ` ${k.scratch}S!` : ""}`;
    if (CUBIN_TARGETS.includes(target)) return `${k.registers}r ${k.lds}L${k.scratch > 0 ? ` ${k.scratch}S!` : ""}`;
    return "entry";
  };
  const names = Object.keys(KERNELS);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const columns = checked.map((t) => Math.max(t.length, ...names.map((n) => cell(t, n).length)) + 2);
  const line = (first, cells) => first.padEnd(width) + cells.map((c, i) => c.padStart(columns[i])).join("");
  console.log("\nper kernel: v = VGPRs, s = SGPRs (AMD); r = registers (NVIDIA); L = LDS / shared bytes; S! = scratch bytes (a failure)");
  console.log(line("kernel", checked));
  console.log(
    line(
      "bytes",
      checked.map((t) => String(manifest.targets[t].bytes)),
    ),
  );
  for (const name of names)
    console.log(
      line(
        name,
        checked.map((t) => cell(t, name)),
      ),
    );
  console.log("");
}

if (!checkOnly || checked.length > 0) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
}
if (failures.length > 0) {
  for (const f of failures) console.error(`build-kernels: FAIL ${f}`);
  process.exit(1);
}
if (missing.length > 0 && required) process.exit(1);
const built = checked.filter((t) => !upToDate.includes(t)).length;
console.log(
  `build-kernels: ${checked.length} code object(s) ${checkOnly ? "checked" : `checked (${built} built, ${checked.length - built} up to date)`}, no scratch` +
    (unavailable.size > 0 ? `; NOT built: ${[...unavailable].filter((t) => targets.includes(t)).join(" ")} (toolchain missing, see above)` : ""),
);
