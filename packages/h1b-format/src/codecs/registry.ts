// Registries of ternary packings and float dtypes: how bytes become trits or floats and back.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { FloatDType, TernaryPacking, TernaryScale } from "../core/model.js";

/**
 * A ternary packing: byte size and lossless (or, where documented, lossy) encode/decode of whole
 * matrices. Scales are not part of the packing; they travel in {@link TernaryScale}.
 */
export interface TernaryCodec {
  readonly packing: TernaryPacking;
  /** Bits per weight including padding (documentation and `inspect`). */
  readonly bitsPerWeight: number;
  /** Throws `H1B_BAD_DIMENSION` when `rows × cols` cannot be stored in this packing. */
  checkShape(rows: number, cols: number, where: string): void;
  /** Packed size in bytes for a `rows × cols` matrix. */
  byteLength(rows: number, cols: number): number;
  /**
   * Bytes of one row when the packing stores rows independently at a fixed stride (row `r` is
   * bytes `[r·rowBytes, (r+1)·rowBytes)`; anything after the last row, such as I2_S's scale tail,
   * is not part of a row). Absent, or null for this width, when rows share bytes (`hf-packed`,
   * I2_S with `cols % 128 ≠ 0`). Lets lazy tensors read only the rows asked for.
   */
  rowBytes?(cols: number): number | null;
  /**
   * Packs trits (`rows * cols` int8 values in {-1,0,1}, row-major). Packings that cannot hold
   * every ternary matrix (Sherry) throw `H1B_LOSSY_CONVERSION` unless `force`, and then report
   * how many weights changed through `report`.
   */
  encode(trits: Int8Array, rows: number, cols: number, options?: EncodeOptions): Uint8Array;
  /** Decodes rows `[rowStart, rowStart + rowCount)` of the packed matrix into `out`. */
  decodeRows(bytes: Uint8Array, rows: number, cols: number, rowStart: number, rowCount: number, out: Int8Array): void;
}

/** Options for lossy-capable encoders. */
export interface EncodeOptions {
  /** Accept a lossy encoding. */
  readonly force?: boolean;
  /** Receives the number of weights the encoding changed. */
  readonly report?: (changedWeights: number) => void;
  /**
   * The matrix's scale. Codecs that store scales inline (`tq1_0`, `tq2_0`, `i2_s`, `bonsai-*`)
   * need it and throw `H1B_BAD_ARGUMENT` without it (or when it cannot be expressed, e.g. per-row
   * scales in a per-tensor format); codecs without inline scales ignore it.
   */
  readonly scale?: TernaryScale;
}

/** A float storage type: byte size and decode (and encode where halo writes it). */
export interface FloatCodec {
  readonly dtype: FloatDType;
  /** Elements per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** Decodes `count` elements starting at element 0 of `bytes`. */
  decode(bytes: Uint8Array, count: number): Float32Array;
  /** Encodes values, when halo can write this type. */
  encode?(values: Float32Array): Uint8Array;
}

const ternaryCodecs = new Map<string, TernaryCodec>();
const floatCodecs = new Map<string, FloatCodec>();

/** Adds (or replaces) a ternary packing codec. */
export function registerTernaryCodec(codec: TernaryCodec): void {
  ternaryCodecs.set(codec.packing, codec);
}

/** Adds (or replaces) a float dtype codec. */
export function registerFloatCodec(codec: FloatCodec): void {
  floatCodecs.set(codec.dtype, codec);
}

/** The codec for a packing, or `H1B_UNKNOWN_DTYPE`. */
export function ternaryCodec(packing: TernaryPacking): TernaryCodec {
  const codec = ternaryCodecs.get(packing);
  if (codec === undefined) {
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, "unknown ternary packing", {
      expected: `one of ${[...ternaryCodecs.keys()].join(", ")}`,
      actual: packing,
    });
  }
  return codec;
}

/** The codec for a float dtype, or `H1B_UNKNOWN_DTYPE`. */
export function floatCodec(dtype: FloatDType): FloatCodec {
  const codec = floatCodecs.get(dtype);
  if (codec === undefined) {
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, "unknown float dtype", {
      expected: `one of ${[...floatCodecs.keys()].join(", ")}`,
      actual: dtype,
    });
  }
  return codec;
}

/** Names of every registered ternary packing. */
export function ternaryPackings(): string[] {
  return [...ternaryCodecs.keys()];
}

/** Byte length of `count` elements of a float dtype (`H1B_BAD_DIMENSION` if not whole blocks). */
export function floatByteLength(dtype: FloatDType, count: number): number {
  const codec = floatCodec(dtype);
  if (count % codec.blockSize !== 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_DIMENSION, `${dtype} tensors hold whole blocks`, {
      expected: `a multiple of ${codec.blockSize} elements`,
      actual: count,
    });
  }
  return (count / codec.blockSize) * codec.blockBytes;
}
