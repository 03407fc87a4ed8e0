// Round trips of synthetic models through Hugging Face snapshots (packed and bf16, sharded) and every bad input.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "../../synth/synth-model.js";
import { NORM_ROLES, TERNARY_ROLES, type HaloModel, type TernaryTensor } from "../../core/model.js";
import { openSafetensors } from "../safetensors/read-safetensors.js";
import { writeSafetensors, type SafetensorsWriteEntry } from "../safetensors/write-safetensors.js";
import { HF_SCALE_REL_TOLERANCE } from "./absmean-ternarize.js";
import { toGgufTokenizer } from "../../core/tokenizer-payload.js";
import { readHfSnapshot, readHfSnapshotSync } from "./read-hf-snapshot.js";
import { writeHfSnapshot, writeHfSnapshotSync } from "./write-hf-snapshot.js";

const root = mkdtempSync(join(tmpdir(), "halo-hf-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => join(root, `m${counter++}`);

function trits(tensor: TernaryTensor): Int8Array {
  const out = new Int8Array(tensor.rows * tensor.cols);
  tensor.decodeRows(0, tensor.rows, out);
  return out;
}

function scaleOf(tensor: TernaryTensor): number {
  if (tensor.scale.kind !== "tensor") throw new Error("expected a tensor scale");
  return tensor.scale.value;
}

/** Index of the first differing byte of two views, or -1 (vitest's toEqual is slow on big typed arrays). */
function firstDifference(a: ArrayBufferView, b: ArrayBufferView): number {
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.equals(y)) return -1;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return i;
  return Math.min(x.length, y.length);
}

/** Asserts two models carry the same config, trits, scales (within `scaleTolerance`), floats and tokenizer. */
function expectSameModel(actual: HaloModel, expected: HaloModel, scaleTolerance: number): void {
  expect(actual.config).toEqual(expected.config);
  expect(firstDifference(actual.tokenEmbedding.bytes(), expected.tokenEmbedding.bytes())).toBe(-1);
  expect(actual.tokenEmbedding.dtype).toBe(expected.tokenEmbedding.dtype);
  expect(firstDifference(actual.outputNorm.bytes(), expected.outputNorm.bytes())).toBe(-1);
  if (expected.lmHead === null) expect(actual.lmHead).toBeNull();
  else expect(firstDifference(actual.lmHead!.bytes(), expected.lmHead.bytes())).toBe(-1);
  expect(actual.layers.length).toBe(expected.layers.length);
  actual.layers.forEach((layer, l) => {
    const reference = expected.layers[l]!;
    for (const role of NORM_ROLES) expect(firstDifference(layer[role].toFloat32(), reference[role].toFloat32()), `${l}.${role}`).toBe(-1);
    for (const role of TERNARY_ROLES) {
      expect(firstDifference(trits(layer[role]), trits(reference[role])), `${l}.${role}`).toBe(-1);
      const want = scaleOf(reference[role]);
      const relative = Math.abs(scaleOf(layer[role]) - want) / want;
      expect(relative, `${l}.${role} scale`).toBeLessThanOrEqual(scaleTolerance);
    }
  });
  expect(actual.tokenizer).toEqual(expected.tokenizer);
  expect(actual.chatTemplate).toBe(expected.chatTemplate);
}

function codeOf(fn: () => unknown): { code: string; path: string | undefined; message: string } {
  try {
    fn();
  } catch (error) {
    if (isHaloError(error)) return { code: error.code, path: error.path, message: error.message };
    throw error;
  }
  return { code: "no error", path: undefined, message: "" };
}

const variants = [
  { shape: "tiny", activation: "relu2", untiedHead: false },
  { shape: "tiny", activation: "silu", untiedHead: true },
  { shape: "tiny-gqa", activation: "relu2", untiedHead: true },
  { shape: "tiny-gqa", activation: "silu", untiedHead: false },
] as const;

describe("Hugging Face snapshots", () => {
  for (const options of variants) {
    const label = `${options.shape} ${options.activation} ${options.untiedHead ? "untied" : "tied"}`;

    it(`round-trips ${label} through the packed variant`, async () => {
      const model = synthModel({ ...options, seed: 3 });
      const dir = freshDir();
      const { files } = await writeHfSnapshot(model, dir);
      expect(files).toEqual(["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]);
      const back = await readHfSnapshot(dir);
      expect(back.layers[0]!.q.packing).toBe("hf-packed");
      expect(back.metadata["hf.variant"]).toBe("packed");
      expect(back.source).toEqual({ format: "hf-snapshot", version: null, path: dir });
      expectSameModel(back, model, 2 ** -8);
      back.close();
    });

    it(`round-trips ${label} through bf16 master weights (re-ternarised to the same trits)`, async () => {
      const model = synthModel({ ...options, seed: 5 });
      const dir = freshDir();
      await writeHfSnapshot(model, dir, { variant: "bf16" });
      const file = openSafetensors(join(dir, "model.safetensors"));
      expect(file.tensor("model.layers.0.mlp.down_proj.weight")).toMatchObject({
        dtype: "BF16",
        shape: [model.config.hiddenSize, model.config.intermediateSize],
      });
      expect(file.tensors.has("model.layers.0.mlp.down_proj.weight_scale")).toBe(false);
      file.close();
      const back = await readHfSnapshot(dir);
      expect(back.layers[0]!.down.packing).toBe("int8");
      expect(back.metadata["hf.variant"]).toBe("bf16");
      expect(back.metadata["hf.ternarisation"]).toMatch(/FP64/);
      expectSameModel(back, model, HF_SCALE_REL_TOLERANCE);
      back.close();
    });
  }

  it("keeps scales exact with f32 weight_scale, and rewriting a read snapshot is byte-identical", () => {
    const model = synthModel({ shape: "tiny-gqa", seed: 9 });
    const first = freshDir();
    writeHfSnapshotSync(model, first, { scaleDtype: "f32" });
    const back = readHfSnapshotSync(first);
    expectSameModel(back, model, 0);
    const second = freshDir();
    writeHfSnapshotSync(back, second, { scaleDtype: "f32" });
    for (const name of ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
      expect(readFileSync(join(second, name)).equals(readFileSync(join(first, name))), name).toBe(true);
    }
    back.close();
  });

  it("writes and reads sharded snapshots", () => {
    const model = synthModel({ shape: "tiny", seed: 11, untiedHead: true });
    const dir = freshDir();
    const { files } = writeHfSnapshotSync(model, dir, { maxShardBytes: 200_000 });
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    expect(shards.length).toBeGreaterThan(2);
    expect(files).toContain("model.safetensors.index.json");
    expect(existsSync(join(dir, "model.safetensors"))).toBe(false);
    const back = readHfSnapshotSync(dir);
    expectSameModel(back, model, 2 ** -8);
    back.close();
    unlinkSync(join(dir, shards[1]!));
    const error = codeOf(() => readHfSnapshotSync(dir));
    expect(error.code).toBe("H1B_MISSING_FILE");
    expect(error.path).toBe(join(dir, shards[1]!));
  });

  it("maps config.json and generation_config.json like the 2B-4T files", () => {
    const model = synthModel({ shape: "tiny", seed: 1 });
    const dir = freshDir();
    writeHfSnapshotSync(model, dir);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(config).toMatchObject({
      architectures: ["BitNetForCausalLM"],
      model_type: "bitnet",
      hidden_size: 256,
      num_key_value_heads: 2,
      hidden_act: "relu2",
      tie_word_embeddings: true,
      eos_token_id: model.config.eosTokenIds[0],
      quantization_config: { quant_method: "bitnet", linear_class: "autobitlinear", quantization_mode: "offline" },
    });
    expect(config.head_dim).toBeUndefined();
    const generation = JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8"));
    expect(generation.eos_token_id).toEqual([...model.config.eosTokenIds]);
    // Without generation_config.json, config.json's single EOS is used.
    unlinkSync(join(dir, "generation_config.json"));
    const back = readHfSnapshotSync(dir);
    expect(back.config.eosTokenIds).toEqual([model.config.eosTokenIds[0]]);
    expect(back.config.bosTokenId).toBe(model.config.bosTokenId);
    back.close();
    // A generation config holding a single int, and a bos that overrides config.json.
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 7, eos_token_id: 9 }));
    const again = readHfSnapshotSync(dir);
    expect(again.config.bosTokenId).toBe(7);
    expect(again.config.eosTokenIds).toEqual([9]);
    again.close();
  });

  it("reads the chat template from a list in tokenizer_config.json or from chat_template.jinja", () => {
    const dir = freshDir();
    writeHfSnapshotSync(synthModel({ seed: 2 }), dir);
    const path = join(dir, "tokenizer_config.json");
    const config = JSON.parse(readFileSync(path, "utf8"));
    writeFileSync(
      path,
      JSON.stringify({
        ...config,
        chat_template: [
          { name: "tool_use", template: "T" },
          { name: "default", template: "D" },
        ],
      }),
    );
    let model = readHfSnapshotSync(dir);
    expect(model.chatTemplate).toBe("D");
    model.close();
    delete config.chat_template;
    writeFileSync(path, JSON.stringify(config));
    writeFileSync(join(dir, "chat_template.jinja"), "J");
    model = readHfSnapshotSync(dir);
    expect(model.chatTemplate).toBe("J");
    model.close();
  });

  it("converts a GGUF tokenizer payload to tokenizer.json with the same vocabulary and merges", () => {
    const model = synthModel({ seed: 12 });
    const gguf: HaloModel = { ...model, tokenizer: toGgufTokenizer(model.tokenizer!) };
    const dir = freshDir();
    writeHfSnapshotSync(gguf, dir);
    const back = readHfSnapshotSync(dir);
    expect(back.tokenizer?.kind).toBe("hf-json");
    const written = JSON.parse(back.tokenizer!.kind === "hf-json" ? back.tokenizer!.tokenizerJson : "{}");
    const original = JSON.parse(model.tokenizer!.kind === "hf-json" ? model.tokenizer!.tokenizerJson : "{}");
    expect(written.model.vocab).toEqual(original.model.vocab);
    expect(written.model.merges.map(String)).toEqual(original.model.merges.map(String));
    expect(back.chatTemplate).toBe(model.chatTemplate);
    back.close();
  });

  it("derives head_dim when absent and honours an explicit one", () => {
    const dir = freshDir();
    const model = synthModel({ seed: 4 });
    writeHfSnapshotSync(model, dir);
    const path = join(dir, "config.json");
    const config = JSON.parse(readFileSync(path, "utf8"));
    writeFileSync(path, JSON.stringify({ ...config, head_dim: 64 }));
    const back = readHfSnapshotSync(dir);
    expect(back.config.headDim).toBe(64);
    back.close();
    writeFileSync(path, JSON.stringify({ ...config, head_dim: 32 }));
    expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
  });

  describe("refuses bad snapshots", () => {
    const base = freshDir();
    writeHfSnapshotSync(synthModel({ seed: 6 }), base);
    const baseConfig = JSON.parse(readFileSync(join(base, "config.json"), "utf8"));

    /** A copy of the base snapshot with config.json patched. */
    function withConfig(patch: Record<string, unknown>): string {
      const dir = freshDir();
      writeHfSnapshotSync(synthModel({ seed: 6 }), dir);
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...baseConfig, ...patch }));
      return dir;
    }

    /** A copy of the base snapshot with its tensors rewritten through `edit`. */
    function withTensors(edit: (entries: SafetensorsWriteEntry[]) => SafetensorsWriteEntry[]): string {
      const dir = freshDir();
      writeHfSnapshotSync(synthModel({ seed: 6 }), dir);
      const path = join(dir, "model.safetensors");
      const file = openSafetensors(path);
      const entries: SafetensorsWriteEntry[] = [...file.tensors.values()].map((info) => {
        const bytes = file.read(info.name).slice();
        return { name: info.name, dtype: info.dtype, shape: info.shape, chunks: () => [bytes] };
      });
      file.close();
      writeSafetensors(path, edit(entries));
      return dir;
    }

    const configCases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ["another model_type", { model_type: "llama" }, "H1B_UNSUPPORTED", /not a BitNet/],
      ["rope_scaling", { rope_scaling: { type: "linear", factor: 2 } }, "H1B_UNSUPPORTED", /RoPE scaling/],
      ["rope_parameters of another type", { rope_parameters: { rope_type: "yarn", rope_theta: 1 } }, "H1B_UNSUPPORTED", /RoPE scaling/],
      ["attention biases", { attention_bias: true }, "H1B_UNSUPPORTED", /biases/],
      ["an unknown activation", { hidden_act: "gelu" }, "H1B_UNSUPPORTED", /activation/],
      ["the dividing BitLinear class", { quantization_config: { quant_method: "bitnet", linear_class: "bitlinear" } }, "H1B_UNSUPPORTED", /divides/],
      ["a string dimension", { hidden_size: "256" }, "H1B_BAD_METADATA", /hidden_size/],
      ["a missing dimension", { num_hidden_layers: undefined }, "H1B_BAD_METADATA", /num_hidden_layers/],
      ["heads not dividing the width", { num_attention_heads: 3 }, "H1B_BAD_DIMENSION", /num_attention_heads/],
      ["kv heads not dividing heads", { num_key_value_heads: 3 }, "H1B_BAD_DIMENSION", /numKvHeads/],
      ["a bad eos list", { eos_token_id: ["x"] }, "H1B_BAD_METADATA", /eos_token_id/],
      ["a non-boolean tie flag", { tie_word_embeddings: "yes" }, "H1B_BAD_METADATA", /tie_word_embeddings/],
      ["an untied head that is missing", { tie_word_embeddings: false }, "H1B_MISSING_TENSOR", /lm_head/],
    ];
    for (const [name, patch, code, message] of configCases) {
      it(`config with ${name}`, () => {
        const dir = withConfig(patch);
        if (name === "a bad eos list") unlinkSync(join(dir, "generation_config.json"));
        const error = codeOf(() => readHfSnapshotSync(dir));
        expect(error.code).toBe(code);
        expect(error.message).toMatch(message);
      });
    }

    it("config.json that is not JSON, or missing", () => {
      const dir = withConfig({});
      writeFileSync(join(dir, "config.json"), "{");
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_METADATA");
      unlinkSync(join(dir, "config.json"));
      expect(codeOf(() => readHfSnapshotSync(dir))).toMatchObject({ code: "H1B_MISSING_FILE", path: join(dir, "config.json") });
      expect(codeOf(() => readHfSnapshotSync(join(dir, "nope"))).code).toBe("H1B_MISSING_FILE");
    });

    it("no weights at all", () => {
      const dir = withConfig({});
      unlinkSync(join(dir, "model.safetensors"));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_MISSING_FILE");
    });

    it("a bias tensor", () => {
      const dir = withTensors((entries) => [
        ...entries,
        { name: "model.layers.0.self_attn.q_proj.bias", dtype: "BF16", shape: [256], chunks: () => [new Uint8Array(512)] },
      ]);
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_UNSUPPORTED");
    });

    it("a missing weight_scale", () => {
      const dir = withTensors((entries) => entries.filter((e) => e.name !== "model.layers.1.mlp.up_proj.weight_scale"));
      const error = codeOf(() => readHfSnapshotSync(dir));
      expect(error.code).toBe("H1B_MISSING_TENSOR");
      expect(error.message).toMatch(/up_proj.weight_scale/);
    });

    it("a weight_scale stored as uint8 or with two values", () => {
      const name = "model.layers.0.self_attn.k_proj.weight_scale";
      let dir = withTensors((entries) => entries.map((e) => (e.name === name ? { ...e, dtype: "U8", shape: [2], chunks: () => [new Uint8Array(2)] } : e)));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
      dir = withTensors((entries) => entries.map((e) => (e.name === name ? { ...e, shape: [2], chunks: () => [new Uint8Array(4)] } : e)));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
    });

    it("a packed weight of the wrong shape or dtype, and a norm of the wrong length", () => {
      const q = "model.layers.0.self_attn.q_proj.weight";
      let dir = withTensors((entries) => entries.map((e) => (e.name === q ? { ...e, shape: [128, 128] } : e)));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
      dir = withTensors((entries) => entries.map((e) => (e.name === q ? { ...e, dtype: "I8" } : e)));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
      const norm = "model.norm.weight";
      dir = withTensors((entries) => entries.map((e) => (e.name === norm ? { ...e, dtype: "F16", shape: [512] } : e)));
      expect(codeOf(() => readHfSnapshotSync(dir)).code).toBe("H1B_BAD_TENSOR");
    });

    it("master weights with NaN", () => {
      const dir = freshDir();
      writeHfSnapshotSync(synthModel({ seed: 6 }), dir, { variant: "bf16" });
      const path = join(dir, "model.safetensors");
      const file = openSafetensors(path);
      const info = file.tensor("model.layers.0.self_attn.v_proj.weight");
      file.close();
      const bytes = readFileSync(path);
      bytes[info.offset + 1] = 0x7f;
      bytes[info.offset] = 0xc1;
      writeFileSync(path, bytes);
      const model = readHfSnapshotSync(dir);
      expect(codeOf(() => model.layers[0]!.v.scale).code).toBe("H1B_BAD_TENSOR");
      model.close();
    });
  });

  describe("refuses models the format cannot hold", () => {
    it("per-row scales, Hadamard rotation, non-hf tokenizers, tiny scales as bf16 masters", () => {
      const model = synthModel({ seed: 8 });
      const layer = model.layers[0]!;
      const rowScaled: HaloModel = {
        ...model,
        layers: [{ ...layer, q: { ...layer.q, scale: { kind: "row", values: new Float32Array(layer.q.rows) } } }, ...model.layers.slice(1)],
      };
      expect(codeOf(() => writeHfSnapshotSync(rowScaled, freshDir())).code).toBe("H1B_UNSUPPORTED");
      expect(codeOf(() => writeHfSnapshotSync({ ...model, config: { ...model.config, hadamardRotated: true } }, freshDir())).code).toBe("H1B_UNSUPPORTED");
      const sentencepiece: HaloModel = {
        ...model,
        tokenizer: { ...toGgufTokenizer(model.tokenizer!), model: "llama" },
      };
      expect(codeOf(() => writeHfSnapshotSync(sentencepiece, freshDir())).code).not.toBe("no error");
      const tiny: HaloModel = { ...model, layers: [{ ...layer, v: { ...layer.v, scale: { kind: "tensor", value: 1e-8 } } }, ...model.layers.slice(1)] };
      const dir = freshDir();
      expect(codeOf(() => writeHfSnapshotSync(tiny, dir, { variant: "bf16" })).code).toBe("H1B_LOSSY_CONVERSION");
      expect(readdirSync(dir).filter((f) => f.includes("safetensors"))).toEqual([]);
    });

    it("row counts that cannot be packed four to a byte", () => {
      const model = synthModel({
        shape: {
          architecture: "bitnet",
          hiddenSize: 8,
          intermediateSize: 16,
          numLayers: 1,
          numHeads: 4,
          numKvHeads: 1,
          headDim: 2,
          vocabSize: 300,
          maxPositionEmbeddings: 64,
          ropeTheta: 10000,
          rmsNormEps: 1e-5,
          activation: "relu2",
          tiedEmbeddings: true,
          bosTokenId: null,
          eosTokenIds: [],
          hadamardRotated: false,
        },
      });
      expect(codeOf(() => writeHfSnapshotSync(model, freshDir())).code).toBe("H1B_BAD_DIMENSION");
      // The bf16 variant has no such limit.
      const dir = freshDir();
      writeHfSnapshotSync(model, dir, { variant: "bf16" });
      const back = readHfSnapshotSync(dir);
      expectSameModel(back, model, HF_SCALE_REL_TOLERANCE);
      back.close();
    });
  });
});
