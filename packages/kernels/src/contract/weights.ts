// The weights a backend takes: a structural subset of @halo/h1b-format's HaloModel, so a parsed file passes as is.

/**
 * Architecture hyper-parameters a backend needs. Every `HaloModel.config` from `@halo/h1b-format`
 * satisfies it. `architecture` and `activation` are plain strings here so a backend can refuse an
 * unknown one with `KERNELS_UNSUPPORTED_CONFIG` instead of a type error in the caller.
 *
 * @example
 * ```ts
 * const config: WeightsConfig = synthModel({ shape: "tiny" }).config;
 * ```
 */
export interface WeightsConfig {
  /** Architecture family; backends support `"bitnet"`. */
  readonly architecture: string;
  /** Residual width. */
  readonly hiddenSize: number;
  /** FFN width. */
  readonly intermediateSize: number;
  /** Decoder layers. */
  readonly numLayers: number;
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads (a divisor of `numHeads`). */
  readonly numKvHeads: number;
  /** Per-head width (even, for RoPE). */
  readonly headDim: number;
  /** Vocabulary size: token ids are in `[0, vocabSize)`, logits rows have this length. */
  readonly vocabSize: number;
  /** Trained context length; `contextLength` at load may not exceed it. */
  readonly maxPositionEmbeddings: number;
  /** RoPE base θ (NeoX half-split rotation). */
  readonly ropeTheta: number;
  /** RMSNorm epsilon at every norm site. */
  readonly rmsNormEps: number;
  /** FFN activation: `"relu2"` (BitNet b1.58-2B-4T) or `"silu"` (1bitLLM / llama.cpp `bitnet`). */
  readonly activation: string;
  /** True when the LM head is the token embedding. */
  readonly tiedEmbeddings: boolean;
  /** BitNet-v2 offline Hadamard rotation; backends without it refuse such weights. Default false. */
  readonly hadamardRotated?: boolean;
}

/**
 * Where a tensor's stored bytes lie in a file on disk: `bytes()` equals bytes `[offset, offset +
 * length)` of `path`. Lets a backend map the file instead of copying the bytes (zero-copy loads).
 *
 * @example
 * ```ts
 * const range = tensor.fileRange?.();
 * if (range) console.log(`${range.path} @ ${range.offset}, ${range.length} bytes`);
 * ```
 */
export interface WeightsFileRange {
  /** The file. */
  readonly path: string;
  /** Byte offset of the first stored byte. */
  readonly offset: number;
  /** Stored byte count (the same as `bytes().byteLength`). */
  readonly length: number;
}

/**
 * A dense or block-quantised tensor (norm weights, embedding, LM head). `toFloat32()` decodes any
 * dtype (`f32`, `f16`, `bf16`, `q8_0`, …); a backend may read `bytes()` directly for dtypes it knows.
 *
 * @example
 * ```ts
 * const norm: WeightsFloatTensor = model.layers[0]!.attnNorm;
 * const values = norm.toFloat32(); // Float32Array of norm.shape[0]
 * ```
 */
export interface WeightsFloatTensor {
  /** Storage type name (`"f32"`, `"f16"`, `"bf16"`, `"q8_0"`, …). */
  readonly dtype: string;
  /** Row-major shape, last dimension contiguous. */
  readonly shape: readonly number[];
  /** The encoded bytes as stored. */
  bytes(): Uint8Array;
  /** Where `bytes()` lies in a file, when the tensor is read from one (absent or null otherwise). */
  fileRange?(): WeightsFileRange | null;
  /** Decoded values (allocates). */
  toFloat32(): Float32Array;
}

/**
 * How a ternary matrix is scaled: `W[r][c] = t[r][c] · scale`, with one scale per tensor, per
 * output row, or per block of `blockSize` consecutive weights of a row (block `b` of row `r` is
 * `values[(r · cols) / blockSize + b]`).
 *
 * @example
 * ```ts
 * const scale: WeightsTernaryScale = { kind: "tensor", value: 0.021 };
 * ```
 */
export type WeightsTernaryScale =
  | { readonly kind: "tensor"; readonly value: number }
  | { readonly kind: "row"; readonly values: Float32Array }
  | { readonly kind: "block"; readonly blockSize: number; readonly values: Float32Array };

/**
 * A ternary matrix in `nn.Linear` orientation (rows = output features, cols = K). Any packing
 * works with a backend that repacks through `decodeRows`; `packing` and `bytes()` let a backend
 * take layouts it knows without decoding.
 *
 * @example
 * ```ts
 * const trits = new Int8Array(tensor.cols);
 * tensor.decodeRows(0, 1, trits); // first row, values in {-1, 0, 1}
 * ```
 */
export interface WeightsTernaryTensor {
  /** Output features. */
  readonly rows: number;
  /** Input features (the reduction dimension K). */
  readonly cols: number;
  /** Packing name of `bytes()` (`"int8"`, `"tq2_0"`, `"i2_s"`, …). */
  readonly packing: string;
  /** Weight scale(s). */
  readonly scale: WeightsTernaryScale;
  /** The packed bytes as stored. */
  bytes(): Uint8Array;
  /** Where `bytes()` lies in a file, when the tensor is read from one (absent or null otherwise). */
  fileRange?(): WeightsFileRange | null;
  /** Decodes rows `[rowStart, rowStart + rowCount)` to trits into `out` (`rowCount · cols`, row-major). */
  decodeRows(rowStart: number, rowCount: number, out: Int8Array): void;
}

/**
 * The tensors of one decoder layer (BitNet b1.58 layer with sub-norms).
 *
 * @example
 * ```ts
 * const layer: WeightsLayer = model.layers[0]!;
 * console.log(layer.q.rows, layer.q.cols);
 * ```
 */
export interface WeightsLayer {
  /** Pre-attention RMSNorm `[hidden]`. */
  readonly attnNorm: WeightsFloatTensor;
  /** RMSNorm of the attention output before o `[numHeads·headDim]`. */
  readonly attnSubNorm: WeightsFloatTensor;
  /** Pre-FFN RMSNorm `[hidden]`. */
  readonly ffnNorm: WeightsFloatTensor;
  /** RMSNorm before down `[intermediate]`. */
  readonly ffnSubNorm: WeightsFloatTensor;
  /** `[numHeads·headDim, hidden]` */
  readonly q: WeightsTernaryTensor;
  /** `[numKvHeads·headDim, hidden]` */
  readonly k: WeightsTernaryTensor;
  /** `[numKvHeads·headDim, hidden]` */
  readonly v: WeightsTernaryTensor;
  /** `[hidden, numHeads·headDim]` */
  readonly o: WeightsTernaryTensor;
  /** `[intermediate, hidden]` */
  readonly gate: WeightsTernaryTensor;
  /** `[intermediate, hidden]` */
  readonly up: WeightsTernaryTensor;
  /** `[hidden, intermediate]` */
  readonly down: WeightsTernaryTensor;
}

/**
 * Everything a backend needs to run a model. A `HaloModel` from `@halo/h1b-format` is one, so
 * `backend.loadModel(await readGguf(path), options)` needs no adapter.
 *
 * @example
 * ```ts
 * import { synthModel } from "@halo/h1b-format";
 * const weights: ModelWeights = synthModel({ shape: "tiny", seed: 1 });
 * const model = await referenceBackend().loadModel(weights, { contextLength: 256 });
 * ```
 */
export interface ModelWeights {
  readonly config: WeightsConfig;
  /** `[vocab, hidden]`; also the LM head when `config.tiedEmbeddings`. */
  readonly tokenEmbedding: WeightsFloatTensor;
  /** Final RMSNorm `[hidden]`. */
  readonly outputNorm: WeightsFloatTensor;
  /** Untied LM head `[vocab, hidden]`, or null when tied. */
  readonly lmHead: WeightsFloatTensor | null;
  readonly layers: readonly WeightsLayer[];
}
