// PackingCodec: a backend's own ternary weight layout, which it ships and passes to file writers and readers explicitly.

/**
 * Options of {@link PackingCodec.encode}.
 *
 * @example
 * ```ts
 * codec.encode(trits, rows, cols, { force: true, report: (n) => console.warn(`${n} weights changed`) });
 * ```
 */
export interface PackingEncodeOptions {
  /** Accept a lossy encoding (packings that cannot hold every ternary matrix). */
  readonly force?: boolean;
  /** Receives the number of weights a lossy encoding changed. */
  readonly report?: (changedWeights: number) => void;
  /** The matrix's scale, for packings that store scales inline (the file format's own scale type). */
  readonly scale?: unknown;
}

/**
 * A ternary packing a backend's kernels consume as stored: byte sizes and lossless encode/decode
 * of whole matrices (scales travel separately). A backend package exports its codecs in
 * {@link BackendFactory.packings}; a file writer (`writeHalo` / `convertModel` in
 * `@halo/h1b-format`) stores weights in it when the codec is passed, and a reader decodes them when
 * the codec is passed, so a loaded file can be mapped by the backend with no repacking. The shape
 * matches `TernaryCodec` of `@halo/h1b-format` structurally; no package registers it globally.
 *
 * @example
 * ```ts
 * const bytes = codec.encode(trits, rows, cols);
 * codec.decodeRows(bytes, rows, cols, 0, rows, new Int8Array(rows * cols));
 * ```
 */
export interface PackingCodec {
  /** The packing's name as files store it (e.g. `halo-i2x256`). */
  readonly packing: string;
  /** Bits per weight including padding. */
  readonly bitsPerWeight: number;
  /** Throws a typed error when `rows × cols` cannot be stored in this packing (`where` names the tensor). */
  checkShape(rows: number, cols: number, where: string): void;
  /** Packed size in bytes of a `rows × cols` matrix. */
  byteLength(rows: number, cols: number): number;
  /** Bytes of one row when rows are stored independently at a fixed stride; null or absent otherwise. */
  rowBytes?(cols: number): number | null;
  /** Packs `rows × cols` trits (int8 in {-1, 0, 1}, row-major). */
  encode(trits: Int8Array, rows: number, cols: number, options?: PackingEncodeOptions): Uint8Array;
  /** Decodes rows `[rowStart, rowStart + rowCount)` of a packed matrix into `out`. */
  decodeRows(bytes: Uint8Array, rows: number, cols: number, rowStart: number, rowCount: number, out: Int8Array): void;
}
