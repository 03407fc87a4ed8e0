// `halo doctor`: what this machine offers halo — CPU and SIMD, every installed backend's probe (and packages refused), memory, cache, versions.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import { join } from "node:path";
import { discoverBackends, type BackendFactory, type BackendMemory, type BackendProbe, type RefusedBackend } from "@halo/engine";
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
  "Reports the CPU and its SIMD features, every installed backend (found as `loadModel` finds them:\n@halo/kernels-* packages installed beside @halo/engine, and HALO_BACKEND_PATH; never the current\ndirectory) with what its probe says — available or why not, its details (kernel path, devices, …),\nits memory — packages refused and why, the model cache and versions.",
  FLAGS,
  ["halo doctor", "halo doctor --json | jq .backends"],
);

/** SIMD features halo's kernels care about, as /proc/cpuinfo names them. */
const SIMD_FLAGS = [
  "sse4_2",
  "avx",
  "avx2",
  "fma",
  "f16c",
  "avx_vnni",
  "avx512f",
  "avx512bw",
  "avx512vl",
  "avx512_vnni",
  "avx512_bf16",
  "amx_int8",
  "asimd",
  "asimddp",
  "sve",
];

/** One installed backend as its probe describes it. */
export interface BackendStatus {
  readonly name: string;
  /** The package it came from (`@halo/kernels-cpu`), or null for the built-in reference backend. */
  readonly package: string | null;
  /** Its place in `auto`: higher runs first. */
  readonly priority: number;
  readonly description: string;
  readonly available: boolean;
  /** The probe's reason: what was found, or why it cannot run here. */
  readonly detail: string;
  /** The probe's details (kernel path, devices, …). */
  readonly details: Readonly<Record<string, string>>;
  /** The memory it allocates from, when its probe says. */
  readonly memory: BackendMemory | null;
}

/** The doctor's report. */
export interface DoctorReport {
  /** The CPU as the OS reports it (what each backend makes of it is in its probe's `details`). */
  readonly cpu: { readonly model: string; readonly cores: number; readonly simd: readonly string[] };
  /** Installed backends, highest priority first. */
  readonly backends: readonly BackendStatus[];
  /** Backend packages found but not usable, with why. */
  readonly refusedBackends: readonly RefusedBackend[];
  /** The node_modules directories searched for backends. */
  readonly backendSearchPaths: readonly string[];
  readonly memory: { readonly totalBytes: number; readonly freeBytes: number };
  readonly cache: {
    readonly dir: string;
    readonly exists: boolean;
    readonly models: readonly string[];
    readonly defaultModel: string;
    readonly defaultCached: boolean;
    readonly hubEndpoint: string;
    readonly hfToken: boolean;
  };
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

/** A factory's probe as a status line; a probe that throws (the contract says it never does) is reported, not fatal. */
async function backendStatus(factory: BackendFactory, packageName: string | null): Promise<BackendStatus> {
  let probe: BackendProbe;
  try {
    probe = await factory.probe();
  } catch (cause) {
    probe = { available: false, reason: `probe() threw: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}` };
  }
  return {
    name: factory.name,
    package: packageName,
    priority: factory.priority,
    description: factory.description,
    available: probe.available,
    detail: probe.reason,
    details: probe.details ?? {},
    memory: probe.memory ?? null,
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
 * for (const b of report.backends) console.log(b.name, b.available, b.details);
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
  const discovery = await discoverBackends({ env });
  const backends = await Promise.all(discovery.factories.map((f) => backendStatus(f, discovery.packages[f.name] ?? null)));
  const dir = modelCacheDir(env);
  const models = cachedModels(dir);
  const hub = hubOptionsFromEnv(env);
  return {
    cpu: {
      model: parsed.model ?? cpus()[0]?.model ?? "unknown",
      cores: cpus().length,
      simd: parsed.simd,
    },
    backends,
    refusedBackends: discovery.refused,
    backendSearchPaths: discovery.searchPaths,
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
    versions: {
      halo: packageJson.version,
      node: process.versions.node,
      napi: process.versions.napi ?? "none",
      platform: `${process.platform}-${process.arch}`,
    },
  };
}

/** The text lines of one backend: name, yes/no, the probe's reason; then its source, details and memory. */
function backendLines(b: BackendStatus): string[] {
  const facts = [
    b.package ?? "built in",
    `priority ${b.priority}`,
    ...Object.entries(b.details).map(([key, value]) => `${key} ${value}`),
    ...(b.memory !== null ? [`${b.memory.kind} memory ${formatBytes(b.memory.totalBytes)} total, ${formatBytes(b.memory.freeBytes)} free`] : []),
  ];
  return [`  ${b.name.padEnd(10)} ${b.available ? "yes" : "no "}  ${b.detail}`, `  ${"".padEnd(10)}      ${facts.join("; ")}`];
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
    "backends   (highest priority first: `--backend auto` runs the first that is available and fits the model)",
    ...r.backends.flatMap((b) => backendLines(b)),
    ...(r.refusedBackends.length > 0 ? ["refused", ...r.refusedBackends.map((x) => `  ${x.packageName}  ${x.reason}`)] : []),
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
