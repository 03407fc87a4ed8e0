// The LM head: float64 dot products of the final hidden state with every vocabulary row.

/**
 * `logits[t][v] = Σ_h head[v][h] · x[t][h]` with float64 accumulation, float32 results.
 *
 * @example
 * ```ts
 * const logits = lmHeadRows(normed, embedding, 512, 256); // [n][512]
 * ```
 */
export function lmHeadRows(x: Float32Array, head: Float32Array, vocabSize: number, hidden: number, out?: Float32Array): Float32Array {
  const n = x.length / hidden;
  const result = out ?? new Float32Array(n * vocabSize);
  for (let t = 0; t < n; t++) {
    const xBase = t * hidden;
    for (let v = 0; v < vocabSize; v++) {
      const hBase = v * hidden;
      let sum = 0;
      for (let h = 0; h < hidden; h++) sum += head[hBase + h]! * x[xBase + h]!;
      result[t * vocabSize + v] = sum;
    }
  }
  return result;
}
