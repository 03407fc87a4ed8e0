// convertModel: writes a HaloModel in any output format, refusing lossy steps unless forced, and reports what changed.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { HaloError, isHaloError } from "@halo/errors";
import { H1bErrorCode } from "./errors.js";
import type { HaloModel, TernaryTensor } from "./core/model.js";
import { TERNARY_ROLES } from "./core/model.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./core/half.js";
import { toHtokTokenizer } from "./core/tokenizer-payload.js";
import { writeHalo, type WriteProgress } from "./formats/halo/write-halo.js";
import { HALO_PROVENANCE_KEY } from "./formats/halo/read-halo.js";
import type { HaloPackingOption } from "./formats/halo/choose-packing.js";
import { checkCodecs, type TernaryCodecs } from "./codecs/registry.js";
import { writeH1b } from "./formats/h1b/write-h1b.js";
import { writeGguf } from "./formats/gguf/write-gguf.js";
import { writeHfSnapshot } from "./formats/hf/write-hf-snapshot.js";

/**
 * Output formats of {@link convertModel}. `h1b` keeps the source's seed version (or writes v2).
 *
 * @example
 * ```ts
 * if (!CONVERT_FORMATS.includes(name as ConvertFormat)) throw new Error(`format: ${CONVERT_FORMATS.join("|")}`);
 * ```
 */
export const CONVERT_FORMATS = [
  "halo",
  "h1b",
  "h1b-v1",
  "h1b-v2",
  "h1b-v3",
  "h1b-v4",
  "gguf-tq1_0",
  "gguf-tq2_0",
  "gguf-i2_s",
  "hf-packed",
  "hf-bf16",
] as const;

/** One of {@link CONVERT_FORMATS}. */
export type ConvertFormat = (typeof CONVERT_FORMATS)[number];

/** Options of {@link convertModel}. */
export interface ConvertOptions {
  readonly format: ConvertFormat;
  /** Accept lossy conversions (the report lists what changed). Default false: they throw `H1B_LOSSY_CONVERSION`. */
  readonly force?: boolean;
  /** Progress of writers that stream (halo, GGUF): bytes written and total. */
  readonly onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Ternary packing for `halo` output (see `writeHalo`). Default `"auto"`: the first of `codecs`, else `halo-v2`. */
  readonly packing?: HaloPackingOption;
  /**
   * Codecs of a backend's own layouts for `halo` output (see `writeHalo`), for this call only —
   * e.g. `backendFactory.packings`; the first is what `"auto"` stores. Default none.
   */
  readonly codecs?: TernaryCodecs;
}

/** What {@link convertModel} wrote and changed. */
export interface ConvertReport {
  readonly format: ConvertFormat;
  /** The file written (the directory for Hugging Face snapshots). */
  readonly outputPath: string;
  /** Bytes written (all files of a snapshot, including a `.htok` sidecar). */
  readonly bytes: number;
  /** True when weights, scales or the tokenizer changed (only possible with `force`). */
  readonly lossy: boolean;
  /** Human-readable changes, lossless ones (re-packing, dropped chat template) included. */
  readonly changes: readonly string[];
  /** The writer's own report. */
  readonly writer: unknown;
}

function ternaries(model: HaloModel): TernaryTensor[] {
  return model.layers.flatMap((layer) => TERNARY_ROLES.map((role) => layer[role]));
}

function scaleValues(t: TernaryTensor): ArrayLike<number> {
  return t.scale.kind === "tensor" ? [t.scale.value] : t.scale.values;
}

/** Counts scale values that change when rounded to f16 (GGUF TQ blocks) or bf16 (Hugging Face), and the largest relative error. */
function scaleRounding(model: HaloModel, round: (v: number) => number): { changed: number; maxRelativeError: number } {
  let changed = 0;
  let maxRelativeError = 0;
  for (const t of ternaries(model)) {
    const values = scaleValues(t);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const r = round(v);
      if (r !== v) {
        changed++;
        maxRelativeError = Math.max(maxRelativeError, Math.abs(r - v) / Math.abs(v));
      }
    }
  }
  return { changed, maxRelativeError };
}

/** Matrices whose scale is not one value (I2_S holds one f32 per matrix). */
function nonUniformScales(model: HaloModel): number {
  let count = 0;
  for (const t of ternaries(model)) {
    const values = scaleValues(t);
    for (let i = 1; i < values.length; i++) {
      if (values[i] !== values[0]) {
        count++;
        break;
      }
    }
  }
  return count;
}

function refuse(summary: string, field: string, expected: string, actual: unknown): never {
  throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, summary, {
    field,
    expected,
    actual,
    hint: "Pass force (`--force`) to accept the change; the report lists it",
  });
}

function sizeOf(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

/**
 * Writes `input` as `format` at `outputPath`, dispatching to the format's writer. Lossless by
 * default: where a target cannot hold the model exactly (Sherry's 3:4 sparsity, scales that f16 or
 * bf16 cannot represent, the `-bf16` master-weight snapshot, merges an `.htok` cannot express) it
 * throws `H1B_LOSSY_CONVERSION` unless `force`, and the report then lists what changed. Where a
 * lossless choice exists it is taken and noted (f32 embedding in GGUF for a bf16/f32 source, f32
 * `weight_scale` in Hugging Face snapshots for non-bf16 scales).
 *
 * @example
 * ```ts
 * const model = await openModel("bitnet.h1b");
 * const report = await convertModel(model, "bitnet.halo", { format: "halo", codecs: backendFactory.packings });
 * console.log(report.changes); // ["ternary packing halo-v2 → halo-i2x256 (210 tensors)"]
 * ```
 */
export async function convertModel(input: HaloModel, outputPath: string, options: ConvertOptions): Promise<ConvertReport> {
  const force = options.force ?? false;
  const format = options.format;
  const codecs = checkCodecs(options.codecs ?? []);
  const changes: string[] = [];
  let lossy = false;
  let writer: unknown;
  if (!(CONVERT_FORMATS as readonly string[]).includes(format)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "unknown output format", {
      field: "format",
      expected: CONVERT_FORMATS.join(", "),
      actual: format,
    });
  }

  if (format !== "halo" && input.metadata[HALO_PROVENANCE_KEY] !== undefined) {
    // The container's provenance is its own record; other formats get the source's metadata back
    // unchanged, so file → .halo → file is byte-identical (GGUF copies unknown metadata keys).
    const { [HALO_PROVENANCE_KEY]: _provenance, ...metadata } = input.metadata;
    input = { ...input, metadata };
  }

  if (format === "halo") {
    const report = await writeHalo(input, outputPath, {
      force,
      codecs,
      ...(options.packing === undefined ? {} : { packing: options.packing }),
      ...(options.onProgress === undefined ? {} : { onProgress: (p: WriteProgress) => options.onProgress!(p.bytesDone, p.bytesTotal) }),
    });
    changes.push(...report.changes);
    lossy = report.lossy;
    writer = report;
  } else if (format.startsWith("h1b")) {
    let model = input;
    if (input.tokenizer !== null && input.tokenizer.kind !== "htok") {
      try {
        const { payload, droppedMerges } = toHtokTokenizer(input.tokenizer);
        if (droppedMerges > 0) {
          if (!force) refuse(".htok cannot express every merge of this tokenizer", "tokenizer", "every merge representable", `${droppedMerges} merges dropped`);
          changes.push(`${droppedMerges} tokenizer merges dropped (not expressible in .htok)`);
          lossy = true;
        }
        model = { ...input, tokenizer: payload };
        changes.push(`tokenizer ${input.tokenizer.kind} → .htok sidecar`);
      } catch (error) {
        if (!isHaloError(error) || error.code === H1bErrorCode.H1B_LOSSY_CONVERSION) throw error;
        if (!force) refuse("the tokenizer cannot be written as an .htok sidecar", "tokenizer", "a tokenizer .htok can hold", error.message);
        changes.push(`tokenizer not written (${error.message})`);
        model = { ...input, tokenizer: null };
        lossy = true;
      }
    }
    if (input.chatTemplate !== null) changes.push("chat template not stored (.h1b has no place for it)");
    const version = format === "h1b" ? undefined : (Number(format.slice(-1)) as 1 | 2 | 3 | 4);
    const summary = await writeH1b(model, outputPath, { force, ...(version === undefined ? {} : { version }) });
    changes.push(`seed .h1b v${summary.version}, flags 0x${summary.flags.toString(16)}`);
    if (summary.changedWeights > 0) changes.push(`${summary.changedWeights} ternary weights changed by the packing (forced)`);
    if (summary.inexactScales > 0) changes.push(`${summary.inexactScales} scale groups stored inexactly (forced)`);
    lossy ||= summary.changedWeights > 0 || summary.inexactScales > 0;
    writer = summary;
  } else if (format.startsWith("gguf")) {
    const ternaryType = format === "gguf-tq1_0" ? "tq1_0" : format === "gguf-i2_s" ? "i2_s" : "tq2_0";
    if (ternaryType === "i2_s") {
      const uneven = nonUniformScales(input);
      if (uneven > 0) {
        if (!force) refuse("I2_S stores one f32 scale per matrix; some matrices here have several", "scale", "one scale per matrix", `${uneven} matrices`);
        changes.push(`${uneven} matrices' scales replaced by their mean (forced)`);
        lossy = true;
      }
    }
    const rounding = ternaryType === "i2_s" ? { changed: 0, maxRelativeError: 0 } : scaleRounding(input, (v) => f16ToF32(f32ToF16(v)));
    if (rounding.changed > 0) {
      if (!force) {
        refuse(
          "GGUF TQ blocks store scales as f16, which changes some of this model's scales",
          "scale",
          "f16-representable scales",
          `${rounding.changed} values change, up to ${rounding.maxRelativeError.toExponential(2)} relative`,
        );
      }
      changes.push(`${rounding.changed} scale values rounded to f16 (max relative error ${rounding.maxRelativeError.toExponential(2)})`);
      lossy = true;
    }
    const dtype = input.tokenEmbedding.dtype;
    const embeddingType = dtype === "f16" || dtype === "f32" || dtype === "q8_0" ? dtype : "f32";
    if (embeddingType !== dtype) changes.push(`embedding ${dtype} → ${embeddingType} (lossless)`);
    const report = await writeGguf(input, outputPath, {
      ternaryType,
      embeddingType,
      force,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    });
    if (report.averagedScaleBlocks > 0) {
      changes.push(`${report.averagedScaleBlocks} 256-weight blocks had their finer scales averaged (forced)`);
      lossy = true;
    }
    changes.push(...report.notes);
    writer = report;
  } else {
    const variant = format === "hf-bf16" ? "bf16" : "packed";
    if (variant === "bf16") {
      if (!force) {
        refuse("a -bf16 snapshot stores master weights; reading it back re-derives each scale within 2^-8", "format", "a lossless target", "hf-bf16");
      }
      changes.push("ternary weights stored as bf16 master weights; scales re-derived on read (within 2^-8 relative)");
      lossy = true;
    }
    const bf16 = scaleRounding(input, (v) => bf16ToF32(f32ToBf16(v)));
    const scaleDtype = bf16.changed > 0 ? "f32" : "bf16";
    if (variant === "packed" && scaleDtype === "f32") changes.push("weight_scale stored as f32 (bf16 would round these scales)");
    const result = await writeHfSnapshot(input, outputPath, { variant, scaleDtype });
    changes.push(`files: ${result.files.join(", ")}`);
    writer = result;
  }
  return { format, outputPath, bytes: sizeOf(outputPath) + sidecarSize(writer), lossy, changes, writer };
}

function sidecarSize(writer: unknown): number {
  const path = (writer as { htokPath?: unknown } | undefined)?.htokPath;
  return typeof path === "string" ? statSync(path).size : 0;
}
