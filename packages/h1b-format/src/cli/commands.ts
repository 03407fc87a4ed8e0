// The four h1b commands: inspect, convert, verify, synth.
import { existsSync, statSync } from "node:fs";
import { extname } from "node:path";
import { NORM_ROLES, TERNARY_ROLES, type HaloModel } from "../core/model.js";
import { convertModel, CONVERT_FORMATS, type ConvertFormat, type ConvertReport } from "../convert.js";
import { openModel, sniffFormat } from "../open.js";
import { verifyHalo } from "../formats/halo/verify-halo.js";
import { verifyModelWeights } from "../core/verify-weights.js";
import { synthModel } from "../synth/synth-model.js";
import type { ShapeName } from "../core/config.js";
import { describeModel, type ModelSummary } from "./describe-model.js";
import { formatBytes } from "./progress.js";
import { progressBar, usageError, type CliIo } from "./cli-io.js";

/** Parsed option values shared by the commands. */
export interface CommandOptions {
  readonly output?: string;
  readonly format?: string;
  readonly tokenizer?: string;
  readonly packing?: string;
  readonly force?: boolean;
  readonly tensors?: boolean;
  readonly shape?: string;
  readonly activation?: string;
  readonly seed?: string;
}

function onePath(positionals: readonly string[], command: string): string {
  if (positionals.length !== 1) {
    throw usageError(`h1b ${command} takes one path`, { expected: "1 path", actual: positionals.length === 0 ? "none" : positionals.join(" ") });
  }
  return positionals[0]!;
}

/** The output format from `--format`, else from the output's extension. */
function outputFormat(options: CommandOptions, output: string): ConvertFormat {
  if (options.format !== undefined) {
    if (!(CONVERT_FORMATS as readonly string[]).includes(options.format)) {
      throw usageError("unknown --format", { field: "format", expected: CONVERT_FORMATS.join(", "), actual: options.format });
    }
    return options.format as ConvertFormat;
  }
  const byExtension: Record<string, ConvertFormat> = { ".halo": "halo", ".h1b": "h1b", ".gguf": "gguf-tq2_0" };
  const format = byExtension[extname(output).toLowerCase()];
  if (format === undefined) {
    throw usageError("cannot tell the output format from the file name; pass --format", {
      field: "format",
      expected: CONVERT_FORMATS.join(", "),
      actual: output,
    });
  }
  return format;
}

function requireOutput(options: CommandOptions): string {
  if (options.output === undefined) throw usageError("missing -o <output>", { field: "output" });
  return options.output;
}

function printSummary(io: CliIo, s: ModelSummary, allTensors: boolean): void {
  const c = s.config;
  io.out(`${s.path}: ${s.format}${s.version === null ? "" : ` v${s.version}`}, ${formatBytes(s.fileBytes)}`);
  io.out(
    `  ${c.architecture} hidden ${c.hiddenSize}, ffn ${c.intermediateSize}, layers ${c.numLayers}, heads ${c.numHeads}/${c.numKvHeads} × ${c.headDim}, ` +
      `vocab ${c.vocabSize}, context ${c.maxPositionEmbeddings}, rope θ ${c.ropeTheta}, eps ${c.rmsNormEps}, ${c.activation}, ` +
      `${c.tiedEmbeddings ? "tied" : "untied"} head${c.hadamardRotated ? ", Hadamard-rotated" : ""}`,
  );
  io.out(
    `  bos ${c.bosTokenId ?? "none"}, eos ${c.eosTokenIds.join(", ") || "none"}; tokenizer ${s.tokenizer ?? "none"}; chat template ${s.chatTemplate ? "in the file" : "none in the file (halo infers one: see `halo show`)"}`,
  );
  const t = s.totals;
  io.out(
    `  ${formatCount(t.parameters)} parameters: ${formatCount(t.ternaryWeights)} ternary weights in ${formatBytes(t.ternaryBytes)} ` +
      `(${t.ternaryBitsPerWeight.toFixed(4)} bits/weight), float tensors ${formatBytes(t.floatBytes)}; file ${t.fileBitsPerParameter.toFixed(3)} bits/parameter`,
  );
  if (s.container !== null) {
    const p = s.container.provenance as { sourceFormat?: string; sourcePath?: string; converter?: string; createdAt?: string; changes?: string[] };
    io.out(`  container: alignment ${s.container.alignment} B, ${s.container.checksums} CRC-32 checksums`);
    io.out(`  provenance: from ${p.sourceFormat} ${p.sourcePath} by ${p.converter} at ${p.createdAt}${p.changes?.length ? `; ${p.changes.join("; ")}` : ""}`);
  }
  const shown = allTensors ? s.tensors : s.tensors.filter((x) => x.layer === null || x.layer === 0);
  io.out(
    `  tensors (${s.tensors.length}${shown.length < s.tensors.length ? `; layer 0 shown, layers 1–${s.config.numLayers - 1} alike; --tensors lists all` : ""}):`,
  );
  for (const x of shown) {
    const extra = x.kind === "ternary" ? ` ${x.bitsPerWeight!.toFixed(3)} b/w, scale ${x.scale}` : "";
    io.out(`    ${x.name.padEnd(24)} ${x.type.padEnd(10)} [${x.shape.join(", ")}]`.padEnd(62) + ` ${formatBytes(x.bytes).padStart(10)}${extra}`);
  }
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(3)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${n}`;
}

/** `h1b inspect <path>` */
export async function inspectCommand(positionals: readonly string[], options: CommandOptions, io: CliIo): Promise<number> {
  const path = onePath(positionals, "inspect");
  const model = await openModel(path, { codecs: io.codecs });
  try {
    const summary = describeModel(model, path);
    if (io.json) io.out(JSON.stringify(summary, null, 2));
    else printSummary(io, summary, options.tensors ?? false);
  } finally {
    model.close();
  }
  return 0;
}

function printReport(io: CliIo, report: ConvertReport, seconds: number): void {
  if (io.json) {
    io.out(JSON.stringify({ ...report, seconds }, null, 2));
    return;
  }
  io.out(`wrote ${report.outputPath} (${report.format}, ${formatBytes(report.bytes)}) in ${seconds.toFixed(1)} s${report.lossy ? " — LOSSY (forced)" : ""}`);
  for (const change of report.changes) io.out(`  ${change}`);
}

async function writeModel(model: HaloModel, output: string, format: ConvertFormat, options: CommandOptions, io: CliIo): Promise<void> {
  const started = performance.now();
  const bar = progressBar(io, `writing ${format}`);
  // Writers without a progress callback (.h1b, snapshots) still show that work goes on.
  const pulse = setInterval(() => bar.pulse(), 250);
  pulse.unref();
  try {
    const report = await convertModel(model, output, {
      format,
      force: options.force ?? false,
      onProgress: (done, total) => bar.update(done, total),
      codecs: io.codecs,
      ...(options.packing === undefined ? {} : { packing: options.packing }),
    });
    bar.done();
    printReport(io, report, (performance.now() - started) / 1000);
  } finally {
    clearInterval(pulse);
    bar.done();
  }
}

/** `h1b convert <input> -o <output> --format <f>` */
export async function convertCommand(positionals: readonly string[], options: CommandOptions, io: CliIo): Promise<number> {
  const input = onePath(positionals, "convert");
  const output = requireOutput(options);
  const format = outputFormat(options, output);
  if (options.packing !== undefined && format !== "halo") throw usageError("--packing applies to --format halo only", { field: "packing", actual: format });
  const model = await openModel(input, { codecs: io.codecs, ...(options.tokenizer === undefined ? {} : { tokenizer: options.tokenizer }) });
  try {
    await writeModel(model, output, format, options, io);
  } finally {
    model.close();
  }
  return 0;
}

/** `h1b verify <path>`: full checksums for .halo; structure, ranges and a decode sample for the rest. */
export async function verifyCommand(positionals: readonly string[], _options: CommandOptions, io: CliIo): Promise<number> {
  const path = onePath(positionals, "verify");
  const started = performance.now();
  const format = sniffFormat(path).format;
  const bar = progressBar(io, "verifying");
  let bytesChecked = 0;
  let tensors = 0;
  let method: string;
  try {
    if (format === "halo") {
      const report = verifyHalo(path, { checksums: true, codecs: io.codecs, onProgress: (done, total) => bar.update(done, total) });
      bytesChecked = report.bytesChecked;
      tensors = report.tensors;
      method = "structure + CRC-32 of every tensor and blob + no NaN/Inf in float tensors and scales";
    } else {
      const model = await openModel(path, { codecs: io.codecs });
      try {
        const all = [model.tokenEmbedding, model.outputNorm, ...(model.lmHead === null ? [] : [model.lmHead])];
        const total = [...all, ...model.layers.flatMap((l) => [...NORM_ROLES.map((r) => l[r]), ...TERNARY_ROLES.map((r) => l[r])])].reduce(
          (a, t) => a + t.byteLength,
          0,
        );
        const touch = (bytes: number): void => {
          bytesChecked += bytes;
          tensors++;
          bar.update(bytesChecked, total);
        };
        for (const t of all) touch(t.bytes().byteLength);
        for (const layer of model.layers) {
          for (const role of NORM_ROLES) touch(layer[role].bytes().byteLength);
          for (const role of TERNARY_ROLES) {
            const t = layer[role];
            touch(t.bytes().byteLength);
            const row = new Int8Array(t.cols);
            t.decodeRows(0, 1, row);
            t.decodeRows(t.rows - 1, 1, row);
          }
        }
      } finally {
        model.close();
      }
      method = `structure + every tensor readable + no NaN/Inf in float tensors and scales (${format} has no checksums)`;
    }
    // The scan loadModel runs (verifyModelWeights); checksums were just recomputed above, and nothing is remembered.
    const scanned = await openModel(path, { codecs: io.codecs });
    try {
      await verifyModelWeights(scanned, { checksums: false, cacheDir: null });
    } finally {
      scanned.close();
    }
  } finally {
    bar.done();
  }
  const seconds = (performance.now() - started) / 1000;
  if (io.json) io.out(JSON.stringify({ ok: true, path, format, tensors, bytesChecked, seconds, method }));
  else io.out(`OK ${path}: ${format}, ${tensors} tensors, ${formatBytes(bytesChecked)} checked in ${seconds.toFixed(2)} s (${method})`);
  return 0;
}

/** `h1b synth --shape <s> --seed <n> -o <path>` */
export async function synthCommand(positionals: readonly string[], options: CommandOptions, io: CliIo): Promise<number> {
  if (positionals.length > 0) throw usageError("h1b synth takes no positional arguments", { actual: positionals.join(" ") });
  const shapes = ["tiny", "tiny-gqa", "bitnet-2b-4t"];
  const shape = options.shape ?? "tiny";
  if (!shapes.includes(shape)) throw usageError("unknown --shape", { field: "shape", expected: shapes.join(", "), actual: shape });
  const activation = options.activation ?? "relu2";
  if (activation !== "relu2" && activation !== "silu")
    throw usageError("unknown --activation", { field: "activation", expected: "relu2 or silu", actual: activation });
  if (options.seed === undefined || !/^-?\d+$/.test(options.seed) || !Number.isSafeInteger(Number(options.seed))) {
    throw usageError("--seed needs a whole number", { field: "seed", expected: "e.g. --seed 1", actual: options.seed ?? "nothing" });
  }
  const output = requireOutput(options);
  const format = outputFormat(options, output);
  if (existsSync(output) && statSync(output).isDirectory() && !format.startsWith("hf")) {
    throw usageError("output is a directory", { field: "output", actual: output });
  }
  const model = synthModel({ shape: shape as ShapeName, activation, seed: Number(options.seed) });
  await writeModel(model, output, format, options, io);
  return 0;
}
