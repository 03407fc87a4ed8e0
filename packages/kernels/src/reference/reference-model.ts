// The reference backend's LoadedModel: the BitNet b1.58 forward pass over a batch, op by op, in plain TypeScript.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { LoadedModel, ResolvedLoadOptions, SequenceState, StepBatch, StepResult } from "../contract/loaded-model.js";
import type { WeightsConfig } from "../contract/weights.js";
import { requireLogitsOnly, validateBatch } from "../contract/validate-batch.js";
import { deriveOutputs } from "../contract/forward.js";
import { validateSequenceState } from "../contract/validate-sequence-state.js";
import { KvCache } from "./kv-cache.js";
import { rmsNormRows } from "./rms-norm.js";
import { quantizeActivations } from "./quantize.js";
import { ternaryMatmulQuantized, type DecodedTernary } from "./ternary-matmul.js";
import { applyRope, ropeAngles, type RopeAngleMode } from "./rope.js";
import { attendRow } from "./attention.js";
import { gatedActivation } from "./ffn-activation.js";
import { lmHeadRows } from "./lm-head.js";

/** Weights in the reference backend's layout: float32 norms and embeddings, int8 trits. */
export interface ReferenceLayer {
  readonly attnNorm: Float32Array;
  readonly attnSubNorm: Float32Array;
  readonly ffnNorm: Float32Array;
  readonly ffnSubNorm: Float32Array;
  readonly q: DecodedTernary;
  readonly k: DecodedTernary;
  readonly v: DecodedTernary;
  readonly o: DecodedTernary;
  readonly gate: DecodedTernary;
  readonly up: DecodedTernary;
  readonly down: DecodedTernary;
}

/** Everything the reference forward pass reads. */
export interface ReferenceWeights {
  /** `[vocab][hidden]` */
  readonly embedding: Float32Array;
  /** `[hidden]` */
  readonly outputNorm: Float32Array;
  /** `[vocab][hidden]` (the embedding itself when tied) */
  readonly head: Float32Array;
  readonly layers: readonly ReferenceLayer[];
}

/** Options of the reference forward pass that are not part of the contract. */
export interface ReferenceModelOptions {
  /** Split-KV attention tile in positions; 0 = single pass. */
  readonly splitKvTile: number;
  readonly maxBatchTokens: number;
  /** How RoPE angles are computed. */
  readonly ropeAngles: RopeAngleMode;
}

/**
 * A model held by the reference backend. Created by `referenceBackend().loadModel(...)`.
 *
 * @example
 * ```ts
 * const model = await referenceBackend().loadModel(weights, { contextLength: 128 });
 * ```
 */
export class ReferenceLoadedModel implements LoadedModel {
  readonly config: WeightsConfig;
  readonly options: ResolvedLoadOptions;
  private weights: ReferenceWeights | null;
  private readonly cache: KvCache;
  private readonly angles: (position: number, cosSin: Float64Array) => void;
  private readonly modelOptions: ReferenceModelOptions;

  constructor(config: WeightsConfig, options: ResolvedLoadOptions, weights: ReferenceWeights, modelOptions: ReferenceModelOptions) {
    this.config = config;
    this.options = options;
    this.weights = weights;
    this.modelOptions = modelOptions;
    this.cache = new KvCache(
      config.numLayers,
      options.contextLength,
      config.numKvHeads * config.headDim,
      options.maxSequences,
      options.kvDtype,
      config.headDim,
    );
    this.angles = ropeAngles(modelOptions.ropeAngles, config.headDim, config.ropeTheta);
  }

  private live(): ReferenceWeights {
    if (this.weights === null) {
      throw new HaloError(KernelsErrorCode.KERNELS_DISPOSED, "the model was disposed", { hint: "Load the model again" });
    }
    return this.weights;
  }

  private slotCache(slot: number, field: string) {
    const cache = this.cache.get(slot);
    if (cache === undefined) {
      throw new HaloError(KernelsErrorCode.KERNELS_UNKNOWN_SLOT, "slot is not allocated", {
        field,
        actual: slot,
        hint: "Call allocateSequence() and use the id it returns",
      });
    }
    return cache;
  }

  allocateSequence(): number {
    this.live();
    const slot = this.cache.allocate();
    if (slot < 0) {
      throw new HaloError(KernelsErrorCode.KERNELS_NO_FREE_SLOT, "all sequence slots are in use", {
        expected: `at most ${this.options.maxSequences} live sequences`,
        actual: this.options.maxSequences + 1,
        hint: "Free a finished sequence, or load with a larger maxSequences",
      });
    }
    return slot;
  }

  freeSequence(slot: number): void {
    this.live();
    this.slotCache(slot, "slot");
    this.cache.free(slot);
  }

  truncateSequence(slot: number, length: number): void {
    this.live();
    const cache = this.slotCache(slot, "slot");
    if (!Number.isSafeInteger(length) || length < 0 || length > cache.length) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_POSITION, "truncation length outside the sequence", {
        field: "length",
        expected: `a whole number in [0, ${cache.length}]`,
        actual: length,
      });
    }
    cache.length = length;
  }

  sequenceLength(slot: number): number {
    this.live();
    return this.slotCache(slot, "slot").length;
  }

  async step(batch: StepBatch): Promise<Float32Array> {
    return this.stepSync(batch);
  }

  /** {@link step}, synchronously (the reference blocks the thread it runs on). Logits only. */
  stepSync(batch: StepBatch): Float32Array {
    requireLogitsOnly(batch);
    return this.run(batch).logits;
  }

  /**
   * The step with contract-2 outputs: logits, or the argmax / top-k of the logits as
   * `argmaxRows` / `topKRows` define them, plus the hidden states of `hiddenRows`.
   */
  async forward(batch: StepBatch): Promise<StepResult> {
    return this.forwardSync(batch);
  }

  /** {@link forward}, synchronously. */
  forwardSync(batch: StepBatch): StepResult {
    const { logits, hidden } = this.run(batch);
    const result = deriveOutputs(logits, batch.logitRows.length, this.config.vocabSize, batch.output, batch.topK);
    return hidden === undefined ? result : { ...result, hidden };
  }

  /**
   * Makes `to` an exact copy of `from` (length and every cached position). `from === to` is
   * allowed and changes nothing. Asynchronous by the contract; the reference copies at once (its
   * steps run on the calling thread, so none is ever in flight).
   */
  async copySequence(from: number, to: number): Promise<void> {
    this.live();
    const source = this.slotCache(from, "from");
    const target = this.slotCache(to, "to");
    this.cache.copy(source, target);
  }

  /** A copy of a slot's KV as float32 rows (the values its cache holds, already rounded through the KV dtype). */
  async exportSequence(slot: number): Promise<SequenceState> {
    this.live();
    const cache = this.slotCache(slot, "slot");
    const { keys, values } = this.cache.exportRows(cache);
    return { length: cache.length, numLayers: this.config.numLayers, numKvHeads: this.config.numKvHeads, headDim: this.config.headDim, keys, values };
  }

  /**
   * Allocates a slot holding `state`, each row written through the KV dtype exactly as a step writes
   * it. Everything is checked before a slot is taken; non-finite keys or values are refused
   * (`KERNELS_BAD_ARGUMENT`), since no step of finite weights writes them.
   */
  async importSequence(state: SequenceState): Promise<number> {
    this.live();
    validateSequenceState(state, this.config, this.options.contextLength);
    const slot = this.allocateSequence();
    this.cache.importRows(this.cache.get(slot)!, state.length, state.keys, state.values);
    return slot;
  }

  /**
   * The forward pass of a validated batch: every row through every layer (appending its keys and
   * values), then the output norm and head for `logitRows`, and the residual stream of `hiddenRows`.
   */
  private run(batch: StepBatch): { logits: Float32Array; hidden: Float32Array | undefined } {
    const weights = this.live();
    validateBatch(batch, {
      vocabSize: this.config.vocabSize,
      contextLength: this.options.contextLength,
      maxBatchTokens: this.modelOptions.maxBatchTokens,
      sequenceLength: (slot) => this.cache.get(slot)?.length,
    });
    const c = this.config;
    const { tokens, positions, slots, logitRows } = batch;
    const n = tokens.length;
    const hidden = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const scheme = this.options.activationQuant;
    const perToken = scheme === "per-token";
    const eps = c.rmsNormEps;
    const activation = c.activation === "silu" ? "silu" : "relu2";

    // [n][hidden] residual stream, float32
    const x = new Float32Array(n * hidden);
    for (let t = 0; t < n; t++) x.set(weights.embedding.subarray(tokens[t]! * hidden, (tokens[t]! + 1) * hidden), t * hidden);
    const caches = Array.from(slots, (slot) => this.cache.get(slot)!);
    const normed = new Float32Array(n * hidden);
    const attnOut = new Float32Array(n * qDim); // [n][numHeads·headDim]
    const attnNormed = new Float32Array(n * qDim);
    const residualDelta = new Float32Array(n * hidden);

    for (let l = 0; l < c.numLayers; l++) {
      const layer = weights.layers[l]!;
      // Attention block: norm → quantise once → q, k, v → RoPE → cache → attention → sub-norm → quantise → o.
      rmsNormRows(x, layer.attnNorm, eps, normed);
      const qa = quantizeActivations(normed, hidden, scheme);
      const q = ternaryMatmulQuantized(layer.q, qa, perToken); // [n][qDim]
      const k = ternaryMatmulQuantized(layer.k, qa, perToken); // [n][kvDim]
      const v = ternaryMatmulQuantized(layer.v, qa, perToken); // [n][kvDim]
      applyRope(q, positions, c.numHeads, c.headDim, this.angles);
      applyRope(k, positions, c.numKvHeads, c.headDim, this.angles);
      for (let t = 0; t < n; t++) this.cache.write(caches[t]!, l, positions[t]!, k, t * kvDim, v, t * kvDim);
      for (let t = 0; t < n; t++) {
        const view = this.cache.layerView(caches[t]!, l, positions[t]! + 1);
        attendRow(c, q, t * qDim, view.keys, view.values, positions[t]!, this.modelOptions.splitKvTile, attnOut, t * qDim);
      }
      rmsNormRows(attnOut, layer.attnSubNorm, eps, attnNormed);
      ternaryMatmulQuantized(layer.o, quantizeActivations(attnNormed, qDim, scheme), perToken, residualDelta);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + residualDelta[i]!;

      // FFN block: norm → quantise once → gate, up → act(gate)·up → sub-norm → quantise → down.
      rmsNormRows(x, layer.ffnNorm, eps, normed);
      const fa = quantizeActivations(normed, hidden, scheme);
      const gate = ternaryMatmulQuantized(layer.gate, fa, perToken); // [n][intermediate]
      const up = ternaryMatmulQuantized(layer.up, fa, perToken);
      const mixed = gatedActivation(activation, gate, up, gate);
      const mixedNormed = rmsNormRows(mixed, layer.ffnSubNorm, eps, up);
      ternaryMatmulQuantized(layer.down, quantizeActivations(mixedNormed, c.intermediateSize, scheme), perToken, residualDelta);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + residualDelta[i]!;
    }
    for (let t = 0; t < n; t++) caches[t]!.length = positions[t]! + 1;

    // Final norm and LM head, only for the rows whose logits were asked for.
    const wanted = new Float32Array(logitRows.length * hidden);
    for (let i = 0; i < logitRows.length; i++) wanted.set(x.subarray(logitRows[i]! * hidden, (logitRows[i]! + 1) * hidden), i * hidden);
    const finalNormed = rmsNormRows(wanted, weights.outputNorm, eps);
    const logits = lmHeadRows(finalNormed, weights.head, c.vocabSize, hidden);
    // [hiddenRows.length][hidden] residual stream after the last layer, before the output norm
    const hiddenRows = batch.hiddenRows;
    if (hiddenRows === undefined || hiddenRows.length === 0) return { logits, hidden: hiddenRows === undefined ? undefined : new Float32Array(0) };
    const states = new Float32Array(hiddenRows.length * hidden);
    for (let i = 0; i < hiddenRows.length; i++) states.set(x.subarray(hiddenRows[i]! * hidden, (hiddenRows[i]! + 1) * hidden), i * hidden);
    return { logits, hidden: states };
  }

  dispose(): void {
    this.weights = null;
    this.cache.dispose();
  }
}
