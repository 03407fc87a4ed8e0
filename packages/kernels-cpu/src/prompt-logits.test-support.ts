// Test support (not exported from the package): the logits of every position of one prompt step.
import type { LoadedModel } from "@halo/kernels";

/** Runs `tokens` as one prompt in a fresh sequence slot and returns every position's logits (`[n][vocab]`). */
export async function promptLogits(model: LoadedModel, tokens: readonly number[]): Promise<Float32Array> {
  const slot = model.allocateSequence();
  try {
    return await model.step({
      tokens: Int32Array.from(tokens),
      positions: Int32Array.from(tokens, (_, i) => i),
      slots: new Int32Array(tokens.length).fill(slot),
      logitRows: Int32Array.from(tokens, (_, i) => i),
    });
  } finally {
    model.freeSequence(slot);
  }
}
