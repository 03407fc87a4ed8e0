// Seed `.h1b` layout: header fields, flag bits, weight-format resolution and the byte size of every slot.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { ternaryCodec } from "../../codecs/registry.js";
import "../../codecs/seed.js";
import { TERNARY_ROLES, type TernaryRole } from "../../core/model.js";

// Spec: research/seed-system.md §1 (docs/formats/h1b.md has the byte tables).

/** `H1B\0`; seed loaders compare only the first three bytes. */
export const H1B_MAGIC = Uint8Array.of(0x48, 0x31, 0x42, 0x00);
/** Header size of version 1 (no rope_theta / rms_norm_eps). */
export const H1B_HEADER_V1 = 44;
/** Header size of versions 2–4. */
export const H1B_HEADER_V2 = 52;
/** Byte offset of cfg[i] in the header. */
export const cfgOffset = (index: number): number => 8 + 4 * index;
/** Names of the nine config ints, in file order. */
export const CFG_FIELDS = [
  "hidden_size",
  "intermediate_size",
  "num_layers",
  "num_heads",
  "num_kv_heads",
  "vocab_size",
  "max_seq_len",
  "tie_embeddings",
  "flags",
] as const;

/**
 * Flag bits of cfg[8] (compose with `|`).
 *
 * @example
 * ```ts
 * await writeH1b(model, "rotated-tq2.h1b", { version: 2, flags: H1bFlag.HADAMARD_ROTATED | H1bFlag.BONSAI_TQ2 });
 * ```
 */
export const H1bFlag = {
  /** BitNet-v2 offline Hadamard-rotated weights. */
  HADAMARD_ROTATED: 0x1,
  /** Sherry weights for the fp16-activation kernel (meaningful on v3 only; same bytes). */
  SHERRY_FP16: 0x2,
  /** Bonsai Q1 g128 weights (overrides the version's packing). */
  BONSAI_Q1: 0x4,
  /** Bonsai TQ2 g128 weights (overrides the version's packing). */
  BONSAI_TQ2: 0x8,
} as const;
/** Every flag bit the seed defines. */
export const H1B_KNOWN_FLAGS = 0xf;
/** rope_theta used by v1 files and when the stored value is ≤ 0. */
export const DEFAULT_ROPE_THETA = 500000;
/** rms_norm_eps used by v1 files and when the stored value is ≤ 0. */
export const DEFAULT_RMS_NORM_EPS = 1e-5;
/** max_seq_len halo assumes when the informational field is ≤ 0 (the seed always allocates 4096). */
export const DEFAULT_MAX_SEQ_LEN = 4096;

/** How the seed runtime would run the weights of a file. */
export type H1bWeightFormat = "halo-v2" | "sherry" | "sherry-fp16" | "tq1-v4" | "bonsai-tq2" | "bonsai-q1";

/**
 * The weight format of a version + flag word (Bonsai flags override the version).
 *
 * @example
 * ```ts
 * h1bWeightFormat(3, H1bFlag.SHERRY_FP16); // "sherry-fp16"
 * h1bWeightFormat(4, H1bFlag.BONSAI_TQ2); // "bonsai-tq2"
 * ```
 */
export function h1bWeightFormat(version: number, flags: number): H1bWeightFormat {
  if (flags & H1bFlag.BONSAI_TQ2) return "bonsai-tq2";
  if (flags & H1bFlag.BONSAI_Q1) return "bonsai-q1";
  if (version <= 2) return "halo-v2";
  if (version === 3) return flags & H1bFlag.SHERRY_FP16 ? "sherry-fp16" : "sherry";
  return "tq1-v4";
}

/** The registered ternary packing of a weight format (both Sherry variants share one packing). */
export function packingOf(format: H1bWeightFormat): string {
  return format === "sherry-fp16" ? "sherry" : format;
}

/** True when each ternary matrix is followed by `rows` f32 scales (false for Bonsai, whose scales are inline). */
export function hasRowScales(format: H1bWeightFormat): boolean {
  return format !== "bonsai-tq2" && format !== "bonsai-q1";
}

/**
 * Throws `H1B_BAD_FLAGS` for bits the seed does not define or for Q1 + TQ2 together.
 * `offset` is the flag word's offset in the file (or undefined for writer options).
 */
export function checkFlags(flags: number, path: string, offset: number | undefined): void {
  const where = offset === undefined ? { path, field: "flags" } : { path, offset, field: "cfg[8].flags" };
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~H1B_KNOWN_FLAGS) !== 0) {
    const post = (flags & 0x10) !== 0;
    throw new HaloError(
      post ? H1bErrorCode.H1B_UNSUPPORTED : H1bErrorCode.H1B_BAD_FLAGS,
      post ? "flag 0x10 (BLOCK_SCALED) postdates the seed format and is not supported" : "unknown flag bits",
      {
        ...where,
        expected: "a combination of 0x1 HADAMARD_ROTATED, 0x2 SHERRY_FP16, 0x4 BONSAI_Q1, 0x8 BONSAI_TQ2",
        actual: `0x${(flags >>> 0).toString(16)}`,
      },
    );
  }
  if ((flags & H1bFlag.BONSAI_Q1) !== 0 && (flags & H1bFlag.BONSAI_TQ2) !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_FLAGS, "BONSAI_Q1 (0x4) and BONSAI_TQ2 (0x8) cannot both be set", {
      ...where,
      expected: "at most one Bonsai flag",
      actual: `0x${flags.toString(16)}`,
    });
  }
}

/** The six dimensions the payload layout depends on. */
export interface H1bDims {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly vocabSize: number;
}

/** Shape `[rows, cols]` of a ternary role in the file (head_dim = hidden / heads, so q/o are square). */
export function h1bTernaryShape(dims: H1bDims, role: TernaryRole): readonly [number, number] {
  const hs = dims.hiddenSize;
  const kv = (hs / dims.numHeads) * dims.numKvHeads;
  switch (role) {
    case "q":
    case "o":
      return [hs, hs];
    case "k":
    case "v":
      return [kv, hs];
    case "gate":
    case "up":
      return [dims.intermediateSize, hs];
    case "down":
      return [hs, dims.intermediateSize];
  }
}

/** One slot of a layer, in file order. */
export interface H1bSlot {
  /** `input_norm`, `legacy`, `q`, … */
  readonly name: string;
  /** Offset from the start of the layer. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Byte layout of a whole file. */
export interface H1bLayout {
  readonly headerBytes: number;
  readonly embeddingOffset: number;
  readonly finalNormOffset: number;
  readonly firstLayerOffset: number;
  readonly layerBytes: number;
  /** Slots of one layer with offsets relative to the layer start. */
  readonly slots: readonly H1bSlot[];
  /** Total size without trailing bytes (a bigint: hostile headers can describe more than 2^53 bytes). */
  readonly totalBytes: bigint;
}

/**
 * Computes every offset of a file. Throws `H1B_BAD_DIMENSION` when a ternary matrix cannot be
 * stored in the format's packing (Sherry cols % 32, Bonsai cols % 128).
 */
export function h1bLayout(dims: H1bDims, version: number, format: H1bWeightFormat, path: string): H1bLayout {
  const hs = dims.hiddenSize;
  const headerBytes = version === 1 ? H1B_HEADER_V1 : H1B_HEADER_V2;
  const codec = ternaryCodec(packingOf(format));
  const slots: H1bSlot[] = [];
  let at = 0;
  const push = (name: string, byteLength: number): void => {
    slots.push({ name, offset: at, byteLength });
    at += byteLength;
  };
  push("input_norm", 4 * hs);
  push("post_attn_norm", 4 * hs);
  push("attn_sub_norm", 4 * hs);
  push("legacy", 4 * 5 * hs);
  push("ffn_sub_norm", 4 * dims.intermediateSize);
  for (const role of TERNARY_ROLES) {
    const [rows, cols] = h1bTernaryShape(dims, role);
    try {
      codec.checkShape(rows, cols, `${format} tensor ${role}`);
    } catch (error) {
      if (error instanceof HaloError) {
        throw new HaloError(error.code, `${role} [${rows}, ${cols}] cannot be stored as ${format}`, {
          path,
          field: role === "down" || role === "o" ? "cfg[1].intermediate_size / cfg[0].hidden_size" : "cfg[0].hidden_size",
          expected: error.expected,
          actual: error.actual,
          hint: "The header's dimensions do not fit the packing its version and flags select",
        });
      }
      throw error;
    }
    push(role, codec.byteLength(rows, cols));
    if (hasRowScales(format)) push(`${role}.scales`, 4 * rows);
  }
  const embeddingOffset = headerBytes;
  const embeddingBytes = BigInt(dims.vocabSize) * BigInt(hs) * 4n;
  const finalNormOffset = Number(BigInt(embeddingOffset) + embeddingBytes);
  const firstLayerOffset = finalNormOffset + 4 * hs;
  const totalBytes = BigInt(headerBytes) + embeddingBytes + BigInt(4 * hs) + BigInt(dims.numLayers) * BigInt(at);
  return { headerBytes, embeddingOffset, finalNormOffset, firstLayerOffset, layerBytes: at, slots, totalBytes };
}

/** Names the slot that contains byte `offset` (for truncation messages). */
export function slotAt(layout: H1bLayout, offset: number): string {
  if (offset < layout.embeddingOffset) return "header";
  if (offset < layout.finalNormOffset) return "embedding";
  if (offset < layout.firstLayerOffset) return "final_norm";
  const rel = offset - layout.firstLayerOffset;
  const layer = Math.floor(rel / layout.layerBytes);
  const within = rel - layer * layout.layerBytes;
  const slot = layout.slots.find((s) => within >= s.offset && within < s.offset + s.byteLength);
  return `layer ${layer} ${slot?.name ?? "?"}`;
}

/**
 * The shortest decimal that rounds to the same float32, so a header's `1e-5` reads back as
 * `0.00001` rather than `0.000009999999747378752` and writing it again gives the same bits.
 */
export function f32Decimal(value: number): number {
  const x = Math.fround(value);
  if (!Number.isFinite(x) || x === 0) return x;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(x.toPrecision(digits));
    if (Math.fround(candidate) === x) return candidate;
  }
  return x;
}
