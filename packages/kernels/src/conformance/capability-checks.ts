// Conformance checks of the contract-2 capabilities: outputs, hidden rows, copySequence, sequence transfer, estimateMemory.
import { KernelsErrorCode } from "../errors.js";
import { KV_DTYPES, type Backend, type KvDtype, type LoadOptions, type MemoryEstimate } from "../contract/backend.js";
import { STEP_OUTPUTS, type LoadedModel, type SequenceState, type StepBatch } from "../contract/loaded-model.js";
import { argmaxRows, forwardBatch, topKRows } from "../contract/forward.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { assertClose, assertEqualArrays, assertThrowsCode, mismatch } from "./assertions.js";
import { checkKvHandoff } from "./kv-handoff.js";
import { isReferenceItself, promptFor, rows, type ConformanceTestModel, type ModelCheckOptions } from "./model-checks.js";
import { oracleForward, oracleHead, oracleRmsNorm } from "./oracle.js";
import type { ConformanceCheck, ConformanceSkip } from "./op-checks.js";
import { TOLERANCES } from "./tolerances.js";

/** A check that did not run because the backend does not claim the capability (reported as skipped, not passed). */
function notClaimed(backend: Backend, capability: string): ConformanceSkip {
  return { skipped: `${backend.name} does not claim ${capability}` };
}

/** Row maxima of |x| over rows of `width`. */
function rowMax(x: ArrayLike<number>, width: number): Float64Array {
  const out = new Float64Array(x.length / width);
  for (let i = 0; i < x.length; i++) out[Math.floor(i / width)] = Math.max(out[Math.floor(i / width)]!, Math.abs(x[i]!));
  return out;
}

/**
 * Checks of the optional contract-2 capabilities of a backend, each against the reference backend
 * (the float64 oracle model when the backend under test is the reference itself: compared with itself
 * a check cannot fail) or against the backend's own plain `step`. A check whose capability the backend does not claim
 * (`capabilities().hiddenRows`, `.copySequence`, `.sequenceTransfer`, an `estimateMemory` method)
 * resolves to a {@link ConformanceSkip} naming it (`runConformance` reports a skipped test, so a
 * backend claiming nothing does not look fully conforming); a claimed capability that misbehaves fails with
 * `KERNELS_CONFORMANCE_MISMATCH`. The output checks run on every backend: `forwardBatch` gives
 * argmax and top-k for all of them (on the device where `capabilities().outputs` lists them, on the
 * host otherwise), and both must equal `argmaxRows` / `topKRows` of the backend's own logits; the KV
 * such a step writes must decode exactly like the KV of a plain `step`. The `estimateMemory` check
 * is one of self-consistency only (sums, signs, scaling): it cannot see what the backend really allocates.
 *
 * @example
 * ```ts
 * for (const check of capabilityChecks(() => myBackend(), defaultConformanceModels())) await check.run();
 * ```
 */
export function capabilityChecks(
  factory: () => Backend | Promise<Backend>,
  models: readonly ConformanceTestModel[],
  options: ModelCheckOptions = {},
): ConformanceCheck[] {
  const promptLength = options.promptLength ?? 9;
  const contextLength = options.contextLength ?? 64;
  const checks: ConformanceCheck[] = [];
  const first = models[0];
  if (first !== undefined) checks.push(...claimChecks(factory, first, contextLength));

  for (const testModel of models) {
    const { name, weights } = testModel;
    const c = weights.config;
    const vocab = c.vocabSize;
    const load = (backend: Backend, extra: Partial<LoadOptions> = {}): Promise<LoadedModel> =>
      backend.loadModel(weights, { contextLength, maxSequences: 4, ...extra });

    checks.push({
      name: `outputs/${name} forwardBatch argmax and top-k equal argmaxRows / topKRows of the backend's own logits`,
      run: async () => {
        const backend = await factory();
        const prompt = promptFor(6, promptLength, vocab);
        const model = await load(backend);
        try {
          const [want, against] = await independentLogits(backend, model, weights, prompt, load);
          const slot = model.allocateSequence();
          const batch = rows(slot, prompt, 0, "all");
          const n = prompt.length;
          const { logits } = await forwardBatch(model, batch);
          assertClose(`${name} forwardBatch logits vs ${against}`, logits, want, TOLERANCES.modelLogits, () => 1);
          if (model.sequenceLength(slot) !== n)
            throw mismatch(`${name} forwardBatch`, "sequence length after the step", { expected: n, actual: model.sequenceLength(slot) });
          const again = async (extra: Partial<StepBatch>) => {
            model.truncateSequence(slot, 0);
            return forwardBatch(model, { ...batch, ...extra });
          };
          model.truncateSequence(slot, 0);
          assertEqualArrays(`${name} step logits vs forwardBatch logits of the same batch`, await model.step(batch), logits);
          // The KV a plain step writes, as decoded logits of the next token: the KV of every other output must equal it.
          const decodeNext = async (): Promise<Float32Array> => (await forwardBatch(model, rows(slot, [5], n, "last"))).logits;
          const afterStep = await decodeNext();
          const { argmax } = await again({ output: "argmax" });
          if (!(argmax instanceof Int32Array)) throw mismatch(`${name} argmax`, "forwardBatch returned no Int32Array argmax", { actual: argmax });
          assertEqualArrays(`${name} argmax vs argmaxRows of the logits`, argmax, argmaxRows(logits, n, vocab));
          assertEqualArrays(`${name} decode after an argmax step vs after a plain step (the KV it wrote)`, await decodeNext(), afterStep);
          for (const k of [...new Set([1, Math.min(5, vocab), vocab])]) {
            const { topK } = await again({ output: "top-k", topK: k });
            const expected = topKRows(logits, n, vocab, k);
            if (topK === undefined || topK.k !== k)
              throw mismatch(`${name} top-${k}`, "forwardBatch returned no top-k of that k", { expected: k, actual: topK?.k });
            assertEqualArrays(`${name} top-${k} ids vs topKRows`, topK.ids, expected.ids);
            assertEqualArrays(`${name} top-${k} logits vs topKRows`, topK.logits, expected.logits);
            assertEqualArrays(`${name} decode after a top-${k} step vs after a plain step (the KV it wrote)`, await decodeNext(), afterStep);
          }
          // Decode of two sequences in one batch, one row each (the slot holds the prompt again).
          model.truncateSequence(slot, n);
          const other = model.allocateSequence();
          await model.step(rows(other, promptFor(7, promptLength + 2, vocab), 0, "last"));
          const decode: StepBatch = {
            tokens: Int32Array.of(3, 4),
            positions: Int32Array.of(n, promptLength + 2),
            slots: Int32Array.of(slot, other),
            logitRows: Int32Array.of(0, 1),
          };
          const decodeLogits = (await forwardBatch(model, decode)).logits;
          model.truncateSequence(slot, n);
          model.truncateSequence(other, promptLength + 2);
          assertEqualArrays(
            `${name} two-sequence decode argmax`,
            (await forwardBatch(model, { ...decode, output: "argmax" })).argmax ?? [],
            argmaxRows(decodeLogits, 2, vocab),
          );
        } finally {
          model.dispose();
        }
      },
    });

    checks.push({
      name: `hiddenRows/${name} hidden states match the reference (the float64 oracle model, for the reference itself); the oracle's output norm and head of them give the logits`,
      run: async () => {
        const backend = await factory();
        if (!backend.capabilities().hiddenRows) return notClaimed(backend, "hiddenRows");
        const prompt = promptFor(8, promptLength, vocab);
        const n = prompt.length;
        const hiddenRows = Int32Array.from(new Set([0, n >> 1, n - 1]));
        const h = c.hiddenSize;
        const model = await load(backend);
        try {
          const [wantHidden, against] = await independentHidden(backend, model, weights, prompt, hiddenRows, load);
          const slot = model.allocateSequence();
          const batch: StepBatch = { ...rows(slot, prompt, 0, "all"), hiddenRows };
          const got = await forwardBatch(model, batch);
          if (got.hidden === undefined) throw mismatch(`${name} hidden`, "forward returned no hidden states", { expected: hiddenRows.length * h });
          const maxima = rowMax(wantHidden, h);
          assertClose(`${name} hidden states vs ${against}`, got.hidden, wantHidden, TOLERANCES.hiddenStates, (i) => maxima[Math.floor(i / h)]!);
          // The oracle's output norm and head (float64, no backend's code) of the backend's own hidden states.
          const head = c.tiedEmbeddings || weights.lmHead === null ? weights.tokenEmbedding : weights.lmHead;
          const fromHidden = oracleHead(Float32Array.from(oracleRmsNorm(got.hidden, weights.outputNorm.toFloat32(), c.rmsNormEps)), head.toFloat32(), vocab);
          const ownRows = new Float32Array(hiddenRows.length * vocab);
          hiddenRows.forEach((row, i) => ownRows.set(got.logits.subarray(row * vocab, (row + 1) * vocab), i * vocab));
          assertClose(`${name} output norm + head of the hidden states vs the backend's logits`, fromHidden, ownRows, TOLERANCES.modelLogits, () => 1);
          model.truncateSequence(slot, 0);
          const withArgmax = await forwardBatch(model, { ...batch, output: "argmax" });
          assertEqualArrays(`${name} hidden states with output argmax vs with logits`, withArgmax.hidden ?? [], got.hidden);
          assertEqualArrays(`${name} argmax with hidden rows`, withArgmax.argmax ?? [], argmaxRows(got.logits, n, vocab));
        } finally {
          model.dispose();
        }
        return undefined;
      },
    });

    for (const kvDtype of KV_DTYPES) {
      checks.push({
        name: `copySequence/${name} kv=${kvDtype} a copy decodes exactly like its source, and the two stay independent`,
        run: async () => {
          const backend = await factory();
          const caps = backend.capabilities();
          if (!caps.copySequence) return notClaimed(backend, "copySequence");
          if (!caps.kvDtypes.includes(kvDtype)) return notClaimed(backend, `kvDtype ${kvDtype}`);
          const model = await load(backend, { kvDtype });
          try {
            await copyCheck(`${name} kv=${kvDtype}`, model, promptFor(10, promptLength, vocab), promptFor(11, promptLength + 3, vocab));
          } finally {
            model.dispose();
          }
          return undefined;
        },
      });
      checks.push({
        name: `sequenceTransfer/${name} kv=${kvDtype} reference prefill → backend decode equals backend alone, and back`,
        run: async () => {
          const backend = await factory();
          const caps = backend.capabilities();
          if (!caps.sequenceTransfer) return notClaimed(backend, "sequenceTransfer");
          if (!caps.kvDtypes.includes(kvDtype)) return notClaimed(backend, `kvDtype ${kvDtype}`);
          const handoff = { weights, prompt: promptFor(12, promptLength, vocab), kvDtype, contextLength, decodeTokens: 4 };
          await checkKvHandoff(referenceBackend(), backend, { ...handoff, name: `${name} kv=${kvDtype} reference → ${backend.name}` });
          await checkKvHandoff(backend, referenceBackend(), { ...handoff, name: `${name} kv=${kvDtype} ${backend.name} → reference` });
          return undefined;
        },
      });
    }

    checks.push({
      name: `estimateMemory/${name} sums add up, KV grows with contextLength and scales with maxSequences, narrower KV dtypes cost no more (self-consistency only)`,
      run: async () => {
        const backend = await factory();
        if (typeof backend.estimateMemory !== "function") return notClaimed(backend, "estimateMemory");
        const caps = backend.capabilities();
        const base = Math.max(1, Math.min(contextLength, Math.floor(c.maxPositionEmbeddings / 2)));
        const estimates = new Map<KvDtype, MemoryEstimate>();
        for (const kvDtype of caps.kvDtypes) {
          const e = backend.estimateMemory(c, { contextLength: base, maxSequences: 3, kvDtype });
          checkEstimate(`${name} kv=${kvDtype}`, e, 3 * base);
          const longer = backend.estimateMemory(c, { contextLength: 2 * base, maxSequences: 3, kvDtype });
          checkEstimate(`${name} kv=${kvDtype} context ×2`, longer, 6 * base);
          if (
            longer.kvBytes < e.kvBytes ||
            longer.kvBytesPerPosition !== e.kvBytesPerPosition ||
            longer.weightsBytes !== e.weightsBytes ||
            longer.totalBytes < e.totalBytes
          ) {
            throw mismatch(
              `${name} kv=${kvDtype} estimateMemory`,
              "doubling contextLength must not shrink kvBytes or totalBytes, and keeps kvBytesPerPosition and weightsBytes",
              {
                expected: {
                  kvBytes: `≥ ${e.kvBytes}`,
                  kvBytesPerPosition: e.kvBytesPerPosition,
                  weightsBytes: e.weightsBytes,
                  totalBytes: `≥ ${e.totalBytes}`,
                },
                actual: {
                  kvBytes: longer.kvBytes,
                  kvBytesPerPosition: longer.kvBytesPerPosition,
                  weightsBytes: longer.weightsBytes,
                  totalBytes: longer.totalBytes,
                },
              },
            );
          }
          const single = backend.estimateMemory(c, { contextLength: base, kvDtype });
          checkEstimate(`${name} kv=${kvDtype} default maxSequences (1)`, single, base);
          if (e.kvBytes !== 3 * single.kvBytes) {
            throw mismatch(`${name} kv=${kvDtype} estimateMemory`, "kvBytes of 3 sequences must be 3 × that of one (every slot is allocated alike)", {
              expected: 3 * single.kvBytes,
              actual: e.kvBytes,
            });
          }
          estimates.set(kvDtype, e);
        }
        // Wider storage never costs less: f32 ≥ f16 ≥ int8 per position, among the dtypes offered.
        const offered = KV_DTYPES.filter((d) => estimates.has(d));
        for (let i = 1; i < offered.length; i++) {
          const wider = estimates.get(offered[i - 1]!)!;
          const narrower = estimates.get(offered[i]!)!;
          if (narrower.kvBytesPerPosition > wider.kvBytesPerPosition) {
            throw mismatch(`${name} estimateMemory`, `kvBytesPerPosition of ${offered[i]} exceeds that of ${offered[i - 1]}`, {
              expected: `≤ ${wider.kvBytesPerPosition}`,
              actual: narrower.kvBytesPerPosition,
            });
          }
        }
        await assertThrowsCode(`${name} estimateMemory of contextLength 0`, KernelsErrorCode.KERNELS_BAD_OPTION, () =>
          backend.estimateMemory!(c, { contextLength: 0 }),
        );
        return undefined;
      },
    });
  }
  return checks;
}

/**
 * Every position's logits of `prompt` from a path independent of `model`'s: the reference backend loaded with the
 * model's KV dtype and activation quantiser, or, when the backend under test is the reference itself, the float64
 * oracle model (f32 KV). Also names the path, for failures.
 */
async function independentLogits(
  backend: Backend,
  model: LoadedModel,
  weights: ConformanceTestModel["weights"],
  prompt: readonly number[],
  load: (backend: Backend, extra?: Partial<LoadOptions>) => Promise<LoadedModel>,
): Promise<[Float32Array, string]> {
  const { kvDtype, activationQuant } = model.options;
  if (isReferenceItself(backend)) {
    if (kvDtype !== "f32") throw mismatch("oracle", "the oracle model has an f32 KV cache only", { expected: "f32", actual: kvDtype });
    return [oracleForward(weights, prompt, activationQuant).logits, "the float64 oracle model"];
  }
  const reference = await load(referenceBackend(), { kvDtype, activationQuant });
  try {
    return [await reference.step(rows(reference.allocateSequence(), prompt, 0, "all")), `the reference (kv=${kvDtype} ${activationQuant})`];
  } finally {
    reference.dispose();
  }
}

/** {@link independentLogits} for the residual stream of `hiddenRows`: `[hiddenRows.length][hidden]`. */
async function independentHidden(
  backend: Backend,
  model: LoadedModel,
  weights: ConformanceTestModel["weights"],
  prompt: readonly number[],
  hiddenRows: Int32Array,
  load: (backend: Backend, extra?: Partial<LoadOptions>) => Promise<LoadedModel>,
): Promise<[Float32Array, string]> {
  const { kvDtype, activationQuant } = model.options;
  const h = weights.config.hiddenSize;
  if (isReferenceItself(backend)) {
    if (kvDtype !== "f32") throw mismatch("oracle", "the oracle model has an f32 KV cache only", { expected: "f32", actual: kvDtype });
    const all = oracleForward(weights, prompt, activationQuant).hidden;
    const picked = new Float32Array(hiddenRows.length * h);
    hiddenRows.forEach((row, i) => picked.set(all.subarray(row * h, (row + 1) * h), i * h));
    return [picked, "the float64 oracle model"];
  }
  const reference = await load(referenceBackend(), { kvDtype, activationQuant });
  try {
    const want = await forwardBatch(reference, { ...rows(reference.allocateSequence(), prompt, 0, "all"), hiddenRows });
    return [want.hidden!, `the reference (kv=${kvDtype} ${activationQuant})`];
  } finally {
    reference.dispose();
  }
}

/** The sums and signs {@link MemoryEstimate} promises, for `positions` = maxSequences × contextLength. */
function checkEstimate(check: string, e: MemoryEstimate, positions: number): void {
  const fields = ["weightsBytes", "headBytes", "kvBytesPerPosition", "kvBytes", "scratchBytes", "totalBytes", "decodeReadBytes"] as const;
  for (const field of fields) {
    const value = e[field];
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
      throw mismatch(check, `estimateMemory ${field} must be a finite number ≥ 0`, { actual: value });
  }
  for (const field of ["weightsBytes", "kvBytesPerPosition", "decodeReadBytes"] as const) {
    if (!(e[field] > 0)) throw mismatch(check, `estimateMemory ${field} must be positive`, { actual: e[field] });
  }
  if (e.kvBytes < positions * e.kvBytesPerPosition) {
    throw mismatch(check, "kvBytes must be at least maxSequences × contextLength × kvBytesPerPosition", {
      expected: `≥ ${positions * e.kvBytesPerPosition}`,
      actual: e.kvBytes,
    });
  }
  if (e.totalBytes !== e.weightsBytes + e.kvBytes + e.scratchBytes) {
    throw mismatch(check, "totalBytes must be weightsBytes + kvBytes + scratchBytes", {
      expected: e.weightsBytes + e.kvBytes + e.scratchBytes,
      actual: e.totalBytes,
    });
  }
  if (e.headBytes > e.weightsBytes) throw mismatch(check, "headBytes is part of weightsBytes", { expected: `≤ ${e.weightsBytes}`, actual: e.headBytes });
}

/**
 * Slot A holds `prompt`; slot B (holding something longer) becomes a copy of A. Both decode the same
 * token to identical logits; then copies C and D are taken as witnesses, A and B diverge
 * (interleaved steps, a truncation of A), and each must still step exactly like its witness.
 */
async function copyCheck(check: string, model: LoadedModel, prompt: readonly number[], longer: readonly number[]): Promise<void> {
  const copy = (from: number, to: number): Promise<void> => model.copySequence!(from, to);
  const step = (slot: number, token: number) => model.step(rows(slot, [token], model.sequenceLength(slot), "last"));
  const a = model.allocateSequence();
  await model.step(rows(a, prompt, 0, "last"));
  const b = model.allocateSequence();
  await model.step(rows(b, longer, 0, "last"));
  await copy(a, b);
  if (model.sequenceLength(b) !== prompt.length) throw mismatch(check, "length of the copy", { expected: prompt.length, actual: model.sequenceLength(b) });
  const fromA = await step(a, 7);
  const fromB = await step(b, 7);
  assertEqualArrays(`${check}: decode of the copy vs its source`, fromB, fromA);
  const witnessA = model.allocateSequence();
  await copy(a, witnessA);
  const witnessB = model.allocateSequence();
  await copy(b, witnessB);
  const a1 = await step(a, 1);
  const b1 = await step(b, 2); // same position as a1: shared storage would overwrite A's row
  const a2 = await step(a, 3);
  model.truncateSequence(a, prompt.length);
  const b2 = await step(b, 4);
  assertEqualArrays(`${check}: A after B stepped vs its witness`, a1, await step(witnessA, 1));
  assertEqualArrays(`${check}: A's second step after B stepped vs its witness`, a2, await step(witnessA, 3));
  assertEqualArrays(`${check}: B vs its witness`, b1, await step(witnessB, 2));
  assertEqualArrays(`${check}: B after A was truncated vs its witness`, b2, await step(witnessB, 4));
  if (model.sequenceLength(a) !== prompt.length)
    throw mismatch(check, "A's length after truncation", { expected: prompt.length, actual: model.sequenceLength(a) });
}

/** Claims have their methods; preferredBatchTokens fits; misuse of copy / export / import is refused the contract's way. */
function claimChecks(factory: () => Backend | Promise<Backend>, testModel: ConformanceTestModel, contextLength: number): ConformanceCheck[] {
  const { weights } = testModel;
  const c = weights.config;
  const E = KernelsErrorCode;
  return [
    {
      name: "capabilities/preferredBatchTokens is a whole number in [1, maxBatchTokens]; outputs list logits and known outputs",
      run: async () => {
        const caps = (await factory()).capabilities();
        const p = caps.preferredBatchTokens;
        if (!Number.isSafeInteger(p) || p < 1 || p > caps.maxBatchTokens)
          throw mismatch("preferredBatchTokens", "out of range", { expected: `a whole number in [1, ${caps.maxBatchTokens}]`, actual: p });
        if (!Array.isArray(caps.outputs) || !caps.outputs.includes("logits") || caps.outputs.some((o) => !(STEP_OUTPUTS as readonly string[]).includes(o))) {
          throw mismatch("outputs", "capabilities().outputs must list logits and only logits, argmax, top-k", { actual: caps.outputs });
        }
        for (const flag of ["hiddenRows", "copySequence", "sequenceTransfer"] as const) {
          if (typeof caps[flag] !== "boolean") throw mismatch(flag, `capabilities().${flag} must be a boolean`, { actual: caps[flag] });
        }
      },
    },
    {
      name: "capabilities/every claimed capability has its methods on a loaded model",
      run: async () => {
        const backend = await factory();
        const caps = backend.capabilities();
        const model = await backend.loadModel(weights, { contextLength });
        const missing: string[] = [];
        const deviceOutputs = Array.isArray(caps.outputs) && caps.outputs.some((o) => o !== "logits");
        if ((caps.hiddenRows || deviceOutputs) && typeof model.forward !== "function") missing.push("forward");
        if (caps.copySequence && typeof model.copySequence !== "function") missing.push("copySequence");
        if (caps.sequenceTransfer && typeof model.exportSequence !== "function") missing.push("exportSequence");
        if (caps.sequenceTransfer && typeof model.importSequence !== "function") missing.push("importSequence");
        model.dispose();
        if (missing.length > 0)
          throw mismatch(backend.name, "claimed capabilities lack their methods", {
            expected: "a method for every claim",
            actual: `missing ${missing.join(", ")}`,
          });
      },
    },
    {
      name: "misuse/copySequence refuses unknown slots; copying a slot to itself changes nothing",
      run: async () => {
        const backend = await factory();
        if (!backend.capabilities().copySequence) return notClaimed(backend, "copySequence");
        const model = await backend.loadModel(weights, { contextLength, maxSequences: 3 });
        try {
          const a = model.allocateSequence();
          const twin = model.allocateSequence();
          const freed = model.allocateSequence();
          model.freeSequence(freed);
          for (const slot of [a, twin]) await model.step(rows(slot, [1, 2, 3], 0, "last"));
          await assertThrowsCode("copy from an unknown slot", E.KERNELS_UNKNOWN_SLOT, () => model.copySequence!(99, a));
          await assertThrowsCode("copy to an unknown slot", E.KERNELS_UNKNOWN_SLOT, () => model.copySequence!(a, 99));
          await assertThrowsCode("copy to a freed slot", E.KERNELS_UNKNOWN_SLOT, () => model.copySequence!(a, freed));
          await assertThrowsCode("copy from a negative slot", E.KERNELS_UNKNOWN_SLOT, () => model.copySequence!(-1, a));
          await model.copySequence!(a, a);
          if (model.sequenceLength(a) !== 3) throw mismatch("copy a slot to itself", "length changed", { expected: 3, actual: model.sequenceLength(a) });
          const next = await model.step(rows(a, [4], 3, "last"));
          assertEqualArrays("decode after copying a slot to itself vs an untouched twin", next, await model.step(rows(twin, [4], 3, "last")));
          model.dispose();
          await assertThrowsCode("copy after dispose", E.KERNELS_DISPOSED, () => model.copySequence!(a, twin));
        } finally {
          model.dispose();
        }
        return undefined;
      },
    },
    {
      name: "sequenceTransfer/export is a copy, import copies its state, a round trip continues the sequence, bad states are refused",
      run: async () => {
        const backend = await factory();
        if (!backend.capabilities().sequenceTransfer) return notClaimed(backend, "sequenceTransfer");
        const model = await backend.loadModel(weights, { contextLength, maxSequences: 3 });
        try {
          const prompt = promptFor(13, 6, c.vocabSize);
          const a = model.allocateSequence();
          await model.step(rows(a, prompt, 0, "last"));
          const state = await model.exportSequence!(a);
          const kept: SequenceState = { ...state, keys: Float32Array.from(state.keys), values: Float32Array.from(state.values) };
          state.keys.fill(0.5);
          state.values.fill(-0.5);
          const again = await model.exportSequence!(a);
          assertEqualArrays("export after changing an earlier export (keys)", again.keys, kept.keys);
          assertEqualArrays("export after changing an earlier export (values)", again.values, kept.values);
          const b = await model.importSequence!(again);
          again.keys.fill(0.25);
          if (model.sequenceLength(b) !== prompt.length)
            throw mismatch("import", "length of the imported slot", { expected: prompt.length, actual: model.sequenceLength(b) });
          const fromA = await model.step(rows(a, [5], prompt.length, "last"));
          const fromB = await model.step(rows(b, [5], prompt.length, "last"));
          assertClose(
            "decode of an import of its own export vs the original (caller changed the state after import)",
            fromB,
            fromA,
            TOLERANCES.batchInvariance,
            () => 1,
          );
          model.freeSequence(b);

          const size = (length: number): number => c.numLayers * length * c.numKvHeads * c.headDim;
          const bad = (length: number): Float32Array => new Float32Array(size(length));
          const B = E.KERNELS_BAD_ARGUMENT;
          await assertThrowsCode("export of an unknown slot", E.KERNELS_UNKNOWN_SLOT, () => model.exportSequence!(99));
          await assertThrowsCode("import with numLayers + 1", B, () => model.importSequence!({ ...kept, numLayers: c.numLayers + 1 }));
          await assertThrowsCode("import with another numKvHeads", B, () => model.importSequence!({ ...kept, numKvHeads: c.numKvHeads + 1 }));
          await assertThrowsCode("import with another headDim", B, () => model.importSequence!({ ...kept, headDim: c.headDim + 2 }));
          await assertThrowsCode("import with keys one short", B, () => model.importSequence!({ ...kept, keys: kept.keys.subarray(1) }));
          await assertThrowsCode("import with values of a plain array", B, () =>
            model.importSequence!({ ...kept, values: Array.from(kept.values) as unknown as Float32Array }),
          );
          await assertThrowsCode("import of a NaN key", B, () =>
            model.importSequence!({ ...kept, keys: Float32Array.from(kept.keys, (v, i) => (i === 1 ? Number.NaN : v)) }),
          );
          await assertThrowsCode("import of an infinite value", B, () =>
            model.importSequence!({ ...kept, values: Float32Array.from(kept.values, (v, i) => (i === 2 ? -Infinity : v)) }),
          );
          await assertThrowsCode("import longer than the context", E.KERNELS_CONTEXT_OVERFLOW, () =>
            model.importSequence!({ ...kept, length: contextLength + 1, keys: bad(contextLength + 1), values: bad(contextLength + 1) }),
          );
          // Nothing above took a slot: two are free.
          const empty = await model.importSequence!({ ...kept, length: 0, keys: bad(0), values: bad(0) });
          if (model.sequenceLength(empty) !== 0) throw mismatch("import of an empty state", "length", { expected: 0, actual: model.sequenceLength(empty) });
          await model.importSequence!(kept);
          await assertThrowsCode("import with every slot taken", E.KERNELS_NO_FREE_SLOT, () => model.importSequence!(kept));
        } finally {
          model.dispose();
        }
        return undefined;
      },
    },
  ];
}
