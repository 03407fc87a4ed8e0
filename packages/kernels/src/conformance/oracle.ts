// Independent, deliberately naive implementations of each op (float64, no shared code with the reference backend).
import type { ModelWeights, WeightsTernaryTensor } from "../contract/weights.js";

function rint(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** RMSNorm of each row of `x [n][d]`. */
export function oracleRmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float64Array {
  const d = weight.length;
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    const row = Array.from(x.subarray(r * d, (r + 1) * d));
    const meanSquare = row.reduce((acc, v) => acc + v * v, 0) / d;
    const scale = 1 / Math.sqrt(meanSquare + eps);
    row.forEach((v, i) => (out[r * d + i] = v * scale * weight[i]!));
  }
  return out;
}

/** Per-token absmax int8: codes and `s` per row. */
export function oraclePerToken(x: Float32Array, width: number): { codes: Int8Array; scales: Float32Array } {
  const n = x.length / width;
  const codes = new Int8Array(x.length);
  const scales = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    const row = x.subarray(r * width, (r + 1) * width);
    const absmax = Math.max(Math.fround(1e-5), ...Array.from(row, Math.abs));
    const s = Math.fround(127 / absmax);
    scales[r] = s;
    row.forEach((v, i) => (codes[r * width + i] = Math.min(127, Math.max(-128, rint(v * s)))));
  }
  return { codes, scales };
}

/** ggml Q8_K: codes and `d` per 256-block. */
export function oracleQ8K(x: Float32Array): { codes: Int8Array; scales: Float32Array } {
  const blocks = x.length / 256;
  const codes = new Int8Array(x.length);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const block = Array.from(x.subarray(b * 256, (b + 1) * 256));
    let signedMax = 0;
    for (const v of block) if (Math.abs(v) > Math.abs(signedMax)) signedMax = v;
    if (signedMax === 0) continue;
    const iscale = Math.fround(-127 / signedMax);
    block.forEach((v, i) => (codes[b * 256 + i] = Math.min(127, rint(Math.fround(iscale * v)))));
    scales[b] = Math.fround(1 / iscale);
  }
  return { codes, scales };
}

/** Dequantised activations x̂ (q / s per token, or q · d per block). */
export function oracleDequantized(x: Float32Array, width: number, scheme: "per-token" | "q8k-block"): Float64Array {
  const out = new Float64Array(x.length);
  if (scheme === "per-token") {
    const { codes, scales } = oraclePerToken(x, width);
    codes.forEach((q, i) => (out[i] = q / scales[Math.floor(i / width)]!));
  } else {
    const { codes, scales } = oracleQ8K(x);
    codes.forEach((q, i) => (out[i] = q * scales[Math.floor(i / 256)]!));
  }
  return out;
}

/** A dense float64 weight from trits and any scale kind. */
export function oracleDenseTernary(
  trits: Int8Array,
  rows: number,
  cols: number,
  scale: { kind: "tensor"; value: number } | { kind: "row"; values: Float32Array } | { kind: "block"; blockSize: number; values: Float32Array },
): Float64Array {
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = scale.kind === "tensor" ? scale.value : scale.kind === "row" ? scale.values[r]! : scale.values[Math.floor((r * cols + c) / scale.blockSize)]!;
      w[r * cols + c] = trits[r * cols + c]! * s;
    }
  }
  return w;
}

/** `y = x̂ · Wᵀ` and the magnitude bound `Σ |W| · |x̂|` of each output. */
export function oracleMatmul(w: Float64Array, rows: number, cols: number, xHat: Float64Array): { y: Float64Array; bound: Float64Array } {
  const n = xHat.length / cols;
  const y = new Float64Array(n * rows);
  const bound = new Float64Array(n * rows);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      let mag = 0;
      for (let c = 0; c < cols; c++) {
        sum += w[r * cols + c]! * xHat[t * cols + c]!;
        mag += Math.abs(w[r * cols + c]! * xHat[t * cols + c]!);
      }
      y[t * rows + r] = sum;
      bound[t * rows + r] = mag;
    }
  }
  return { y, bound };
}

/** NeoX RoPE, computed with an explicit rotation per pair. */
export function oracleRope(x: Float32Array, positions: Int32Array, numHeads: number, headDim: number, theta: number): Float64Array {
  const out = Float64Array.from(x);
  const half = headDim / 2;
  positions.forEach((p, t) => {
    for (let h = 0; h < numHeads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = p / Math.pow(theta, (2 * i) / headDim);
        const a = x[t * numHeads * headDim + h * headDim + i]!;
        const b = x[t * numHeads * headDim + h * headDim + i + half]!;
        out[t * numHeads * headDim + h * headDim + i] = a * Math.cos(angle) - b * Math.sin(angle);
        out[t * numHeads * headDim + h * headDim + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  });
  return out;
}

/** Textbook causal GQA attention: full softmax per head. */
export function oracleAttention(
  queries: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  queryPositions: Int32Array,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
): Float64Array {
  const out = new Float64Array(queries.length);
  const perKv = numHeads / numKvHeads;
  queryPositions.forEach((last, t) => {
    for (let h = 0; h < numHeads; h++) {
      const kvHead = Math.floor(h / perKv);
      const scores: number[] = [];
      for (let p = 0; p <= last; p++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += queries[t * numHeads * headDim + h * headDim + d]! * keys[(p * numKvHeads + kvHead) * headDim + d]!;
        scores.push(dot / Math.sqrt(headDim));
      }
      const max = Math.max(...scores);
      const weights = scores.map((s) => Math.exp(s - max));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        weights.forEach((w, p) => (acc += (w / total) * values[(p * numKvHeads + kvHead) * headDim + d]!));
        out[t * numHeads * headDim + h * headDim + d] = acc;
      }
    }
  });
  return out;
}

/**
 * Logits and residual stream of a whole model from the {@link oracleRmsNorm}-style naive ops above: float64 arithmetic,
 * every op's output rounded to float32 where the contract stores it (as a backend stores activations), an f32 KV cache.
 */
export interface OracleForward {
  /** `[n][vocab]` logits of every position. */
  readonly logits: Float32Array;
  /** `[n][hidden]` residual stream after the last layer, before the output norm. */
  readonly hidden: Float32Array;
}

/** A weight as the naive matmul wants it: dense float64 `[rows][cols]`. */
function denseOf(tensor: WeightsTernaryTensor): Float64Array {
  const trits = new Int8Array(tensor.rows * tensor.cols);
  tensor.decodeRows(0, tensor.rows, trits);
  return oracleDenseTernary(trits, tensor.rows, tensor.cols, tensor.scale);
}

/** `x̂ · Wᵀ` of float32 activations under the activation quantiser, rounded to float32. */
function oracleLinear(w: Float64Array, rows: number, cols: number, x: Float32Array, scheme: "per-token" | "q8k-block"): Float32Array {
  return Float32Array.from(oracleMatmul(w, rows, cols, oracleDequantized(x, cols, scheme)).y);
}

/**
 * The whole-model oracle: one sequence of `tokens` at positions `0 … n−1` through a BitNet model (attention norm,
 * quantised q/k/v, NeoX RoPE, causal GQA, sub-norm, quantised o; FFN norm, quantised gate/up, ReLU²·up or SiLU·up,
 * sub-norm, quantised down; output norm, float head) written from the model's definition with the naive ops of this
 * file and no code of the reference backend. Every position's logits and residual stream, as a backend would give
 * them with an f32 KV cache. Slow (dense float64 weights, no cache): for the suite's tiny models only.
 *
 * @example
 * ```ts
 * const { logits } = oracleForward(weights, [5, 9, 11], "per-token");
 * ```
 */
export function oracleForward(weights: ModelWeights, tokens: readonly number[], scheme: "per-token" | "q8k-block"): OracleForward {
  const c = weights.config;
  const n = tokens.length;
  const h = c.hiddenSize;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const f = c.intermediateSize;
  const embedding = weights.tokenEmbedding.toFloat32();
  const positions = Int32Array.from(tokens, (_, i) => i);
  const x = new Float32Array(n * h);
  tokens.forEach((token, t) => x.set(embedding.subarray(token * h, (token + 1) * h), t * h));
  const norm = (v: Float32Array, weight: Float32Array): Float32Array => Float32Array.from(oracleRmsNorm(v, weight, c.rmsNormEps));
  const addInto = (target: Float32Array, delta: Float32Array): void => target.forEach((v, i) => (target[i] = v + delta[i]!));
  for (const layer of weights.layers) {
    const a = norm(x, layer.attnNorm.toFloat32());
    const q = Float32Array.from(oracleRope(oracleLinear(denseOf(layer.q), qd, h, a, scheme), positions, c.numHeads, c.headDim, c.ropeTheta));
    const k = Float32Array.from(oracleRope(oracleLinear(denseOf(layer.k), kvd, h, a, scheme), positions, c.numKvHeads, c.headDim, c.ropeTheta));
    const v = oracleLinear(denseOf(layer.v), kvd, h, a, scheme);
    const attended = Float32Array.from(oracleAttention(q, k, v, positions, c.numHeads, c.numKvHeads, c.headDim));
    addInto(x, oracleLinear(denseOf(layer.o), h, qd, norm(attended, layer.attnSubNorm.toFloat32()), scheme));
    const b = norm(x, layer.ffnNorm.toFloat32());
    const gate = oracleLinear(denseOf(layer.gate), f, h, b, scheme);
    const up = oracleLinear(denseOf(layer.up), f, h, b, scheme);
    const mixed = Float32Array.from(gate, (g, i) => (c.activation === "silu" ? g / (1 + Math.exp(-g)) : Math.max(g, 0) ** 2) * up[i]!);
    addInto(x, oracleLinear(denseOf(layer.down), h, f, norm(mixed, layer.ffnSubNorm.toFloat32()), scheme));
  }
  const head = (weights.lmHead ?? weights.tokenEmbedding).toFloat32();
  const final = norm(x, weights.outputNorm.toFloat32());
  return { logits: oracleHead(final, head, c.vocabSize), hidden: x };
}

/** The LM head in float64: `[n][vocab]` dot products of the rows of `x` with the rows of `head`, rounded to float32. */
export function oracleHead(x: Float32Array, head: Float32Array, vocab: number): Float32Array {
  const hidden = head.length / vocab;
  const out = new Float32Array((x.length / hidden) * vocab);
  for (let t = 0; t < x.length / hidden; t++) {
    for (let v = 0; v < vocab; v++) {
      let sum = 0;
      for (let i = 0; i < hidden; i++) sum += head[v * hidden + i]! * x[t * hidden + i]!;
      out[t * vocab + v] = sum;
    }
  }
  return out;
}
