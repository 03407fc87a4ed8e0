// Whole-model conformance checks: greedy tokens against the reference, batching, prefill, truncation and misuse.
import { KernelsErrorCode } from "../errors.js";
import type { ActivationQuant, Backend, KvDtype, LoadOptions } from "../contract/backend.js";
import type { LoadedModel, StepBatch } from "../contract/loaded-model.js";
import { argmaxRows } from "../contract/forward.js";
import type { ModelWeights } from "../contract/weights.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { assertClose, assertEqualArrays, assertThrowsCode, mismatch } from "./assertions.js";
import { TOLERANCES } from "./tolerances.js";
import { oracleForward } from "./oracle.js";
import { SeededRandom } from "./seeded-random.js";
import type { ConformanceCheck } from "./op-checks.js";

/**
 * A model the whole-model checks run on.
 *
 * @example
 * ```ts
 * const testModel: ConformanceTestModel = { name: "tiny", weights: conformanceModel({ seed: 9 }) };
 * ```
 */
export interface ConformanceTestModel {
  readonly name: string;
  readonly weights: ModelWeights;
}

/**
 * Knobs of the whole-model checks.
 *
 * @example
 * ```ts
 * const options: ModelCheckOptions = { greedyTokens: 8, contextLength: 128 };
 * ```
 */
export interface ModelCheckOptions {
  /** Prompt tokens per greedy run. Default 9. */
  readonly promptLength?: number;
  /** Greedy tokens generated per run. Default 16. */
  readonly greedyTokens?: number;
  /** KV positions loaded. Default 64. */
  readonly contextLength?: number;
}

/**
 * Index of the largest of `length` values from `offset`, as {@link argmaxRows} ranks them (halo's
 * greedy rule: lowest index on exact ties, NaN never wins, +∞ ranked as the largest finite
 * float32); −1 when no value is above −∞.
 *
 * @example
 * ```ts
 * argmax(Float32Array.of(1, 3, 3)); // 1
 * ```
 */
export function argmax(values: Float32Array, offset = 0, length = values.length - offset): number {
  return argmaxRows(values.subarray(offset, offset + length), 1, length)[0]!;
}

/** @internal The greedy token of a logit row, refusing a row with nothing to sample (no logit above −∞). */
export function greedyToken(check: string, logits: Float32Array, vocab: number): number {
  const token = argmax(logits, 0, vocab);
  if (token < 0) throw mismatch(check, "a logit row has no value above −∞ (all NaN or −∞): no greedy token", { expected: "a finite logit", actual: "none" });
  return token;
}

/**
 * A step batch of one slot: `tokens` at positions `start, start + 1, …`, wanting the logits of the
 * last row or of every row, with any other {@link StepBatch} fields (`output`, `topK`, `hiddenRows`)
 * from `extra`.
 *
 * @example
 * ```ts
 * const prefill = sequenceBatch(slot, [1, 2, 3], 0, "last");
 * const verify = sequenceBatch(slot, drafts, 3, "all", { output: "argmax" });
 * ```
 */
export function sequenceBatch(
  slot: number,
  tokens: readonly number[],
  start: number,
  logits: "last" | "all" = "all",
  extra: Partial<StepBatch> = {},
): StepBatch {
  return {
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => start + i),
    slots: new Int32Array(tokens.length).fill(slot),
    logitRows: logits === "all" ? Int32Array.from(tokens, (_, i) => i) : Int32Array.of(tokens.length - 1),
    ...extra,
  };
}

/** @internal {@link sequenceBatch} under the name the checks use. */
export const rows = sequenceBatch;

/**
 * Prefills `prompt` in one step, then decodes `count` greedy tokens one step each.
 * Returns the tokens and the logits of every step, concatenated.
 *
 * @example
 * ```ts
 * const { tokens } = await greedyRun(model, [1, 2, 3], 24);
 * ```
 */
export async function greedyRun(model: LoadedModel, prompt: readonly number[], count: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const slot = model.allocateSequence();
  const vocab = model.config.vocabSize;
  const logits: Float32Array[] = [await model.step(rows(slot, prompt, 0, "last"))];
  const tokens: number[] = [];
  for (let i = 0; i < count; i++) {
    const next = greedyToken("greedy run", logits[logits.length - 1]!, vocab);
    tokens.push(next);
    if (i + 1 < count) logits.push(await model.step(rows(slot, [next], prompt.length + i, "last")));
  }
  model.freeSequence(slot);
  return { tokens, logits };
}

/**
 * @internal Why a comparison with the reference backend does not run on the reference itself: compared with itself
 * it cannot fail.
 */
export const REFERENCE_ITSELF =
  "the backend under test is the reference backend: compared with itself this cannot fail (the float64 oracle model checks are its independent checks)";

/** @internal Whether `backend` computes exactly what the default reference backend computes (the same name: the same options). */
export function isReferenceItself(backend: Backend): boolean {
  return backend.name === referenceBackend().name;
}

/** @internal A seeded random prompt of `length` ids below `vocab`. */
export function promptFor(seed: number, length: number, vocab: number): number[] {
  const random = new SeededRandom(seed);
  return Array.from({ length }, () => random.int(vocab));
}

/**
 * Whole-model checks of a backend on each test model, for each activation quantisation and KV
 * dtype both the backend and the model support: against the float64 oracle model (f32 KV) and
 * against the reference backend (skipped, with the reason, when the backend is the reference itself).
 * Logits must lie within `TOLERANCES.modelLogits`, greedy tokens must be equal.
 *
 * @example
 * ```ts
 * for (const check of modelChecks(() => myBackend(), [{ name: "tiny", weights }])) await check.run();
 * ```
 */
export function modelChecks(
  factory: () => Backend | Promise<Backend>,
  models: readonly ConformanceTestModel[],
  options: ModelCheckOptions = {},
): ConformanceCheck[] {
  const promptLength = options.promptLength ?? 9;
  const greedyTokens = options.greedyTokens ?? 16;
  const contextLength = options.contextLength ?? 64;
  const checks: ConformanceCheck[] = [];
  const reference = referenceBackend();

  for (const { name, weights } of models) {
    const vocab = weights.config.vocabSize;
    const widths = [weights.config.hiddenSize, weights.config.intermediateSize, weights.config.numHeads * weights.config.headDim];
    const quants: ActivationQuant[] = widths.every((w) => w % 256 === 0) ? ["per-token", "q8k-block"] : ["per-token"];
    const load = async (backend: Backend, extra: Partial<LoadOptions> = {}): Promise<LoadedModel> =>
      backend.loadModel(weights, { contextLength, maxSequences: 4, ...extra });
    const supports = async (quant: ActivationQuant, kv: KvDtype): Promise<Backend | null> => {
      const backend = await factory();
      const caps = backend.capabilities();
      return caps.activationQuants.includes(quant) && caps.kvDtypes.includes(kv) ? backend : null;
    };

    for (const activationQuant of quants) {
      checks.push({
        name: `model/${name} greedy ${activationQuant} kv=f32 matches the float64 oracle model (independent of the reference)`,
        run: async () => {
          const backend = await supports(activationQuant, "f32");
          if (backend === null) return { skipped: `the backend does not offer activationQuant ${activationQuant} with kvDtype f32` };
          const prompt = promptFor(1, promptLength, vocab);
          const model = await load(backend, { activationQuant, kvDtype: "f32" });
          const got = await greedyRun(model, prompt, greedyTokens);
          model.dispose();
          // The oracle is causal: one pass over the prompt and the tokens fed back gives every step's logits.
          const want = oracleForward(weights, [...prompt, ...got.tokens.slice(0, -1)], activationQuant).logits;
          got.logits.forEach((logits, i) => {
            const row = want.subarray((promptLength - 1 + i) * vocab, (promptLength + i) * vocab);
            assertClose(`${name} logits step ${i} vs oracle`, logits, row, TOLERANCES.modelLogits, () => 1);
            if (greedyToken(`${name} oracle step ${i}`, row, vocab) !== got.tokens[i])
              throw mismatch(`${name} greedy token ${i} vs oracle`, "the oracle's greedy token differs", { expected: argmax(row), actual: got.tokens[i] });
          });
          return undefined;
        },
      });
      for (const kvDtype of ["f32", "f16", "int8"] as const) {
        checks.push({
          name: `model/${name} greedy ${activationQuant} kv=${kvDtype} matches reference`,
          run: async () => {
            const backend = await supports(activationQuant, kvDtype);
            if (backend === null) return { skipped: `the backend does not offer activationQuant ${activationQuant} with kvDtype ${kvDtype}` };
            if (isReferenceItself(backend)) return { skipped: REFERENCE_ITSELF };
            const want = await greedyRun(await load(reference, { activationQuant, kvDtype }), promptFor(1, promptLength, vocab), greedyTokens);
            const model = await load(backend, { activationQuant, kvDtype });
            const got = await greedyRun(model, promptFor(1, promptLength, vocab), greedyTokens);
            model.dispose();
            assertEqualArrays(`${name} greedy tokens`, got.tokens, want.tokens);
            got.logits.forEach((l, i) => assertClose(`${name} logits step ${i}`, l, want.logits[i]!, TOLERANCES.modelLogits, () => 1));
            return undefined;
          },
        });
      }
    }

    checks.push({
      name: `model/${name} two sequences batched equal each alone`,
      run: async () => {
        const backend = await factory();
        const a = promptFor(2, promptLength, vocab);
        const b = promptFor(3, promptLength + 3, vocab);
        const alone = async (prompt: number[], next: number): Promise<[Float32Array, Float32Array]> => {
          const model = await load(backend);
          const slot = model.allocateSequence();
          const first = await model.step(rows(slot, prompt, 0, "all"));
          const second = await model.step(rows(slot, [next], prompt.length, "last"));
          model.dispose();
          return [first, second];
        };
        const [aFirst, aSecond] = await alone(a, 5);
        const [bFirst, bSecond] = await alone(b, 7);
        const model = await load(backend);
        model.allocateSequence(); // slot ids need not start at the same place
        const sa = model.allocateSequence();
        const sb = model.allocateSequence();
        // Interleave the two prompts row by row in one step.
        const order: Array<[number, number, number]> = [];
        for (let i = 0; i < Math.max(a.length, b.length); i++) {
          if (i < a.length) order.push([sa, a[i]!, i]);
          if (i < b.length) order.push([sb, b[i]!, i]);
        }
        const first = await model.step({
          tokens: Int32Array.from(order, (r) => r[1]),
          positions: Int32Array.from(order, (r) => r[2]),
          slots: Int32Array.from(order, (r) => r[0]),
          logitRows: Int32Array.from(order, (_, i) => i),
        });
        const second = await model.step({
          tokens: Int32Array.of(7, 5),
          positions: Int32Array.of(b.length, a.length),
          slots: Int32Array.of(sb, sa),
          logitRows: Int32Array.of(0, 1),
        });
        model.dispose();
        const firstA: number[] = [];
        const firstB: number[] = [];
        order.forEach((r, i) => (r[0] === sa ? firstA : firstB).push(...first.subarray(i * vocab, (i + 1) * vocab)));
        assertClose(`${name} prefill of A batched vs alone`, firstA, aFirst, TOLERANCES.batchInvariance, () => 1);
        assertClose(`${name} prefill of B batched vs alone`, firstB, bFirst, TOLERANCES.batchInvariance, () => 1);
        assertClose(`${name} decode of B batched vs alone`, second.subarray(0, vocab), bSecond, TOLERANCES.batchInvariance, () => 1);
        assertClose(`${name} decode of A batched vs alone`, second.subarray(vocab), aSecond, TOLERANCES.batchInvariance, () => 1);
      },
    });

    // The default cache, and the int8 cache (its rows are quantised one by one, so how the prompt is batched must not
    // change a stored byte).
    for (const kvDtype of [undefined, "int8"] as const) {
      checks.push({
        name: `model/${name} prefill in one step equals token by token${kvDtype === undefined ? "" : ` kv=${kvDtype}`}`,
        run: async () => {
          const backend = await factory();
          if (kvDtype !== undefined && !backend.capabilities().kvDtypes.includes(kvDtype))
            return { skipped: `${backend.name} does not offer kvDtype ${kvDtype}` };
          const prompt = promptFor(4, promptLength + 4, vocab);
          const model = await load(backend, kvDtype === undefined ? {} : { kvDtype });
          const slot = model.allocateSequence();
          const whole = await model.step(rows(slot, prompt, 0, "all"));
          const single = model.allocateSequence();
          const stepped: number[] = [];
          for (let i = 0; i < prompt.length; i++) stepped.push(...(await model.step(rows(single, [prompt[i]!], i, "last"))));
          model.dispose();
          assertClose(`${name} prefill vs token by token`, whole, stepped, TOLERANCES.batchInvariance, () => 1);
          return undefined;
        },
      });
    }

    checks.push({
      name: `model/${name} truncate then rewrite equals a fresh sequence`,
      run: async () => {
        const backend = await factory();
        const prompt = promptFor(5, promptLength, vocab);
        const model = await load(backend);
        const slot = model.allocateSequence();
        await model.step(rows(slot, [...prompt, 1, 2, 3], 0, "last"));
        model.truncateSequence(slot, prompt.length);
        if (model.sequenceLength(slot) !== prompt.length)
          throw mismatch(`${name} truncate`, "sequenceLength after truncate", { expected: prompt.length, actual: model.sequenceLength(slot) });
        const rewritten = await model.step(rows(slot, [4, 5], prompt.length, "all"));
        const fresh = model.allocateSequence();
        const expected = await model.step(rows(fresh, [...prompt, 4, 5], 0, "all"));
        model.dispose();
        assertClose(`${name} rewritten vs fresh`, rewritten, expected.subarray(prompt.length * vocab), TOLERANCES.batchInvariance, () => 1);
      },
    });
  }

  const first = models[0];
  if (first !== undefined) checks.push(...misuseChecks(factory, first, contextLength));
  return checks;
}

function misuseChecks(factory: () => Backend | Promise<Backend>, testModel: ConformanceTestModel, contextLength: number): ConformanceCheck[] {
  const { weights } = testModel;
  const vocab = weights.config.vocabSize;
  const E = KernelsErrorCode;
  return [
    {
      name: "misuse/bad steps throw typed errors and leave the model usable",
      run: async () => {
        const model = await (await factory()).loadModel(weights, { contextLength, maxSequences: 2 });
        const slot = model.allocateSequence();
        const good = await model.step(rows(slot, [1, 2, 3], 0, "last"));
        model.truncateSequence(slot, 2);
        const one =
          (token: number, position: number, s = slot, logitRows = Int32Array.of(0)) =>
          () =>
            model.step({ tokens: Int32Array.of(token), positions: Int32Array.of(position), slots: Int32Array.of(s), logitRows });
        await assertThrowsCode("unknown slot in step", E.KERNELS_UNKNOWN_SLOT, one(3, 2, 99));
        await assertThrowsCode("negative slot in step", E.KERNELS_UNKNOWN_SLOT, one(3, 2, -1));
        await assertThrowsCode("position gap", E.KERNELS_BAD_POSITION, one(3, 3));
        await assertThrowsCode("position repeat", E.KERNELS_BAD_POSITION, one(3, 1));
        await assertThrowsCode("position past context", E.KERNELS_CONTEXT_OVERFLOW, one(3, contextLength));
        await assertThrowsCode("negative token", E.KERNELS_TOKEN_OUT_OF_RANGE, one(-1, 2));
        await assertThrowsCode("token = vocab", E.KERNELS_TOKEN_OUT_OF_RANGE, one(vocab, 2));
        await assertThrowsCode("logit row out of batch", E.KERNELS_BAD_BATCH, one(3, 2, slot, Int32Array.of(1)));
        await assertThrowsCode("logit rows not increasing", E.KERNELS_BAD_BATCH, () =>
          model.step({ tokens: Int32Array.of(3, 4), positions: Int32Array.of(2, 3), slots: Int32Array.of(slot, slot), logitRows: Int32Array.of(1, 0) }),
        );
        await assertThrowsCode("length mismatch", E.KERNELS_BAD_BATCH, () =>
          model.step({ tokens: Int32Array.of(3, 4), positions: Int32Array.of(2), slots: Int32Array.of(slot, slot), logitRows: Int32Array.of(0) }),
        );
        await assertThrowsCode("empty batch", E.KERNELS_BAD_BATCH, () =>
          model.step({ tokens: new Int32Array(0), positions: new Int32Array(0), slots: new Int32Array(0), logitRows: new Int32Array(0) }),
        );
        // A bad row after good rows must not have advanced the good rows' sequence.
        await assertThrowsCode("bad row after good rows", E.KERNELS_TOKEN_OUT_OF_RANGE, () =>
          model.step({ tokens: Int32Array.of(3, vocab), positions: Int32Array.of(2, 3), slots: Int32Array.of(slot, slot), logitRows: Int32Array.of(1) }),
        );
        await assertThrowsCode("truncate past length", E.KERNELS_BAD_POSITION, () => model.truncateSequence(slot, 3));
        await assertThrowsCode("truncate unknown slot", E.KERNELS_UNKNOWN_SLOT, () => model.truncateSequence(7, 0));
        await assertThrowsCode("free unknown slot", E.KERNELS_UNKNOWN_SLOT, () => model.freeSequence(7));
        model.allocateSequence();
        await assertThrowsCode("allocate past maxSequences", E.KERNELS_NO_FREE_SLOT, () => model.allocateSequence());
        const again = await model.step(rows(slot, [3], 2, "last"));
        assertClose("logits after errors equal logits before", again, good, TOLERANCES.batchInvariance, () => 1);
        model.dispose();
        model.dispose();
        await assertThrowsCode("step after dispose", E.KERNELS_DISPOSED, one(3, 3));
        await assertThrowsCode("allocate after dispose", E.KERNELS_DISPOSED, () => model.allocateSequence());
      },
    },
    {
      name: "misuse/unsupported configs and options are refused at load",
      run: async () => {
        const backend = await factory();
        const c = weights.config;
        const withConfig = (patch: Record<string, unknown>): ModelWeights => ({ ...weights, config: { ...c, ...patch } });
        const U = E.KERNELS_UNSUPPORTED_CONFIG;
        await assertThrowsCode("architecture llama", U, () => backend.loadModel(withConfig({ architecture: "llama" }), { contextLength: 8 }));
        await assertThrowsCode("activation gelu", U, () => backend.loadModel(withConfig({ activation: "gelu" }), { contextLength: 8 }));
        await assertThrowsCode("heads not divisible", U, () => backend.loadModel(withConfig({ numKvHeads: c.numHeads + 1 }), { contextLength: 8 }));
        await assertThrowsCode("odd head width", U, () => backend.loadModel(withConfig({ headDim: c.headDim + 1 }), { contextLength: 8 }));
        await assertThrowsCode("hadamard rotated", U, () => backend.loadModel(withConfig({ hadamardRotated: true }), { contextLength: 8 }));
        await assertThrowsCode("layer count", E.KERNELS_BAD_WEIGHTS, () => backend.loadModel(withConfig({ numLayers: c.numLayers + 1 }), { contextLength: 8 }));
        await assertThrowsCode("hidden size vs tensors", E.KERNELS_BAD_WEIGHTS, () =>
          backend.loadModel(withConfig({ hiddenSize: c.hiddenSize + 2 }), { contextLength: 8 }),
        );
        await assertThrowsCode("untied without head", E.KERNELS_BAD_WEIGHTS, () =>
          backend.loadModel({ ...withConfig({ tiedEmbeddings: false }), lmHead: null }, { contextLength: 8 }),
        );
        await assertThrowsCode("context too long", E.KERNELS_BAD_OPTION, () => backend.loadModel(weights, { contextLength: c.maxPositionEmbeddings + 1 }));
        await assertThrowsCode("context zero", E.KERNELS_BAD_OPTION, () => backend.loadModel(weights, { contextLength: 0 }));
        await assertThrowsCode("maxSequences zero", E.KERNELS_BAD_OPTION, () => backend.loadModel(weights, { contextLength: 8, maxSequences: 0 }));
        await assertThrowsCode("kv dtype", E.KERNELS_BAD_OPTION, () => backend.loadModel(weights, { contextLength: 8, kvDtype: "q4" as KvDtype }));
        const controller = new AbortController();
        controller.abort();
        await assertThrowsCode("aborted load", E.KERNELS_ABORTED, () => backend.loadModel(weights, { contextLength: 8, signal: controller.signal }));
      },
    },
  ];
}
