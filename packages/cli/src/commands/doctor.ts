// `halo doctor`: what this machine offers halo — CPU and SIMD, the kernel path chosen, backends and why not, memory, cache, versions.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, freemem, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import packageJson from "../../package.json" with { type: "json" };
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { ExitCode } from "../main.js";
import { COMPLETE_MARKER, modelCacheDir } from "../hub/cache-dir.js";
import { hubOptionsFromEnv } from "../hub/hub-client.js";
import { formatBytes } from "../hub/progress-bar.js";
import { DEFAULT_MODEL_REPO } from "../hub/resolve-model.js";

const FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", description: "print the report as JSON" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo doctor`. */
export const doctorHelp = helpText(
  "halo doctor [--json]",
  "Reports the CPU and its SIMD features, the kernel path the CPU backend chooses, which\nbackends are available and why not (HIP and XDNA included), memory, the model cache and versions.",
  FLAGS,
  ["halo doctor", "halo doctor --json | jq .backends"],
);

/** SIMD features halo's kernels care about, as /proc/cpuinfo names them. */
const SIMD_FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_int8", "asimd", "asimddp", "sve"];

/** One backend's status. */
export interface BackendStatus {
  readonly name: string;
  readonly available: boolean;
  readonly detail: string;
}

/** The doctor's report. */
export interface DoctorReport {
  readonly cpu: { readonly model: string; readonly cores: number; readonly simd: readonly string[]; readonly kernelPath: string | null };
  readonly backends: readonly BackendStatus[];
  readonly memory: { readonly totalBytes: number; readonly freeBytes: number };
  readonly cache: { readonly dir: string; readonly exists: boolean; readonly models: readonly string[]; readonly defaultModel: string; readonly defaultCached: boolean; readonly hubEndpoint: string; readonly hfToken: boolean };
  readonly versions: Readonly<Record<string, string>>;
}

/**
 * Reads the CPU model name and the SIMD flags halo cares about from `/proc/cpuinfo` text.
 *
 * @example
 * ```ts
 * parseCpuinfo("model name\t: X\nflags\t\t: sse4_2 avx2 fma\n"); // { model: "X", simd: ["sse4_2", "avx2", "fma"] }
 * ```
 */
export function parseCpuinfo(text: string): { model: string | undefined; simd: string[] } {
  const model = /^(?:model name|Model|Hardware|cpu model)\s*:\s*(.+)$/m.exec(text)?.[1]?.trim();
  const flags = new Set((/^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)?.[1] ?? "").trim().split(/\s+/));
  return { model, simd: SIMD_FLAGS.filter((f) => flags.has(f)) };
}

/**
 * Imports a native backend package the way `@halo/engine` would (resolved from the engine's own
 * location), so the report says what `loadModel({ backend: "auto" })` will really get.
 */
async function importAsEngine(name: string): Promise<{ module?: Record<string, unknown>; error?: string }> {
  let resolved: string;
  try {
    const engineEntry = createRequire(import.meta.url).resolve("@halo/engine");
    resolved = createRequire(engineEntry).resolve(name);
  } catch {
    let besideCli = false;
    try {
      createRequire(import.meta.url).resolve(name);
      besideCli = true;
    } catch {
      // not installed at all
    }
    return {
      error: besideCli
        ? `installed, but @halo/engine cannot resolve it from its own location (engine falls back to reference). Fix: install both side by side (npm install @halo/engine ${name})`
        : `not installed. Fix: npm install ${name}`,
    };
  }
  try {
    return { module: (await import(pathToFileURL(resolved).href)) as Record<string, unknown> };
  } catch (cause) {
    return { error: `failed to load: ${cause instanceof Error ? cause.message.split("\n")[0]! : String(cause)}. Fix: npm rebuild ${name}` };
  }
}

async function cpuBackend(): Promise<{ status: BackendStatus; kernelPath: string | null; version?: string }> {
  const name = "@halo/kernels-cpu";
  const { module, error } = await importAsEngine(name);
  if (module === undefined) return { status: { name: "cpu", available: false, detail: `${name}: ${error}` }, kernelPath: null };
  const create = module["createBackend"] as ((o: object) => { probe(): Promise<{ available: boolean; reason: string }> }) | undefined;
  if (typeof create !== "function") return { status: { name: "cpu", available: false, detail: `${name} has no createBackend()` }, kernelPath: null };
  try {
    const probe = await create({}).probe();
    let kernelPath: string | null = null;
    const isas = module["availableIsas"] as (() => string[]) | undefined;
    if (probe.available && typeof isas === "function") kernelPath = isas()[0] ?? null;
    return { status: { name: "cpu", available: probe.available, detail: probe.reason }, kernelPath };
  } catch (cause) {
    return { status: { name: "cpu", available: false, detail: `probe failed: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}` }, kernelPath: null };
  }
}

function deviceBackend(name: string, devices: readonly string[], what: string): BackendStatus {
  const present = devices.filter((d) => existsSync(d));
  return {
    name,
    available: false,
    detail: `not built: this release has no ${name} backend package; ${what} ${present.length > 0 ? `present (${present.join(", ")})` : `not present (${devices.join(", ")} missing)`}`,
  };
}

function cachedModels(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number): void => {
    if (depth > 4) return;
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    if (entries.includes(COMPLETE_MARKER)) {
      found.push(d.slice(dir.length + 1));
      return;
    }
    for (const e of entries) walk(join(d, e), depth + 1);
  };
  walk(dir, 0);
  return found.sort();
}

/**
 * Builds the doctor's report.
 *
 * @example
 * ```ts
 * const report = await doctorReport(process.env);
 * console.log(report.cpu.kernelPath);
 * ```
 */
export async function doctorReport(env: Readonly<Record<string, string | undefined>>): Promise<DoctorReport> {
  let cpuinfo = "";
  try {
    cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    // not Linux: the model comes from os.cpus()
  }
  const parsed = parseCpuinfo(cpuinfo);
  const cpu = await cpuBackend();
  const dir = modelCacheDir(env);
  const models = cachedModels(dir);
  const hub = hubOptionsFromEnv(env);
  return {
    cpu: { model: parsed.model ?? cpus()[0]?.model ?? "unknown", cores: cpus().length, simd: parsed.simd, kernelPath: cpu.kernelPath },
    backends: [
      cpu.status,
      { name: "reference", available: true, detail: "TypeScript reference kernels (always available, slow)" },
      deviceBackend("hip", ["/dev/kfd", "/dev/dri/renderD128"], "AMD GPU device"),
      deviceBackend("xdna", ["/dev/accel/accel0"], "AMD XDNA NPU device"),
    ],
    memory: { totalBytes: totalmem(), freeBytes: freemem() },
    cache: {
      dir,
      exists: existsSync(dir),
      models,
      defaultModel: DEFAULT_MODEL_REPO,
      defaultCached: models.some((m) => m.startsWith(`${DEFAULT_MODEL_REPO}/`)),
      hubEndpoint: hub.endpoint,
      hfToken: hub.token !== undefined,
    },
    versions: { halo: packageJson.version, node: process.versions.node, napi: process.versions.napi ?? "none", platform: `${process.platform}-${process.arch}` },
  };
}

/** Runs `halo doctor`. */
export async function doctorCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("doctor", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(doctorHelp);
    return ExitCode.OK;
  }
  const r = await doctorReport(ctx.env);
  if (values["json"] === true) {
    ctx.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return ExitCode.OK;
  }
  const lines = [
    `CPU        ${r.cpu.model} (${r.cpu.cores} logical cores)`,
    `SIMD       ${r.cpu.simd.length > 0 ? r.cpu.simd.join(" ") : "none found"}`,
    `kernels    ${r.cpu.kernelPath !== null ? `${r.cpu.kernelPath} (chosen by @halo/kernels-cpu)` : "native CPU kernels unavailable: the reference backend runs"}`,
    "backends",
    ...r.backends.map((b) => `  ${b.name.padEnd(10)} ${b.available ? "yes" : "no "}  ${b.detail}`),
    `memory     ${formatBytes(r.memory.totalBytes)} total, ${formatBytes(r.memory.freeBytes)} free`,
    `cache      ${r.cache.dir}${r.cache.exists ? "" : " (not created yet)"}`,
    `models     ${r.cache.models.length > 0 ? r.cache.models.join(", ") : "none"}`,
    `default    ${r.cache.defaultModel} ${r.cache.defaultCached ? "(cached)" : "(not cached: pulled on first `halo run`/`chat`/`serve`)"}`,
    `hub        ${r.cache.hubEndpoint}${r.cache.hfToken ? " with HF_TOKEN" : ""}`,
    `versions   halo ${r.versions["halo"]}, node ${r.versions["node"]}, N-API ${r.versions["napi"]}, ${r.versions["platform"]}`,
  ];
  ctx.stdout.write(`${lines.join("\n")}\n`);
  return ExitCode.OK;
}
