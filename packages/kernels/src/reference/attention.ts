// GQA causal attention in float64: single pass, and split-KV tiles merged by log-sum-exp (flash decoding).

/** Where one query reads: its row, the keys/values of its sequence and the shapes. */
export interface AttentionShape {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/**
 * Attention of one query row over keys `0 … lastPosition`: for head `h` (KV head
 * `floor(h / (numHeads / numKvHeads))`), `softmax(q·kᵀ / √headDim) · V`, with scores, exponentials,
 * sums and the weighted sum in float64. `tileSize > 0` computes per tile `(o, m, l)` (unnormalised
 * output, running max, sum of exponentials) and merges tiles in order:
 * `M = max(m, mₜ)`, `l = l·e^{m−M} + lₜ·e^{mₜ−M}`, `o = o·e^{m−M} + oₜ·e^{mₜ−M}`, then `o / l`.
 * Writes `[numHeads·headDim]` float32 into `out` at `outOffset`.
 *
 * @example
 * ```ts
 * attendRow(shape, q, 0, keys, values, 9, 0, out, 0);   // single pass over 10 positions
 * attendRow(shape, q, 0, keys, values, 9, 4, out2, 0);  // tiles of 4 positions
 * ```
 */
export function attendRow(
  shape: AttentionShape,
  queries: Float32Array,
  queryOffset: number,
  keys: Float32Array,
  values: Float32Array,
  lastPosition: number,
  tileSize: number,
  out: Float32Array,
  outOffset: number,
): void {
  const { numHeads, numKvHeads, headDim } = shape;
  const group = numHeads / numKvHeads;
  const kvWidth = numKvHeads * headDim;
  const length = lastPosition + 1;
  const tile = tileSize > 0 ? tileSize : length;
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(Math.min(tile, length));
  const acc = new Float64Array(headDim);
  const tileAcc = new Float64Array(headDim);
  for (let h = 0; h < numHeads; h++) {
    const qBase = queryOffset + h * headDim;
    const kvBase = Math.floor(h / group) * headDim;
    let m = -Infinity;
    let l = 0;
    acc.fill(0);
    for (let start = 0; start < length; start += tile) {
      const end = Math.min(start + tile, length);
      let tileMax = -Infinity;
      for (let p = start; p < end; p++) {
        const kBase = p * kvWidth + kvBase;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += queries[qBase + d]! * keys[kBase + d]!;
        const s = dot * scale;
        scores[p - start] = s;
        if (s > tileMax) tileMax = s;
      }
      let tileSum = 0;
      tileAcc.fill(0);
      for (let p = start; p < end; p++) {
        const w = Math.exp(scores[p - start]! - tileMax);
        tileSum += w;
        const vBase = p * kvWidth + kvBase;
        for (let d = 0; d < headDim; d++) tileAcc[d]! += w * values[vBase + d]!;
      }
      if (start === 0) {
        m = tileMax;
        l = tileSum;
        acc.set(tileAcc);
      } else {
        const merged = Math.max(m, tileMax);
        const alpha = Math.exp(m - merged);
        const beta = Math.exp(tileMax - merged);
        l = l * alpha + tileSum * beta;
        for (let d = 0; d < headDim; d++) acc[d] = acc[d]! * alpha + tileAcc[d]! * beta;
        m = merged;
      }
    }
    const o = outOffset + h * headDim;
    for (let d = 0; d < headDim; d++) out[o + d] = acc[d]! / l;
  }
}
