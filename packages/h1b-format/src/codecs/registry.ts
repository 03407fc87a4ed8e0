// Registries of ternary packings and float dtypes: how bytes become trits or floats and back.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import type { FloatDType, TernaryPacking, TernaryScale } from "../core/model.js";

/**
 * A ternary packing: byte size and lossless (or, where documented, lossy) encode/decode of whole
 * matrices. Scales are not part of the packing; they travel in {@link TernaryScale}. h1b-format's
 * own format packings have one each; a backend's layout is any object of this shape passed in a
 * call's `codecs` (`@halo/kernels`' `PackingCodec` matches it structurally).
 *
 * @example
 * ```ts
 * const codec: TernaryCodec = ternaryCodec("halo-v2");
 * const bytes = codec.encode(trits, rows, cols);
 * codec.decodeRows(bytes, rows, cols, 0, rows, new Int8Array(rows * cols));
 * ```
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

/**
 * Adds a format packing's codec to h1b-format's own table (the codecs modules call this once).
 * Backends never register here: they pass their codecs to each call (`codecs` options).
 * @internal
 */
export function registerTernaryCodec(codec: TernaryCodec): void {
  ternaryCodecs.set(codec.packing, codec);
}

/**
 * Adds a float dtype's codec to h1b-format's own table (the codecs modules call this once).
 * Not exported from the package: float dtypes are a fixed part of the formats h1b-format reads.
 * @internal
 */
export function registerFloatCodec(codec: FloatCodec): void {
  floatCodecs.set(codec.dtype, codec);
}

/**
 * Codecs of packings that are not h1b-format's own — a backend's layout, such as the CPU
 * kernels' `halo-i2x256` in `@halo/kernels-cpu` — passed to one call (`openModel`, `readHalo`,
 * `writeHalo`, `convertModel`, `runCli`) and used for that call only, on top of the format
 * packings. Any object of the {@link TernaryCodec} shape is accepted; `@halo/kernels`'
 * `PackingCodec` (what `BackendFactory.packings` lists) is one.
 *
 * @example
 * ```ts
 * import { backendFactory } from "@halo/kernels-cpu";
 * const codecs: TernaryCodecs = backendFactory.packings ?? [];
 * const model = await openModel("model.halo", { codecs });
 * ```
 */
export type TernaryCodecs = readonly TernaryCodec[];

/**
 * The hint of an error about a packing with no codec: pass the backend's codecs.
 * @internal
 */
export function missingCodecHint(packing: string): string {
  return (
    `${packing} is not a format packing of @halo/h1b-format but a backend's own layout. Pass that backend's codecs, ` +
    "e.g. `openModel(path, { codecs: backendFactory.packings })` or `writeHalo(model, path, { codecs })` " +
    "with the backendFactory of the @halo/kernels-* package that ships it (halo-i2x256 is the CPU backend's: npm install @halo/kernels-cpu); " +
    "@halo/engine and the halo command pass the packings of every installed backend themselves"
  );
}

/**
 * The codec for a packing: one of `codecs` (passed to this call) or a format packing, or null.
 *
 * @example
 * ```ts
 * findTernaryCodec("halo-v2"); // haloV2Codec
 * findTernaryCodec("halo-i2x256"); // null: a backend's layout, not passed
 * findTernaryCodec("halo-i2x256", backendFactory.packings); // the CPU backend's codec
 * ```
 */
export function findTernaryCodec(packing: TernaryPacking, codecs: TernaryCodecs = []): TernaryCodec | null {
  for (const codec of codecs) if (codec.packing === packing) return codec;
  return ternaryCodecs.get(packing) ?? null;
}

/**
 * The codec for a packing — one of `codecs` (passed to this call) or a format packing — or
 * `H1B_UNKNOWN_DTYPE` naming the packings known to this call and how to pass a backend's codec.
 *
 * @example
 * ```ts
 * ternaryCodec("tq2_0").byteLength(2560, 2560);
 * ternaryCodec("halo-i2x256", backendFactory.packings).encode(trits, rows, cols);
 * ```
 */
export function ternaryCodec(packing: TernaryPacking, codecs: TernaryCodecs = []): TernaryCodec {
  const codec = findTernaryCodec(packing, codecs);
  if (codec === null) {
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, `unknown ternary packing "${packing}"`, {
      field: "packing",
      expected: `one of ${[...codecs.map((c) => c.packing), ...ternaryCodecs.keys()].join(", ")}`,
      actual: packing,
      hint: missingCodecHint(packing),
    });
  }
  return codec;
}

const CODEC_METHODS = ["checkShape", "byteLength", "encode", "decodeRows"] as const;

/**
 * Checks codecs passed to a call: each has the {@link TernaryCodec} shape, no two share a name,
 * and none takes the name of a format packing (a name identifies one byte layout in every file)
 * unless it is that packing's own codec. Throws `H1B_BAD_ARGUMENT`; returns the list unchanged.
 *
 * @example
 * ```ts
 * const codecs = checkCodecs(options.codecs ?? []);
 * ```
 */
export function checkCodecs(codecs: unknown, field = "codecs"): TernaryCodecs {
  const bad = (at: string, expected: string, actual: unknown): never => {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, `invalid ${field}`, {
      field: at,
      expected,
      actual,
      hint: "Pass a backend's packing codecs as they are, e.g. `{ codecs: backendFactory.packings }`",
    });
  };
  if (!Array.isArray(codecs)) return bad(field, "an array of packing codecs", codecs === null ? "null" : typeof codecs);
  const seen = new Map<string, TernaryCodec>();
  codecs.forEach((codec: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof codec !== "object" || codec === null) return bad(at, "a packing codec object", codec === null ? "null" : typeof codec);
    const c = codec as Partial<Record<string, unknown>>;
    if (typeof c.packing !== "string" || c.packing === "" || c.packing === "auto") return bad(`${at}.packing`, "a packing name", c.packing);
    if (typeof c.bitsPerWeight !== "number") return bad(`${at}.bitsPerWeight`, "a number", c.bitsPerWeight);
    for (const method of CODEC_METHODS) {
      if (typeof c[method] !== "function") return bad(`${at}.${method}`, "a function", typeof c[method]);
    }
    if (c.rowBytes !== undefined && typeof c.rowBytes !== "function") return bad(`${at}.rowBytes`, "a function or absent", typeof c.rowBytes);
    const typed = codec as TernaryCodec;
    const own = ternaryCodecs.get(typed.packing);
    if (own !== undefined && own !== typed)
      return bad(`${at}.packing`, `a name that is not a format packing (${[...ternaryCodecs.keys()].join(", ")})`, typed.packing);
    const earlier = seen.get(typed.packing);
    if (earlier !== undefined && earlier !== typed) return bad(`${at}.packing`, "names that differ between codecs", typed.packing);
    seen.set(typed.packing, typed);
  });
  return codecs as TernaryCodecs;
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

/**
 * Names of h1b-format's own (format) ternary packings; a backend's layouts are not among them.
 *
 * @example
 * ```ts
 * ternaryPackings().includes("tq2_0"); // true
 * ternaryPackings().includes("halo-i2x256"); // false: @halo/kernels-cpu ships it
 * ```
 */
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
