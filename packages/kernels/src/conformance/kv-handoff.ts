// The KV hand-off check: prefill on one backend, export the sequence, import it into another and decode there.
import type { ActivationQuant, Backend, KvDtype } from "../contract/backend.js";
import type { LoadedModel, SequenceState } from "../contract/loaded-model.js";
import type { ModelWeights } from "../contract/weights.js";
import { assertClose, assertEqualArrays, maxAbsDifference, mismatch } from "./assertions.js";
import { greedyToken, rows } from "./model-checks.js";
import { TOLERANCES } from "./tolerances.js";

/**
 * Options of {@link checkKvHandoff}.
 *
 * @example
 * ```ts
 * const options: KvHandoffOptions = { weights, prompt: [5, 9, 11, 2], kvDtype: "f16", decodeTokens: 6 };
 * ```
 */
export interface KvHandoffOptions {
  readonly weights: ModelWeights;
  /** Prompt prefilled on the source backend. */
  readonly prompt: readonly number[];
  /** KV dtype both backends are loaded with. Default `"f32"`. */
  readonly kvDtype?: KvDtype;
  /** Activation quantisation both backends are loaded with. Default `"per-token"`. */
  readonly activationQuant?: ActivationQuant;
  /** Greedy tokens decoded on the target after the hand-off. Default 4. */
  readonly decodeTokens?: number;
  /** Context both models are loaded with. Default 64. */
  readonly contextLength?: number;
  /** Largest |Δ| of a decode logit allowed between the hand-off and the target alone. Default `TOLERANCES.kvHandoff`. */
  readonly tolerance?: number;
  /** Names the case in failures. Default `"kv hand-off"`. */
  readonly name?: string;
}

/**
 * What {@link checkKvHandoff} measured.
 *
 * @example
 * ```ts
 * const { maxDifference } = await checkKvHandoff(referenceBackend(), cpu, options);
 * ```
 */
export interface KvHandoffResult {
  /** Greedy tokens decoded (the same on both runs, or the check failed). */
  readonly tokens: readonly number[];
  /** Largest |Δ| between a decode logit after the hand-off and the target alone. */
  readonly maxDifference: number;
}

/**
 * The KV hand-off test: prefill `prompt` on `source`, `exportSequence` it, `importSequence` it into
 * `target` and decode `decodeTokens` greedy tokens there; then run `target` alone (prefill and
 * decode). The greedy tokens must be identical (the first one is the source's prefill argmax) and
 * every decode logit within `tolerance`. Also checks the exported state's shape and that the
 * imported slot holds `prompt.length` positions. Both backends must implement
 * `exportSequence` / `importSequence` (`capabilities().sequenceTransfer`). Rejects with a
 * `KERNELS_CONFORMANCE_MISMATCH` HaloError naming the step and the values.
 *
 * @example
 * ```ts
 * // Reference prefill → CPU decode equals CPU alone, with an f16 cache.
 * await checkKvHandoff(referenceBackend(), createBackend({ threads: 2 }), { weights, prompt: [5, 9, 11, 2], kvDtype: "f16" });
 * ```
 */
export async function checkKvHandoff(source: Backend, target: Backend, options: KvHandoffOptions): Promise<KvHandoffResult> {
  const name = options.name ?? "kv hand-off";
  const { weights, prompt } = options;
  const count = options.decodeTokens ?? 4;
  const tolerance = options.tolerance ?? TOLERANCES.kvHandoff;
  const loadOptions = {
    contextLength: options.contextLength ?? 64,
    maxSequences: 2,
    kvDtype: options.kvDtype ?? "f32",
    activationQuant: options.activationQuant ?? "per-token",
  } as const;
  const vocab = weights.config.vocabSize;
  const decode = async (model: LoadedModel, slot: number, first: number): Promise<{ tokens: number[]; logits: Float32Array[] }> => {
    const tokens = [first];
    const logits: Float32Array[] = [];
    for (let i = 0; i < count; i++) {
      logits.push(await model.step(rows(slot, [tokens[i]!], prompt.length + i, "last")));
      if (i + 1 < count) tokens.push(greedyToken(`${name}: decode step ${i}`, logits[i]!, vocab));
    }
    return { tokens, logits };
  };

  const targetAlone = await target.loadModel(weights, loadOptions);
  let alone: { tokens: number[]; logits: Float32Array[] };
  try {
    const slot = targetAlone.allocateSequence();
    const prefill = await targetAlone.step(rows(slot, prompt, 0, "last"));
    alone = await decode(targetAlone, slot, greedyToken(`${name}: ${target.name} prefill`, prefill, vocab));
  } finally {
    targetAlone.dispose();
  }

  const from = await source.loadModel(weights, loadOptions);
  let state: SequenceState;
  let first: number;
  try {
    if (typeof from.exportSequence !== "function")
      throw mismatch(name, `${source.name} has no exportSequence`, { hint: "The source backend must implement sequenceTransfer" });
    const slot = from.allocateSequence();
    first = greedyToken(`${name}: ${source.name} prefill`, await from.step(rows(slot, prompt, 0, "last")), vocab);
    state = await from.exportSequence(slot);
  } finally {
    from.dispose();
  }
  const c = weights.config;
  const expectedShape = { length: prompt.length, numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim };
  const actualShape = { length: state.length, numLayers: state.numLayers, numKvHeads: state.numKvHeads, headDim: state.headDim };
  if (JSON.stringify(actualShape) !== JSON.stringify(expectedShape))
    throw mismatch(name, `${source.name}'s exported state has the wrong shape`, { expected: expectedShape, actual: actualShape });
  const size = c.numLayers * prompt.length * c.numKvHeads * c.headDim;
  for (const field of ["keys", "values"] as const) {
    if (!(state[field] instanceof Float32Array) || state[field].length !== size) {
      throw mismatch(name, `${source.name}'s exported ${field} are not a Float32Array of numLayers·length·numKvHeads·headDim values`, {
        expected: size,
        actual: state[field]?.length,
      });
    }
  }

  const to = await target.loadModel(weights, loadOptions);
  try {
    if (typeof to.importSequence !== "function")
      throw mismatch(name, `${target.name} has no importSequence`, { hint: "The target backend must implement sequenceTransfer" });
    const slot = await to.importSequence(state);
    if (to.sequenceLength(slot) !== prompt.length)
      throw mismatch(name, "the imported slot's length", { expected: prompt.length, actual: to.sequenceLength(slot) });
    const handed = await decode(to, slot, first);
    assertEqualArrays(`${name}: greedy tokens after ${source.name} → ${target.name} vs ${target.name} alone`, handed.tokens, alone.tokens);
    let maxDifference = 0;
    handed.logits.forEach((logits, i) => {
      assertClose(
        `${name}: decode step ${i} logits after ${source.name} → ${target.name} vs ${target.name} alone`,
        logits,
        alone.logits[i]!,
        tolerance,
        () => 1,
      );
      maxDifference = Math.max(maxDifference, maxAbsDifference(logits, alone.logits[i]!));
    });
    return { tokens: handed.tokens, maxDifference };
  } finally {
    to.dispose();
  }
}
