// The gated FFN activations: ReLU²(gate)·up (BitNet b1.58-2B-4T) and SiLU(gate)·up (1bitLLM, llama.cpp).

/**
 * `out[i] = act(gate[i]) · up[i]` in float64, stored as float32 (never f16: ReLU² reaches ~1e9).
 * `relu2`: `max(g, 0)²`; `silu`: `g / (1 + e^{−g})`.
 *
 * @example
 * ```ts
 * const m = gatedActivation("relu2", gate, up); // relu(gate)^2 * up
 * ```
 */
export function gatedActivation(
  activation: "relu2" | "silu",
  gate: Float32Array,
  up: Float32Array,
  out: Float32Array = new Float32Array(gate.length),
): Float32Array {
  if (activation === "relu2") {
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i]! > 0 ? gate[i]! : 0;
      out[i] = g * g * up[i]!;
    }
  } else {
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i]!;
      out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
    }
  }
  return out;
}
