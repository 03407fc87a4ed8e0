// Medusa heads: from the target's last hidden state, one small residual block per future position, through the LM head.
import { HaloError } from "@halo/errors";
import type { Draft, DraftRequest, Drafter, DrafterSequence } from "./drafter.js";
import { SpeculativeErrorCode } from "./errors.js";

/** One Medusa head: `u = n + W_out · SiLU(W_in · n)` over the normed hidden state `n`. */
export interface MedusaHeadWeights {
  /** `[hidden × hidden]` row-major (output-major: row `o` is output `o`'s weights). */
  readonly wIn: Float32Array;
  /** `[hidden × hidden]` row-major. */
  readonly wOut: Float32Array;
}

/**
 * What Medusa drafting needs: its heads, and the target model's output norm and LM head (the
 * heads share the target's head, as MedusaBitNet and the seed's `.h1b-medusa` files define).
 */
export interface MedusaWeights {
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly heads: readonly MedusaHeadWeights[];
  /** The target's output RMSNorm weight, `[hidden]`. */
  readonly outputNorm: Float32Array;
  /** The target's RMSNorm epsilon. */
  readonly normEps: number;
  /** The target's LM head `[vocab × hidden]`: float32, or IEEE half bits (`Uint16Array`, as the files store it). */
  readonly lmHead: Float32Array | Uint16Array;
  /** Where the heads came from, for the label. */
  readonly source?: string;
}

/**
 * Medusa drafting (Cai et al. 2024): head `i` maps the target's final hidden state at the row that
 * predicted the last token to a guess of the token `i + 1` places after it, through the target's
 * own LM head — all heads from one hidden state, no extra forward pass of the model. The hidden
 * state arrives through contract 2's `hiddenRows` (before the output norm, which is applied here).
 * Runs in TypeScript on the host: head `i` costs `2·hidden² + vocab·hidden` multiply-adds, so the
 * policy weighs it against the step it saves (cheap for small models, not for a 128k vocabulary).
 *
 * @throws HaloError `SPECULATIVE_DRAFTER_MISMATCH` when a tensor's size does not match the shape.
 * @example
 * ```ts
 * const drafter = createMedusaDrafter({ hiddenSize, vocabSize, heads, outputNorm, normEps: 1e-5, lmHead });
 * const { tokens } = drafter.openSequence().draft({ context, maxTokens: 4, hidden }) as Draft;
 * ```
 */
export function createMedusaDrafter(weights: MedusaWeights): Drafter {
  checkWeights(weights);
  const state = new MedusaCompute(weights);
  return {
    kind: "medusa",
    label: `medusa ${weights.heads.length} heads${weights.source !== undefined ? ` (${weights.source})` : ""}`,
    needsHidden: true,
    maxDraftTokens: weights.heads.length,
    openSequence: (): DrafterSequence => ({
      draft: (request) => state.draft(request),
      close: () => undefined,
    }),
    dispose: () => undefined,
  };
}

function mismatch(field: string, expected: string, actual: number | string): HaloError {
  return new HaloError(SpeculativeErrorCode.SPECULATIVE_DRAFTER_MISMATCH, "the Medusa heads do not fit the model", {
    field,
    expected,
    actual,
    hint: "Use Medusa heads trained for this model (same hidden size and vocabulary)",
  });
}

function checkWeights(w: MedusaWeights): void {
  const { hiddenSize: h, vocabSize: v } = w;
  if (!Number.isInteger(h) || h < 1) throw mismatch("hiddenSize", "a positive integer", h);
  if (!Number.isInteger(v) || v < 1) throw mismatch("vocabSize", "a positive integer", v);
  if (w.heads.length < 1) throw mismatch("heads", "at least one head", 0);
  w.heads.forEach((head, i) => {
    if (head.wIn.length !== h * h) throw mismatch(`heads[${i}].wIn`, `${h}×${h} floats`, head.wIn.length);
    if (head.wOut.length !== h * h) throw mismatch(`heads[${i}].wOut`, `${h}×${h} floats`, head.wOut.length);
  });
  if (w.outputNorm.length !== h) throw mismatch("outputNorm", `${h} floats`, w.outputNorm.length);
  if (w.lmHead.length !== v * h) throw mismatch("lmHead", `${v}×${h} values`, w.lmHead.length);
  if (!(w.normEps > 0)) throw mismatch("normEps", "a positive number", w.normEps);
}

let halfTable: Float32Array | null = null;

/** float32 value of every IEEE half bit pattern. */
function halves(): Float32Array {
  if (halfTable !== null) return halfTable;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[bits] = mantissa === 0 ? sign * Infinity : NaN;
    else table[bits] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

class MedusaCompute {
  private readonly normed: Float32Array;
  private readonly inner: Float32Array;
  private readonly out: Float32Array;

  constructor(private readonly w: MedusaWeights) {
    this.normed = new Float32Array(w.hiddenSize);
    this.inner = new Float32Array(w.hiddenSize);
    this.out = new Float32Array(w.hiddenSize);
  }

  draft(request: DraftRequest): Draft {
    const h = request.hidden;
    if (h === null || h.length !== this.w.hiddenSize) {
      throw mismatch("hidden", `the target's final hidden state (${this.w.hiddenSize} floats)`, h === null ? "none" : h.length);
    }
    const count = Math.min(request.maxTokens, this.w.heads.length);
    this.norm(h);
    const tokens: number[] = [];
    for (let i = 0; i < count; i++) tokens.push(this.head(i));
    return { tokens };
  }

  /** RMSNorm with the target's output-norm weight, in float64 accumulation as the reference backend. */
  private norm(h: Float32Array): void {
    let sum = 0;
    for (let i = 0; i < h.length; i++) sum += h[i]! * h[i]!;
    const scale = 1 / Math.sqrt(sum / h.length + this.w.normEps);
    for (let i = 0; i < h.length; i++) this.normed[i] = h[i]! * scale * this.w.outputNorm[i]!;
  }

  /** Head i's greedy token (lowest id on ties). */
  private head(i: number): number {
    const { wIn, wOut } = this.w.heads[i]!;
    const n = this.w.hiddenSize;
    matVec(wIn, this.normed, this.inner, n, n);
    for (let j = 0; j < n; j++) {
      const x = this.inner[j]!;
      this.inner[j] = x / (1 + Math.exp(-x));
    }
    matVec(wOut, this.inner, this.out, n, n);
    for (let j = 0; j < n; j++) this.out[j]! += this.normed[j]!;
    return argmaxOfHead(this.w.lmHead, this.out, this.w.vocabSize, n);
  }
}

function matVec(w: Float32Array, x: Float32Array, y: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc += w[base + c]! * x[c]!;
    y[r] = acc;
  }
}

function argmaxOfHead(head: Float32Array | Uint16Array, x: Float32Array, vocab: number, n: number): number {
  let best = -1;
  let bestValue = -Infinity;
  const table = head instanceof Uint16Array ? halves() : null;
  for (let r = 0; r < vocab; r++) {
    let acc = 0;
    const base = r * n;
    if (table !== null) for (let c = 0; c < n; c++) acc += table[head[base + c]!]! * x[c]!;
    else for (let c = 0; c < n; c++) acc += (head as Float32Array)[base + c]! * x[c]!;
    if (acc > bestValue) {
      bestValue = acc;
      best = r;
    }
  }
  return Math.max(best, 0);
}
