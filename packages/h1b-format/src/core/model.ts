// The one in-memory model: config + lazy typed tensor views. Every reader produces it, every writer consumes it.

/** FFN activation of the architecture: BitNet b1.58-2B-4T uses `relu2`; 1bitLLM / llama.cpp `bitnet` use `silu`. */
export type Activation = "relu2" | "silu";

/** Architecture hyper-parameters, in one vocabulary for every format. */
export interface ModelConfig {
  /** Architecture family. Only `bitnet` (BitNet b1.58 Llama-style layer with sub-norms) today. */
  readonly architecture: "bitnet";
  /** Residual width (2560 for 2B-4T). */
  readonly hiddenSize: number;
  /** FFN width (6912 for 2B-4T). */
  readonly intermediateSize: number;
  /** Number of decoder layers (30). */
  readonly numLayers: number;
  /** Query heads (20). */
  readonly numHeads: number;
  /** Key/value heads (5). */
  readonly numKvHeads: number;
  /** Per-head width; hiddenSize / numHeads unless the file says otherwise (128). */
  readonly headDim: number;
  /** Vocabulary size (128256). */
  readonly vocabSize: number;
  /** Trained context length (4096). */
  readonly maxPositionEmbeddings: number;
  /** RoPE base θ (500000), NeoX half-split rotation. */
  readonly ropeTheta: number;
  /** RMSNorm epsilon (1e-5), all norm sites. */
  readonly rmsNormEps: number;
  /** FFN activation. */
  readonly activation: Activation;
  /** True when the LM head is the token embedding. */
  readonly tiedEmbeddings: boolean;
  /** Beginning-of-text id, or null when unknown. */
  readonly bosTokenId: number | null;
  /** Ids that end generation (e.g. 128001 and 128009). */
  readonly eosTokenIds: readonly number[];
  /** BitNet-v2 offline Hadamard rotation of the weights (seed flag 0x1). */
  readonly hadamardRotated: boolean;
}

/** Storage types of non-ternary tensors. Quantised ones (`q8_0`, `q6_k`, `q4_k`) are GGUF blocks. */
export type FloatDType = "f32" | "f16" | "bf16" | "q8_0" | "q6_k" | "q4_k";

/**
 * Where a tensor's stored bytes lie in a file on disk: `bytes()` equals bytes
 * `[offset, offset + length)` of the file at `path`. Lets a backend map the file instead of
 * copying the bytes (zero-copy loads). The same shape as `WeightsFileRange` of `@halo/kernels`.
 *
 * @example
 * ```ts
 * const range = model.layers[0]!.q.fileRange();
 * if (range !== null) console.log(`${range.path} @ ${range.offset}, ${range.length} bytes`);
 * ```
 */
export interface TensorFileRange {
  /** The file (absolute when the tensor was read through `fileSource`). */
  readonly path: string;
  /** Byte offset of the first stored byte. */
  readonly offset: number;
  /** Stored byte count (the tensor's `byteLength`, the same as `bytes().byteLength`). */
  readonly length: number;
}

/** A dense (or block-quantised) tensor, read lazily from its source. */
export interface FloatTensor {
  readonly kind: "float";
  /** Role name: `token_embd`, `output_norm`, `output`, or `blk.<layer>.<role>` with the {@link LayerTensors} key (`blk.3.attnNorm`, `blk.3.gate`). */
  readonly name: string;
  readonly dtype: FloatDType;
  /** Row-major shape, last dimension contiguous: `[vocab, hidden]` for the embedding, `[n]` for norms. */
  readonly shape: readonly number[];
  /** Size of the encoded bytes. */
  readonly byteLength: number;
  /** The encoded bytes (a view when the source is in memory). */
  bytes(): Uint8Array;
  /**
   * Where {@link bytes} lies in a file: non-null only when the tensor was read from a file opened
   * through `fileSource` (every reader given a path: `.halo`, GGUF, `.h1b`, safetensors / HF) and
   * its bytes are stored verbatim there. Null for memory sources and for computed bytes.
   */
  fileRange(): TensorFileRange | null;
  /** Decoded values as float32 (allocates; avoid for the 2B embedding on hot paths). */
  toFloat32(): Float32Array;
}

/**
 * How a ternary matrix is scaled: `W[r][c] = t[r][c] · scale`, with the scale per tensor,
 * per output row, or per block of `blockSize` consecutive weights of a row.
 */
export type TernaryScale =
  | { readonly kind: "tensor"; readonly value: number }
  | { readonly kind: "row"; readonly values: Float32Array }
  | { readonly kind: "block"; readonly blockSize: number; readonly values: Float32Array };

/**
 * Name of a ternary packing (a byte layout of trits). h1b-format's own format packings, each with
 * a codec built in (`ternaryPackings()` lists them):
 * - `int8`: one signed byte per weight, row-major (the canonical unpacked form).
 * - `halo-v2`, `sherry`, `tq1-v4`, `bonsai-tq2`, `bonsai-q1`: seed `.h1b` packings; `halo-v2` is
 *   what `.halo` stores under `packing: "auto"` when no backend codecs are passed.
 * - `hf-packed`: Hugging Face uint8 `[out/4, in]`, four row quarters per byte.
 * - `i2_s`: Microsoft bitnet.cpp GGUF type 36 (x86 128-element blocks, MSB first).
 * - `tq1_0`, `tq2_0`: llama.cpp GGUF types 34 and 35 (256-weight blocks with an f16 scale each).
 *
 * Any other name is a backend's own layout (e.g. `halo-i2x256` of `@halo/kernels-cpu`). Its codec
 * ships with the backend and is passed to each call that needs it (the `codecs` option of
 * `openModel`, `readHalo`, `writeHalo`, `convertModel`, `runCli`, …); nothing is registered
 * globally. `packing: "auto"` stores the first passed codec's layout, else `halo-v2`.
 *
 * @example
 * ```ts
 * const packing: TernaryPacking = "tq2_0";
 * const cpuLayout: TernaryPacking = backendFactory.packings![0]!.packing; // "halo-i2x256"
 * ```
 */
export type TernaryPacking = string;

/** A ternary weight matrix in `nn.Linear` orientation: rows = output features, cols = input features. */
export interface TernaryTensor {
  readonly kind: "ternary";
  readonly name: string;
  /** Output features. */
  readonly rows: number;
  /** Input features (the reduction dimension K). */
  readonly cols: number;
  /** Packing of {@link bytes}. */
  readonly packing: TernaryPacking;
  readonly scale: TernaryScale;
  /** Size of the packed bytes (including scales the packing stores inline: `tq1_0`, `tq2_0`, `i2_s`, `bonsai-*`). */
  readonly byteLength: number;
  /** The packed bytes, exactly as stored (a view when the source is in memory). */
  bytes(): Uint8Array;
  /**
   * Where {@link bytes} lies in a file: non-null only when the tensor was read from a file opened
   * through `fileSource` (`.halo`, GGUF, `.h1b`, HF `hf-packed` safetensors) and its packed bytes
   * are stored verbatim there. Null for memory sources and for computed bytes (synthetic models,
   * HF master weights ternarised on the fly).
   */
  fileRange(): TensorFileRange | null;
  /**
   * Decodes rows `[rowStart, rowStart + rowCount)` to trits in {-1, 0, +1} into `out`
   * (`rowCount * cols` values, row-major).
   */
  decodeRows(rowStart: number, rowCount: number, out: Int8Array): void;
}

/** The tensors of one decoder layer. */
export interface LayerTensors {
  /** Pre-attention RMSNorm weight `[hidden]`. */
  readonly attnNorm: FloatTensor;
  /** RMSNorm on the attention output before o_proj `[numHeads·headDim]`. */
  readonly attnSubNorm: FloatTensor;
  /** Pre-FFN RMSNorm weight `[hidden]`. */
  readonly ffnNorm: FloatTensor;
  /** RMSNorm before down_proj `[intermediate]`. */
  readonly ffnSubNorm: FloatTensor;
  /** `[numHeads·headDim, hidden]` */
  readonly q: TernaryTensor;
  /** `[numKvHeads·headDim, hidden]` */
  readonly k: TernaryTensor;
  /** `[numKvHeads·headDim, hidden]` */
  readonly v: TernaryTensor;
  /** `[hidden, numHeads·headDim]` */
  readonly o: TernaryTensor;
  /** `[intermediate, hidden]` */
  readonly gate: TernaryTensor;
  /** `[intermediate, hidden]` */
  readonly up: TernaryTensor;
  /** `[hidden, intermediate]` */
  readonly down: TernaryTensor;
}

/**
 * The tokenizer exactly as the source file carries it. @halo/tokenizer builds a tokenizer
 * from any of these.
 */
export type TokenizerPayload =
  | {
      /** Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) text. */
      readonly kind: "hf-json";
      readonly tokenizerJson: string;
      readonly tokenizerConfigJson: string | null;
    }
  | {
      /** GGUF `tokenizer.ggml.*` metadata. */
      readonly kind: "gguf";
      /** `tokenizer.ggml.model`, e.g. `gpt2`. */
      readonly model: string;
      /** `tokenizer.ggml.pre`, or null when absent (Microsoft's 2B-4T GGUF has none). */
      readonly pre: string | null;
      readonly tokens: readonly string[];
      readonly merges: readonly string[];
      readonly tokenTypes: readonly number[] | null;
      readonly bosTokenId: number | null;
      readonly eosTokenId: number | null;
      readonly addBosToken: boolean | null;
    }
  | {
      /** Seed `.htok`: byte-mapped surfaces and id-triple merges. */
      readonly kind: "htok";
      readonly tokens: readonly Uint8Array[];
      /** `[a, b, merged]` ids; rank = index. */
      readonly merges: Uint32Array;
      readonly bosTokenId: number;
      readonly eosTokenId: number;
    };

/** Formats halo reads (and, except `hf-snapshot` and `i2_s` writing, writes). */
export type ModelFormat = "h1b" | "gguf" | "hf-snapshot" | "halo";

/** Where a model came from. */
export interface ModelSource {
  readonly format: ModelFormat;
  /** Format version (seed `.h1b` 1–4, GGUF 2/3, container version). */
  readonly version: number | null;
  readonly path: string;
}

/**
 * A byte range of a model's source with the checksum its file stores for it (`.halo`: every
 * tensor and scale tensor). `verifyModelWeights` recomputes them.
 *
 * @example
 * ```ts
 * for (const c of model.checksums ?? []) console.log(c.name, c.crc32, c.fileRange()?.offset);
 * ```
 */
export interface StoredChecksum {
  /** The tensor's name in the file (`token_embd`, `blk.0.q.scale`). */
  readonly name: string;
  /** CRC-32 (IEEE, as zlib computes it) of the stored bytes, 8 lowercase hex digits. */
  readonly crc32: string;
  readonly byteLength: number;
  /** The stored bytes. */
  bytes(): Uint8Array;
  /** Where the bytes lie in a file, or null for a memory source. */
  fileRange(): TensorFileRange | null;
}

/** A loaded model: config, lazy tensors, tokenizer and metadata. Call `close()` when done. */
export interface HaloModel {
  readonly config: ModelConfig;
  /** `[vocab, hidden]`; also the LM head when `config.tiedEmbeddings`. */
  readonly tokenEmbedding: FloatTensor;
  /** Final RMSNorm weight `[hidden]`. */
  readonly outputNorm: FloatTensor;
  /** Untied LM head `[vocab, hidden]`, or null when tied. */
  readonly lmHead: FloatTensor | null;
  readonly layers: readonly LayerTensors[];
  readonly tokenizer: TokenizerPayload | null;
  /** Jinja chat template, when the source carries one. */
  readonly chatTemplate: string | null;
  /** Free-form provenance and format metadata (string values). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly source: ModelSource;
  /**
   * Format-specific bytes that carry no meaning for inference but that a writer of the same
   * format restores, so `write(read(file))` is byte-identical (e.g. the seed `.h1b` legacy norm
   * slots and trailing bytes). Keys are namespaced by format: `h1b.trailing`, `gguf.kv.*`.
   */
  readonly extras?: ReadonlyMap<string, Uint8Array>;
  /** Checksums the file stores for its tensors (`.halo` only); absent for formats without them. */
  readonly checksums?: readonly StoredChecksum[];
  /** Releases file handles. Tensors must not be used afterwards. */
  close(): void;
}

/** Names of the eleven per-layer tensors in {@link LayerTensors}. */
export const TERNARY_ROLES = ["q", "k", "v", "o", "gate", "up", "down"] as const;
/** One of {@link TERNARY_ROLES}. */
export type TernaryRole = (typeof TERNARY_ROLES)[number];
/** The four per-layer norms. */
export const NORM_ROLES = ["attnNorm", "attnSubNorm", "ffnNorm", "ffnSubNorm"] as const;
/** One of {@link NORM_ROLES}. */
export type NormRole = (typeof NORM_ROLES)[number];

/** Expected `[rows, cols]` of each ternary role for a config. */
export function ternaryShape(config: ModelConfig, role: TernaryRole): readonly [number, number] {
  const h = config.hiddenSize;
  const qd = config.numHeads * config.headDim;
  const kvd = config.numKvHeads * config.headDim;
  const f = config.intermediateSize;
  switch (role) {
    case "q":
      return [qd, h];
    case "k":
    case "v":
      return [kvd, h];
    case "o":
      return [h, qd];
    case "gate":
    case "up":
      return [f, h];
    case "down":
      return [h, f];
  }
}

/** Expected length of each norm role for a config. */
export function normLength(config: ModelConfig, role: NormRole): number {
  switch (role) {
    case "attnNorm":
    case "ffnNorm":
      return config.hiddenSize;
    case "attnSubNorm":
      return config.numHeads * config.headDim;
    case "ffnSubNorm":
      return config.intermediateSize;
  }
}
