// The `h1b inspect` summary of any opened model: format, config, tensors, sizes and bits per weight.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { NORM_ROLES, TERNARY_ROLES, type FloatTensor, type HaloModel, type TernaryTensor } from "../core/model.js";
import { readHaloHeader } from "../formats/halo/read-halo.js";
import { sidecarPath } from "../formats/h1b/read-h1b.js";

/** One tensor row of the summary. */
export interface TensorSummary {
  readonly name: string;
  /** Decoder layer, or null for the embedding, final norm and head. */
  readonly layer: number | null;
  readonly kind: "float" | "ternary";
  /** dtype for float tensors, packing for ternary ones. */
  readonly type: string;
  readonly shape: readonly number[];
  readonly bytes: number;
  /** Packed bits per weight (ternary only, without scales). */
  readonly bitsPerWeight: number | null;
  /** Scale kind (ternary only). */
  readonly scale: string | null;
}

/** What `h1b inspect` prints (and `--json` emits). */
export interface ModelSummary {
  readonly path: string;
  readonly format: string;
  readonly version: number | null;
  /** Bytes of `path` (every file under it, for a snapshot directory). */
  readonly fileBytes: number;
  /** The files the model is read from and their sizes: the model file and its `.htok` sidecar, or a snapshot directory's entries. */
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
  readonly config: HaloModel["config"];
  readonly tokenizer: string | null;
  /** Whether the file carries a chat template (when it does not, `@halo/engine` infers one). */
  readonly chatTemplate: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  readonly totals: {
    readonly tensors: number;
    readonly parameters: number;
    readonly ternaryWeights: number;
    readonly ternaryBytes: number;
    /** Ternary bytes × 8 ÷ ternary weights (packing only). */
    readonly ternaryBitsPerWeight: number;
    readonly floatBytes: number;
    /** File bytes × 8 ÷ parameters (everything: embedding, tokenizer, headers). */
    readonly fileBitsPerParameter: number;
  };
  /** Container-only facts (alignment, provenance), or null. */
  readonly container: { readonly alignment: number; readonly provenance: unknown; readonly checksums: number } | null;
  readonly tensors: readonly TensorSummary[];
}

function sizeOf(path: string): number {
  const stat = statSync(path);
  return stat.isDirectory() ? readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0) : stat.size;
}

function filesOf(model: HaloModel, path: string): { path: string; bytes: number }[] {
  if (statSync(path).isDirectory())
    return readdirSync(path)
      .sort()
      .map((name) => ({ path: join(path, name), bytes: sizeOf(join(path, name)) }));
  const files = [{ path, bytes: statSync(path).size }];
  const htok = model.source.format === "h1b" && model.tokenizer?.kind === "htok" ? sidecarPath(path, undefined) : null;
  if (htok !== null) files.push({ path: htok, bytes: statSync(htok).size });
  return files;
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * What `h1b inspect` shows of an opened model — format, config, tokenizer kind, whether a chat
 * template is stored, tensors with packing and bits per weight, totals, files and sizes — built
 * without reading any tensor bytes (scales are already in memory).
 *
 * @example
 * ```ts
 * const model = await openModel("tiny.h1b");
 * const summary = describeModel(model, "tiny.h1b");
 * console.log(summary.totals.ternaryBitsPerWeight, summary.files); // 2, [{ path: "tiny.h1b", … }, { path: "tiny.htok", … }]
 * model.close();
 * ```
 */
export function describeModel(model: HaloModel, path: string): ModelSummary {
  const tensors: TensorSummary[] = [];
  const float = (t: FloatTensor, layer: number | null): void => {
    tensors.push({ name: t.name, layer, kind: "float", type: t.dtype, shape: t.shape, bytes: t.byteLength, bitsPerWeight: null, scale: null });
  };
  const ternary = (t: TernaryTensor, layer: number): void => {
    const scale = t.scale.kind === "block" ? `block/${t.scale.blockSize}` : t.scale.kind;
    tensors.push({
      name: t.name,
      layer,
      kind: "ternary",
      type: t.packing,
      shape: [t.rows, t.cols],
      bytes: t.byteLength,
      bitsPerWeight: (t.byteLength * 8) / (t.rows * t.cols),
      scale,
    });
  };
  float(model.tokenEmbedding, null);
  float(model.outputNorm, null);
  if (model.lmHead !== null) float(model.lmHead, null);
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) float(layer[role], l);
    for (const role of TERNARY_ROLES) ternary(layer[role], l);
  });
  const ternaryWeights = tensors.filter((t) => t.kind === "ternary").reduce((a, t) => a + count(t.shape), 0);
  const ternaryBytes = tensors.filter((t) => t.kind === "ternary").reduce((a, t) => a + t.bytes, 0);
  const floatBytes = tensors.filter((t) => t.kind === "float").reduce((a, t) => a + t.bytes, 0);
  const parameters = tensors.reduce((a, t) => a + count(t.shape), 0);
  const fileBytes = sizeOf(path);
  let container: ModelSummary["container"] = null;
  if (model.source.format === "halo") {
    const { header } = readHaloHeader(model.source.path);
    container = { alignment: header.alignment, provenance: header.provenance, checksums: header.tensors.length + header.blobs.length };
  }
  // Readers refuse unknown format packings; a backend's layout opened without its codec keeps the
  // byte length its .halo header states, so bits/weight stays what the file stores.
  return {
    path,
    format: model.source.format,
    version: model.source.version,
    fileBytes,
    files: filesOf(model, path),
    config: model.config,
    tokenizer: model.tokenizer === null ? null : model.tokenizer.kind,
    chatTemplate: model.chatTemplate !== null,
    metadata: model.metadata,
    totals: {
      tensors: tensors.length,
      parameters,
      ternaryWeights,
      ternaryBytes,
      ternaryBitsPerWeight: ternaryWeights > 0 ? (ternaryBytes * 8) / ternaryWeights : 0,
      floatBytes,
      fileBitsPerParameter: (fileBytes * 8) / parameters,
    },
    container,
    tensors,
  };
}
