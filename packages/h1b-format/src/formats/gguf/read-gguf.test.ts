// readGguf on hand-built files: Microsoft's bitnet-b1.58 I2_S layout, llama.* fallbacks, .scale tensors, activations, errors.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "../../synth/synth-model.js";
import { TERNARY_ROLES, NORM_ROLES, type HaloModel } from "../../core/model.js";
import { toGgufTokenizer } from "../../core/tokenizer-payload.js";
import { i2sCodec, tq2_0Codec } from "../../codecs/ggml.js";
import { encodeGgufHeader, type GgufWriteValue } from "./gguf-encode.js";
import { GGUF_NORM_NAMES, GGUF_TERNARY_NAMES, readGguf } from "./read-gguf.js";

interface Tensor {
  name: string;
  dims: number[];
  type: number;
  bytes: Uint8Array;
}

function build(kv: Array<[string, GgufWriteValue]>, tensors: Tensor[]): Uint8Array {
  let offset = 0;
  const infos = tensors.map((t) => {
    const info = { name: t.name, dims: t.dims, type: t.type, offset };
    offset = Math.ceil((offset + t.bytes.length) / 32) * 32;
    return info;
  });
  const header = encodeGgufHeader(kv, infos, 32);
  const out = new Uint8Array(header.length + offset);
  out.set(header);
  tensors.forEach((t, i) => out.set(t.bytes, header.length + infos[i]!.offset));
  return out;
}

type Variant = {
  arch: string;
  prefix: string;
  ternary: "i2_s" | "tq2_0-with-scale-tensors";
  activation?: string;
  drop?: string;
  ternaryAsF16?: boolean;
  /** Store token_embd as K-quant blocks with known contents instead of f16. */
  embedding?: "q6_k" | "q4_k";
};

/** K-quant embedding blocks whose every value is known: Q6_K d=1, scales 1, q=0 → −32; Q4_K d=1, dmin=0, scales 1, nibble 5 → 5. */
function kQuantEmbedding(kind: "q6_k" | "q4_k", count: number): { type: number; bytes: Uint8Array; value: number } {
  const blocks = count / 256;
  if (kind === "q6_k") {
    const bytes = new Uint8Array(blocks * 210);
    for (let b = 0; b < blocks; b++) {
      bytes.fill(1, b * 210 + 192, b * 210 + 208);
      bytes[b * 210 + 209] = 0x3c;
    }
    return { type: 14, bytes, value: -32 };
  }
  const bytes = new Uint8Array(blocks * 144);
  for (let b = 0; b < blocks; b++) {
    bytes[b * 144 + 1] = 0x3c;
    for (let j = 0; j < 4; j++) bytes[b * 144 + 4 + j] = 1; // scales of sub-blocks 0-3
    for (let j = 8; j < 12; j++) bytes[b * 144 + 4 + j] = 1; // low bits of sub-blocks 4-7
    bytes.fill(0x55, b * 144 + 16, b * 144 + 144);
  }
  return { type: 12, bytes, value: 5 };
}

function fileFor(model: HaloModel, variant: Variant): Uint8Array {
  const c = model.config;
  const p = variant.prefix;
  const tok = toGgufTokenizer(model.tokenizer!);
  const kv: Array<[string, GgufWriteValue]> = [
    ["general.architecture", { type: "string", value: variant.arch }],
    ["general.name", { type: "string", value: "bitnet2b" }],
    [`${p}.vocab_size`, { type: "u32", value: c.vocabSize }],
    [`${p}.context_length`, { type: "u32", value: c.maxPositionEmbeddings }],
    [`${p}.embedding_length`, { type: "u32", value: c.hiddenSize }],
    [`${p}.block_count`, { type: "u32", value: c.numLayers }],
    [`${p}.feed_forward_length`, { type: "u32", value: c.intermediateSize }],
    [`${p}.rope.dimension_count`, { type: "u32", value: c.headDim }],
    [`${p}.attention.head_count`, { type: "u32", value: c.numHeads }],
    [`${p}.attention.head_count_kv`, { type: "u32", value: c.numKvHeads }],
    [`${p}.attention.layer_norm_rms_epsilon`, { type: "f32", value: c.rmsNormEps }],
    [`${p}.rope.freq_base`, { type: "f32", value: c.ropeTheta }],
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: tok.tokens }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: tok.tokenTypes! }],
    ["tokenizer.ggml.merges", { type: "string[]", value: tok.merges }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: c.bosTokenId! }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: c.eosTokenIds[0]! }],
    ["tokenizer.chat_template", { type: "string", value: model.chatTemplate! }],
  ];
  if (variant.activation !== undefined) kv.push([`${p}.hidden_activation`, { type: "string", value: variant.activation }]);
  const f32 = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer.slice(0));
  const embedding =
    variant.embedding === undefined ? { type: 1, bytes: model.tokenEmbedding.bytes() } : kQuantEmbedding(variant.embedding, c.vocabSize * c.hiddenSize);
  const tensors: Tensor[] = [
    { name: "token_embd.weight", dims: [c.hiddenSize, c.vocabSize], type: embedding.type, bytes: embedding.bytes },
    { name: "output_norm.weight", dims: [c.hiddenSize], type: 0, bytes: f32(model.outputNorm.toFloat32()) },
  ];
  model.layers.forEach((layer, l) => {
    for (const role of NORM_ROLES) {
      tensors.push({ name: `blk.${l}.${GGUF_NORM_NAMES[role]}.weight`, dims: [layer[role].shape[0]!], type: 0, bytes: f32(layer[role].toFloat32()) });
    }
    for (const role of TERNARY_ROLES) {
      const t = layer[role];
      const trits = new Int8Array(t.rows * t.cols);
      t.decodeRows(0, t.rows, trits);
      const name = `blk.${l}.${GGUF_TERNARY_NAMES[role]}`;
      if (variant.ternaryAsF16 === true) {
        tensors.push({ name: `${name}.weight`, dims: [t.cols, t.rows], type: 1, bytes: new Uint8Array(2 * trits.length) });
      } else if (variant.ternary === "i2_s") {
        tensors.push({ name: `${name}.weight`, dims: [t.cols, t.rows], type: 36, bytes: i2sCodec.encode(trits, t.rows, t.cols, { scale: t.scale }) });
      } else {
        const bytes = tq2_0Codec.encode(trits, t.rows, t.cols, { scale: { kind: "tensor", value: 1 } });
        tensors.push({ name: `${name}.weight`, dims: [t.cols, t.rows], type: 35, bytes });
        const s = t.scale.kind === "tensor" ? t.scale.value : NaN;
        tensors.push({ name: `${name}.scale`, dims: [1], type: 0, bytes: f32(Float32Array.of(s)) });
      }
    }
  });
  return build(
    kv,
    tensors.filter((t) => t.name !== variant.drop),
  );
}

function expectTrits(a: HaloModel, b: HaloModel): void {
  for (let l = 0; l < a.config.numLayers; l++) {
    for (const role of TERNARY_ROLES) {
      const x = a.layers[l]![role];
      const y = b.layers[l]![role];
      const tx = new Int8Array(x.rows * x.cols);
      const ty = new Int8Array(y.rows * y.cols);
      x.decodeRows(0, x.rows, tx);
      y.decodeRows(0, y.rows, ty);
      expect(Buffer.from(ty).equals(Buffer.from(tx))).toBe(true);
      // Row-range reads agree with whole-matrix reads.
      const row = new Int8Array(y.cols);
      y.decodeRows(y.rows - 1, 1, row);
      expect(Buffer.from(row).equals(Buffer.from(tx.subarray((x.rows - 1) * x.cols)))).toBe(true);
    }
  }
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return isHaloError(error) ? error.code : `non-HaloError ${String(error)}`;
  }
  return "none";
}

describe("readGguf", () => {
  const relu2 = synthModel({ shape: "tiny", activation: "relu2", seed: 21 });
  const silu = synthModel({ shape: "tiny", activation: "silu", seed: 22 });

  it("Microsoft bitnet-b1.58 + I2_S: ReLU², tensor scales exactly as stored, Llama-3 stop ids, tied head", () => {
    const model = readGguf(fileFor(relu2, { arch: "bitnet-b1.58", prefix: "bitnet-b1.58", ternary: "i2_s" }));
    expect(model.config).toEqual(relu2.config);
    expect(model.layers[0]!.q.packing).toBe("i2_s");
    for (const role of TERNARY_ROLES) expect(model.layers[1]![role].scale).toEqual(relu2.layers[1]![role].scale);
    expectTrits(relu2, model);
    expect(model.tokenEmbedding.toFloat32()).toEqual(relu2.tokenEmbedding.toFloat32());
    expect(model.layers[0]!.ffnSubNorm.toFloat32()).toEqual(relu2.layers[0]!.ffnSubNorm.toFloat32());
    expect(model.chatTemplate).toBe(relu2.chatTemplate);
    expect(model.tokenizer).toMatchObject({ kind: "gguf", model: "gpt2", pre: null, bosTokenId: relu2.config.bosTokenId });
    expect(model.metadata["general.name"]).toBe("bitnet2b");
    expect(model.source.format).toBe("gguf");
  });

  it("arch bitnet with llama.* keys, TQ2_0 + per-projection .scale tensors: SiLU unless hidden_activation says otherwise", () => {
    const model = readGguf(fileFor(silu, { arch: "bitnet", prefix: "llama", ternary: "tq2_0-with-scale-tensors" }));
    expect(model.config).toEqual(silu.config);
    expectTrits(silu, model);
    const q = model.layers[0]!.q;
    expect(q.scale.kind).toBe("block");
    const expected = silu.layers[0]!.q.scale.kind === "tensor" ? silu.layers[0]!.q.scale.value : NaN;
    if (q.scale.kind === "block") expect(q.scale.values.every((v) => v === expected)).toBe(true);
    const relu = readGguf(fileFor(silu, { arch: "bitnet", prefix: "bitnet", ternary: "tq2_0-with-scale-tensors", activation: "relu2" }));
    expect(relu.config.activation).toBe("relu2");
  });

  it("reads Q6_K and Q4_K embeddings through the K-quant codecs", () => {
    for (const kind of ["q6_k", "q4_k"] as const) {
      const model = readGguf(fileFor(silu, { arch: "bitnet", prefix: "bitnet", ternary: "i2_s", embedding: kind }));
      expect(model.tokenEmbedding.dtype).toBe(kind);
      const values = model.tokenEmbedding.toFloat32();
      expect(values.length).toBe(silu.config.vocabSize * silu.config.hiddenSize);
      expect(values.every((v) => v === kQuantEmbedding(kind, 256).value)).toBe(true);
    }
  });

  it("refuses unknown architectures and activations, missing tensors, float-stored ternary weights", () => {
    const base: Variant = { arch: "bitnet", prefix: "bitnet", ternary: "i2_s" };
    expect(code(() => readGguf(fileFor(silu, { ...base, arch: "llama" })))).toBe("H1B_UNSUPPORTED");
    expect(code(() => readGguf(fileFor(silu, { ...base, activation: "gelu" })))).toBe("H1B_UNSUPPORTED");
    expect(code(() => readGguf(fileFor(silu, { ...base, drop: "blk.1.ffn_sub_norm.weight" })))).toBe("H1B_MISSING_TENSOR");
    expect(code(() => readGguf(fileFor(silu, { ...base, drop: "token_embd.weight" })))).toBe("H1B_MISSING_TENSOR");
    expect(code(() => readGguf(fileFor(silu, { ...base, ternaryAsF16: true })))).toBe("H1B_UNSUPPORTED");
    expect(code(() => readGguf("/nonexistent/model.gguf"))).toBe("H1B_MISSING_FILE");
  });
});
