// Tests of config.json mapping: the 2B-4T config, toHfConfig round trips, and fuzzed configs (HaloErrors only).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { shapeConfig } from "../../core/config.js";
import { parseHfConfig, toHfConfig, toHfGenerationConfig } from "./hf-config.js";

/** config.json of microsoft/bitnet-b1.58-2B-4T (research/formats-and-peers.md §1.1). */
const BITNET_2B_CONFIG = {
  architectures: ["BitNetForCausalLM"],
  model_type: "bitnet",
  hidden_size: 2560,
  intermediate_size: 6912,
  num_hidden_layers: 30,
  num_attention_heads: 20,
  num_key_value_heads: 5,
  vocab_size: 128256,
  rope_theta: 500000.0,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 4096,
  tie_word_embeddings: true,
  hidden_act: "relu2",
  bos_token_id: 128000,
  eos_token_id: 128001,
  torch_dtype: "bfloat16",
  attention_bias: false,
  quantization_config: { quant_method: "bitnet", linear_class: "autobitlinear", quantization_mode: "offline" },
};

describe("config.json mapping", () => {
  it("maps the 2B-4T config to the bitnet-2b-4t shape", () => {
    const config = parseHfConfig(BITNET_2B_CONFIG, { bos_token_id: 128000, eos_token_id: [128001, 128009] }, "config.json");
    expect(config).toEqual(shapeConfig("bitnet-2b-4t", "relu2"));
  });

  it("round-trips every shape and activation through toHfConfig", () => {
    for (const shape of ["tiny", "tiny-gqa", "bitnet-2b-4t"] as const) {
      for (const activation of ["relu2", "silu"] as const) {
        for (const tied of [true, false]) {
          const config = { ...shapeConfig(shape, activation), tiedEmbeddings: tied };
          expect(parseHfConfig(toHfConfig(config, "packed"), toHfGenerationConfig(config), "c")).toEqual(config);
        }
      }
    }
  });

  it("throws only HaloErrors for fuzzed configs", () => {
    const value = fc.oneof(
      fc.integer({ min: -5, max: 5000 }),
      fc.double(),
      fc.string({ maxLength: 6 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.integer({ min: -1, max: 300 }), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom("rope_type", "rope_theta", "linear_class", "quant_method"), fc.oneof(fc.string({ maxLength: 6 }), fc.integer())),
    );
    const keys = Object.keys(BITNET_2B_CONFIG).concat(["head_dim", "rope_scaling", "rope_parameters", "mlp_bias"]);
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 5 }),
        fc.option(fc.dictionary(fc.constantFrom("bos_token_id", "eos_token_id"), value)),
        (patch, generation) => {
          try {
            parseHfConfig({ ...BITNET_2B_CONFIG, ...patch }, generation, "config.json");
          } catch (error) {
            if (!isHaloError(error)) throw error;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
