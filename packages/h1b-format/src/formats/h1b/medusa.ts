// Seed `.h1b-medusa` v2: four Medusa heads (w_in, w_out fp16 [hidden × hidden]) with an exact 68-byte header.
import { writeFile } from "node:fs/promises";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { fileSource, type ByteSource } from "../../core/byte-source.js";
import type { FloatTensor } from "../../core/model.js";
import { floatTensor } from "../../core/tensors.js";
import { f16Table } from "../../codecs/plain.js";
import { f32ToF16 } from "../../core/half.js";

// Spec: research/seed-system.md §7 (docs/formats/h1b-medusa.md has the byte table).

/** `MEDUSA1\0`. */
export const MEDUSA_MAGIC = Uint8Array.of(0x4d, 0x45, 0x44, 0x55, 0x53, 0x41, 0x31, 0x00);
/** Header size: magic, five u32 fields, ten reserved u32. */
export const MEDUSA_HEADER_BYTES = 68;
/** The only version the seed wrote. */
export const MEDUSA_VERSION = 2;
/** Heads per file (fixed by the seed loader). */
export const MEDUSA_NUM_HEADS = 4;
/** Residual blocks per head (fixed). */
export const MEDUSA_RESIDUAL_LAYERS = 1;
/** dtype id 1 = fp16 (fixed). */
export const MEDUSA_DTYPE_F16 = 1;
/**
 * The hidden size of every seed file (BitNet b1.58-2B-4T).
 *
 * @example
 * ```ts
 * if (medusa.hiddenDim !== MEDUSA_SEED_HIDDEN) console.warn("not a seed-trained Medusa file");
 * ```
 */
export const MEDUSA_SEED_HIDDEN = 2560;

/** One head: `h_out = h + w_out · SiLU(w_in · h)`. */
export interface MedusaHead {
  /** fp16 `[hidden, hidden]`, row-major. */
  readonly wIn: FloatTensor;
  /** fp16 `[hidden, hidden]`, row-major. */
  readonly wOut: FloatTensor;
}

/** A loaded `.h1b-medusa` file. */
export interface MedusaHeads {
  readonly hiddenDim: number;
  readonly heads: readonly MedusaHead[];
  /** The ten reserved u32 words as stored (zeros in seed files; kept for byte-exact rewriting). */
  readonly reserved: Uint32Array;
  readonly path: string;
  /** Releases the file. */
  close(): void;
}

/** Options of {@link readMedusa}. */
export interface ReadMedusaOptions {
  /** Require this hidden size (the backbone's). Default: any size the file is consistent with. */
  readonly hiddenDim?: number;
}

const FIELDS = [
  ["version", 8, MEDUSA_VERSION],
  ["num_heads", 12, MEDUSA_NUM_HEADS],
  ["hidden_dim", 16, null],
  ["residual_layers", 20, MEDUSA_RESIDUAL_LAYERS],
  ["dtype", 24, MEDUSA_DTYPE_F16],
] as const;

/**
 * Opens a `.h1b-medusa` file: magic, version 2, 4 heads, 1 residual layer and dtype 1 must match
 * exactly, and the file size must equal `68 + 4 · 2 · hidden² · 2`. The seed only ever wrote
 * hidden 2560; halo accepts any positive hidden size that the file size agrees with (and
 * `options.hiddenDim` when given). Heads are lazy fp16 tensors.
 *
 * @example
 * ```ts
 * const medusa = readMedusa("medusa.h1b-medusa", { hiddenDim: model.config.hiddenSize });
 * const w = medusa.heads[0]!.wIn.toFloat32();
 * ```
 */
export function readMedusa(input: string | ByteSource, options: ReadMedusaOptions = {}): MedusaHeads {
  const owned = typeof input === "string";
  const source = owned ? fileSource(input) : input;
  try {
    return open(source, options);
  } catch (error) {
    if (owned) source.close();
    throw error;
  }
}

function open(source: ByteSource, options: ReadMedusaOptions): MedusaHeads {
  const path = source.path;
  const size = source.byteLength;
  if (size < MEDUSA_HEADER_BYTES) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "file ends inside the .h1b-medusa header", {
      path,
      offset: size,
      field: "header",
      expected: `${MEDUSA_HEADER_BYTES} bytes`,
      actual: `${size} bytes`,
    });
  }
  const header = source.read(0, MEDUSA_HEADER_BYTES).slice();
  const dv = new DataView(header.buffer);
  for (let i = 0; i < 8; i++) {
    if (header[i] !== MEDUSA_MAGIC[i]) {
      throw new HaloError(H1bErrorCode.H1B_BAD_MAGIC, "not an .h1b-medusa file", {
        path,
        offset: 0,
        field: "magic",
        expected: "MEDUSA1\\0",
        actual: Buffer.from(header.subarray(0, 8)).toString("hex"),
        hint: "Pass a seed Medusa heads file",
      });
    }
  }
  for (const [field, offset, want] of FIELDS) {
    const value = dv.getUint32(offset, true);
    if (want !== null && value !== want) {
      throw new HaloError(
        field === "version" ? H1bErrorCode.H1B_BAD_VERSION : field === "dtype" ? H1bErrorCode.H1B_UNKNOWN_DTYPE : H1bErrorCode.H1B_UNSUPPORTED,
        `.h1b-medusa ${field} must be ${want}`,
        {
          path,
          offset,
          field,
          expected: want,
          actual: value,
        },
      );
    }
  }
  const hiddenDim = dv.getUint32(16, true);
  if (hiddenDim === 0 || (options.hiddenDim !== undefined && hiddenDim !== options.hiddenDim)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, "Medusa hidden_dim does not match", {
      path,
      offset: 16,
      field: "hidden_dim",
      expected: options.hiddenDim ?? "> 0",
      actual: hiddenDim,
      hint: "Use heads trained for this backbone",
    });
  }
  const matrixBytes = hiddenDim * hiddenDim * 2;
  const expected = MEDUSA_HEADER_BYTES + MEDUSA_NUM_HEADS * 2 * matrixBytes;
  if (size !== expected) {
    throw new HaloError(size < expected ? H1bErrorCode.H1B_TRUNCATED : H1bErrorCode.H1B_BAD_DIMENSION, "file size does not match the Medusa header", {
      path,
      offset: size < expected ? size : expected,
      field: "file size",
      expected: `${expected} bytes (68 + 4 heads × 2 × ${hiddenDim}² × 2)`,
      actual: `${size} bytes`,
    });
  }
  const reserved = new Uint32Array(10);
  for (let i = 0; i < 10; i++) reserved[i] = dv.getUint32(28 + 4 * i, true);
  const heads: MedusaHead[] = [];
  for (let h = 0; h < MEDUSA_NUM_HEADS; h++) {
    const base = MEDUSA_HEADER_BYTES + h * 2 * matrixBytes;
    heads.push({
      wIn: floatTensor(`medusa.${h}.w_in`, "f16", [hiddenDim, hiddenDim], { source, offset: base }),
      wOut: floatTensor(`medusa.${h}.w_out`, "f16", [hiddenDim, hiddenDim], { source, offset: base + matrixBytes }),
    });
  }
  return { hiddenDim, heads, reserved, path, close: () => source.close() };
}

/** Input of {@link encodeMedusa}: four heads of `[hidden, hidden]` tensors in any float dtype. */
export interface MedusaData {
  readonly hiddenDim: number;
  readonly heads: readonly MedusaHead[];
  /** Ten reserved words; default zeros. */
  readonly reserved?: Uint32Array;
}

/**
 * Encodes heads as `.h1b-medusa` v2 bytes. fp16 tensors are copied verbatim; other dtypes are
 * rounded to fp16 and must be exactly representable unless `force` (`H1B_LOSSY_CONVERSION`).
 *
 * @example
 * ```ts
 * const bytes = encodeMedusa({ hiddenDim: 64, heads });
 * const again = readMedusa(memorySource(bytes));
 * ```
 */
export function encodeMedusa(data: MedusaData, options: { readonly force?: boolean } = {}): Uint8Array {
  const hd = data.hiddenDim;
  if (!Number.isInteger(hd) || hd <= 0 || hd > 0xffff) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "Medusa hidden size out of range", { field: "hiddenDim", expected: "1 … 65535", actual: hd });
  }
  if (data.heads.length !== MEDUSA_NUM_HEADS) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "the format holds exactly 4 Medusa heads", {
      field: "heads",
      expected: MEDUSA_NUM_HEADS,
      actual: data.heads.length,
    });
  }
  const matrixBytes = hd * hd * 2;
  const out = new Uint8Array(MEDUSA_HEADER_BYTES + MEDUSA_NUM_HEADS * 2 * matrixBytes);
  const dv = new DataView(out.buffer);
  out.set(MEDUSA_MAGIC, 0);
  for (const [, offset, want] of FIELDS) dv.setUint32(offset, want ?? hd, true);
  const reserved = data.reserved ?? new Uint32Array(10);
  for (let i = 0; i < 10; i++) dv.setUint32(28 + 4 * i, reserved[i] ?? 0, true);
  let at = MEDUSA_HEADER_BYTES;
  for (const head of data.heads) {
    for (const tensor of [head.wIn, head.wOut]) {
      if (tensor.shape.length !== 2 || tensor.shape[0] !== hd || tensor.shape[1] !== hd) {
        throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `Medusa tensor ${tensor.name} has the wrong shape`, {
          field: tensor.name,
          expected: [hd, hd],
          actual: tensor.shape,
        });
      }
      out.set(f16Bytes(tensor, options.force ?? false), at);
      at += matrixBytes;
    }
  }
  return out;
}

function f16Bytes(tensor: FloatTensor, force: boolean): Uint8Array {
  if (tensor.dtype === "f16") return tensor.bytes();
  const values = tensor.toFloat32();
  const out = new Uint8Array(values.length * 2);
  const table = f16Table();
  for (let i = 0; i < values.length; i++) {
    const bits = f32ToF16(values[i]!);
    if (!force && table[bits] !== values[i] && !Number.isNaN(values[i]!)) {
      throw new HaloError(H1bErrorCode.H1B_LOSSY_CONVERSION, `Medusa tensor ${tensor.name} has values fp16 cannot hold`, {
        field: `${tensor.name}[${i}]`,
        expected: "fp16-representable values",
        actual: values[i],
        hint: "Pass force to round to fp16",
      });
    }
    out[2 * i] = bits & 0xff;
    out[2 * i + 1] = bits >> 8;
  }
  return out;
}

/**
 * Writes heads to a `.h1b-medusa` file (see {@link encodeMedusa}; one head pair is ~26 MB at 2560).
 *
 * @example
 * ```ts
 * await writeMedusa({ hiddenDim: 2560, heads }, "medusa.h1b-medusa");
 * ```
 */
export async function writeMedusa(data: MedusaData, path: string, options: { readonly force?: boolean } = {}): Promise<void> {
  await writeFile(path, encodeMedusa(data, options));
}
