// Contract 2's sequence calls on the CPU backend: copySequence, exportSequence / importSequence, the KV hand-off.
import { beforeAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import {
  KernelsErrorCode,
  TOLERANCES,
  argmaxRows,
  conformanceModel,
  KV_DTYPES,
  referenceBackend,
  sequenceBatch,
  type Backend,
  type LoadedModel,
  type SequenceState,
  type StepBatch,
} from "@halo/kernels";
import { createBackend } from "./cpu-backend.js";
import { builtIsas, isaSkipNote } from "./available-isas.js";

const weights = conformanceModel({
  seed: 5,
  activation: "relu2",
  scaleKind: "row",
  hiddenSize: 64,
  intermediateSize: 96,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
});
const c = weights.config;
const PROMPT = [7, 1, 30, 22, 5, 61, 9, 40, 2, 18, 44];
const CONTEXT = 48;

/** The last row's logits of `tokens` in one slot from `start` (plus `extra` batch fields). */
const rows = (slot: number, tokens: readonly number[], start: number, extra: Partial<StepBatch> = {}): StepBatch =>
  sequenceBatch(slot, tokens, start, "last", extra);

/** The code a promise rejects with (copy / export / import are asynchronous). */
async function rejectionOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return isHaloError(error) ? error.code : `not a HaloError: ${String(error)}`;
  }
  return undefined;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function bytesEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Equal as numbers: +0 and −0 are the same value (the reference's int8 rounding keeps the sign of a zero code, a C int8 cannot). */
function valuesEqual(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Greedy decode of `count` tokens from a slot whose last logits are `logits`: the tokens and every step's logits. */
async function decode(model: LoadedModel, slot: number, logits: Float32Array, count: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const tokens: number[] = [];
  const all: Float32Array[] = [];
  let last = logits;
  for (let i = 0; i < count; i++) {
    const next = argmaxRows(last, 1, c.vocabSize)[0]!;
    tokens.push(next);
    last = await model.step(rows(slot, [next], model.sequenceLength(slot)));
    all.push(last);
  }
  return { tokens, logits: all };
}

/** Float rows a step could have cached, with awkward values: large and small magnitudes, exact zeros, a zero head. */
function syntheticState(length: number, seed: number): SequenceState {
  const size = c.numLayers * length * c.numKvHeads * c.headDim;
  let x = seed >>> 0;
  const next = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  const fill = (): Float32Array =>
    Float32Array.from({ length: size }, (_, i) => {
      if (Math.floor(i / c.headDim) % 7 === 3) return 0; // a whole KV head of zeros: int8 scale 0
      const u = next();
      return u < 0.05 ? 0 : (u - 0.5) * (i % 5 === 0 ? 300 : 3);
    });
  return { length, numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, keys: fill(), values: fill() };
}

// Every path built for this architecture: one this CPU lacks is listed as skipped, with the reason in its name.
for (const isa of builtIsas()) {
  const note = isaSkipNote(isa);
  describe.skipIf(note !== "")(`cpu ${isa} copySequence${note}`, () => {
    // Made before the cases run, not while they are collected: a skipped path's backend would throw here.
    let backend!: Backend;
    beforeAll(() => {
      backend = createBackend({ isa, threads: 2 });
    });

    it.each(KV_DTYPES)("%s: the copy decodes exactly as the original, and the two are independent afterwards", async (kvDtype) => {
      const model = await backend.loadModel(weights, { contextLength: CONTEXT, maxSequences: 3, kvDtype });
      const a = model.allocateSequence();
      const prompt = await model.step(rows(a, PROMPT, 0));
      const b = model.allocateSequence();
      await model.step(rows(b, [4, 4, 4], 0)); // `to` holds another sequence first: it is replaced whole
      await model.copySequence!(a, b);
      expect(model.sequenceLength(b)).toBe(PROMPT.length);
      expect(bytesEqual((await model.exportSequence!(b)).keys, (await model.exportSequence!(a)).keys)).toBe(true);
      const fromCopy = await decode(model, b, prompt, 6);
      // The original, stepped after the copy went its own way, still decodes the same tokens and logits.
      const fromOriginal = await decode(model, a, prompt, 6);
      expect(fromCopy.tokens).toEqual(fromOriginal.tokens);
      fromCopy.logits.forEach((logits, i) => expect(bytesEqual(logits, fromOriginal.logits[i]!)).toBe(true));
      // Truncating and rewriting the copy leaves the original alone.
      model.truncateSequence(b, 2);
      await model.step(rows(b, [9, 9, 9], 2));
      const fresh = model.allocateSequence();
      await model.copySequence!(a, fresh);
      expect(bytesEqual((await model.exportSequence!(fresh)).values, (await model.exportSequence!(a)).values)).toBe(true);
      model.dispose();
    });

    it("copies an empty sequence; from === to changes nothing; unknown slots and a disposed model throw", async () => {
      const model = await backend.loadModel(weights, { contextLength: CONTEXT, maxSequences: 2, kvDtype: "int8" });
      const a = model.allocateSequence();
      const b = model.allocateSequence();
      await model.step(rows(b, PROMPT, 0));
      await model.copySequence!(a, b);
      expect(model.sequenceLength(b)).toBe(0);
      await model.step(rows(a, PROMPT, 0));
      const before = await model.exportSequence!(a);
      await model.copySequence!(a, a);
      expect(model.sequenceLength(a)).toBe(PROMPT.length);
      expect(bytesEqual((await model.exportSequence!(a)).keys, before.keys)).toBe(true);
      model.freeSequence(b);
      expect(await rejectionOf(() => model.copySequence!(a, b))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
      expect(await rejectionOf(() => model.copySequence!(b, a))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
      expect(await rejectionOf(() => model.copySequence!(-1, a))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
      expect(await rejectionOf(() => model.copySequence!(a, 1.5))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
      expect(model.sequenceLength(a)).toBe(PROMPT.length);
      model.dispose();
      expect(await rejectionOf(() => model.copySequence!(a, a))).toBe(KernelsErrorCode.KERNELS_DISPOSED);
    });
  });

  describe.skipIf(note !== "")(`cpu ${isa} exportSequence / importSequence${note}`, () => {
    // Made before the cases run, not while they are collected: a skipped path's backend would throw here.
    let backend!: Backend;
    beforeAll(() => {
      backend = createBackend({ isa, threads: 2 });
    });

    it.each(KV_DTYPES)("%s: import rounds through the dtype exactly as the reference's KV write; export reads back what attention reads", async (kvDtype) => {
      const cpu = await backend.loadModel(weights, { contextLength: CONTEXT, kvDtype });
      const reference = await referenceBackend().loadModel(weights, { contextLength: CONTEXT, kvDtype });
      const state = syntheticState(13, 42);
      const got = await cpu.exportSequence!(await cpu.importSequence!(state));
      const want = await reference.exportSequence!(await reference.importSequence!(state));
      expect(got.length).toBe(13);
      expect([got.numLayers, got.numKvHeads, got.headDim]).toEqual([c.numLayers, c.numKvHeads, c.headDim]);
      expect(valuesEqual(got.keys, want.keys)).toBe(true);
      expect(valuesEqual(got.values, want.values)).toBe(true);
      if (kvDtype !== "int8") expect(bytesEqual(got.keys, want.keys) && bytesEqual(got.values, want.values)).toBe(true);
      if (kvDtype === "f32") expect(bytesEqual(got.keys, state.keys)).toBe(true);
      else expect(bytesEqual(got.keys, state.keys)).toBe(false); // it did round
      // The caller's arrays are copies both ways.
      got.keys.fill(0);
      state.keys.fill(0);
      expect(valuesEqual((await cpu.exportSequence!(0)).keys, want.keys)).toBe(true);
      cpu.dispose();
    });

    it.each(KV_DTYPES)(
      "%s: export → import into another model → decode equals decoding the original slot (int8: within TOLERANCES.batchInvariance)",
      async (kvDtype) => {
        const source = await backend.loadModel(weights, { contextLength: CONTEXT, kvDtype });
        const target = await backend.loadModel(weights, { contextLength: CONTEXT, kvDtype });
        const slot = source.allocateSequence();
        const prompt = await source.step(rows(slot, PROMPT, 0));
        const state = await source.exportSequence!(slot);
        expect(state.keys).toHaveLength(c.numLayers * PROMPT.length * c.numKvHeads * c.headDim);
        const imported = await target.importSequence!(state);
        expect(target.sequenceLength(imported)).toBe(PROMPT.length);
        // Re-exported: an f32 or f16 row is the same bytes (it rounds to itself). An int8 row is within an ulp of its
        // scale: re-quantised, f32(f32(127·s) / 127) is s for about 99 % of scales and a neighbour of s otherwise.
        const again = await target.exportSequence!(imported);
        if (kvDtype === "int8") {
          for (const field of ["keys", "values"] as const) {
            state[field].forEach((v, i) => expect(Math.abs(again[field][i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -22));
          }
        } else {
          expect(bytesEqual(again.keys, state.keys) && bytesEqual(again.values, state.values)).toBe(true);
        }
        const moved = await decode(target, imported, prompt, 8);
        const stayed = await decode(source, slot, prompt, 8);
        expect(moved.tokens).toEqual(stayed.tokens);
        moved.logits.forEach((logits, i) => {
          if (kvDtype === "int8") expect(maxAbsDiff(logits, stayed.logits[i]!)).toBeLessThanOrEqual(TOLERANCES.batchInvariance);
          else expect(bytesEqual(logits, stayed.logits[i]!)).toBe(true);
        });
        source.dispose();
        target.dispose();
      },
    );

    it("an empty sequence exports and imports; truncation shortens the export", async () => {
      const model = await backend.loadModel(weights, { contextLength: CONTEXT, maxSequences: 3, kvDtype: "f16" });
      const empty = await model.exportSequence!(model.allocateSequence());
      expect(empty.length).toBe(0);
      expect(empty.keys).toHaveLength(0);
      const slot = await model.importSequence!(empty);
      expect(model.sequenceLength(slot)).toBe(0);
      const full = model.allocateSequence();
      await model.step(rows(full, PROMPT, 0));
      const whole = await model.exportSequence!(full);
      model.truncateSequence(full, 4);
      const cut = await model.exportSequence!(full);
      expect(cut.length).toBe(4);
      const width = c.numKvHeads * c.headDim;
      for (let l = 0; l < c.numLayers; l++) {
        const want = whole.keys.subarray(l * PROMPT.length * width, (l * PROMPT.length + 4) * width);
        expect(bytesEqual(cut.keys.subarray(l * 4 * width, (l + 1) * 4 * width), want)).toBe(true);
      }
      model.dispose();
    });
  });
}

describe("KV hand-off between backends (TOLERANCES.kvHandoff)", () => {
  it.each(KV_DTYPES)("%s: reference prefill → export → cpu import → cpu greedy decode equals cpu alone, and cpu → reference", async (kvDtype) => {
    const cpu = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: CONTEXT, maxSequences: 2, kvDtype });
    const reference = await referenceBackend().loadModel(weights, { contextLength: CONTEXT, maxSequences: 2, kvDtype });
    const steps = 10;

    // The reference prefills; the cpu decodes from its KV.
    const referenceSlot = reference.allocateSequence();
    const referencePrompt = await reference.step(rows(referenceSlot, PROMPT, 0));
    const handedToCpu = await cpu.importSequence!(await reference.exportSequence!(referenceSlot));
    // The cpu alone.
    const cpuSlot = cpu.allocateSequence();
    const cpuPrompt = await cpu.step(rows(cpuSlot, PROMPT, 0));
    expect(maxAbsDiff(referencePrompt, cpuPrompt)).toBeLessThanOrEqual(TOLERANCES.modelLogits);
    const cpuAlone = await decode(cpu, cpuSlot, cpuPrompt, steps);
    const viaReference = await decode(cpu, handedToCpu, referencePrompt, steps);
    expect(viaReference.tokens).toEqual(cpuAlone.tokens);
    viaReference.logits.forEach((logits, i) => expect(maxAbsDiff(logits, cpuAlone.logits[i]!), `cpu step ${i}`).toBeLessThanOrEqual(TOLERANCES.kvHandoff));

    // The cpu prefills (its slot truncated back to the prompt); the reference decodes from its KV.
    cpu.truncateSequence(cpuSlot, PROMPT.length);
    const handedToReference = await reference.importSequence!(await cpu.exportSequence!(cpuSlot));
    const referenceAlone = await decode(reference, referenceSlot, referencePrompt, steps);
    const viaCpu = await decode(reference, handedToReference, cpuPrompt, steps);
    expect(viaCpu.tokens).toEqual(referenceAlone.tokens);
    viaCpu.logits.forEach((logits, i) =>
      expect(maxAbsDiff(logits, referenceAlone.logits[i]!), `reference step ${i}`).toBeLessThanOrEqual(TOLERANCES.kvHandoff),
    );
    expect(viaCpu.tokens).toEqual(cpuAlone.tokens);
    cpu.dispose();
  });
});

describe("importSequence / exportSequence misuse", () => {
  it("refuses a state of another shape, a bad length, a too-long or non-finite state before taking a slot; unknown slots; no free slot; disposed", async () => {
    const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 8, maxSequences: 2, kvDtype: "int8" });
    const state = syntheticState(5, 7);
    const refused = async (bad: SequenceState): Promise<{ code: string | undefined; expected: unknown; actual: unknown }> => {
      try {
        await model.importSequence!(bad);
      } catch (error) {
        return isHaloError(error)
          ? { code: error.code, expected: error.expected, actual: error.actual }
          : { code: String(error), expected: undefined, actual: undefined };
      }
      return { code: undefined, expected: undefined, actual: undefined };
    };
    expect(await refused({ ...state, numLayers: c.numLayers + 1 })).toMatchObject({
      code: KernelsErrorCode.KERNELS_BAD_ARGUMENT,
      expected: c.numLayers,
      actual: c.numLayers + 1,
    });
    expect(await refused({ ...state, numKvHeads: 1 })).toMatchObject({ code: KernelsErrorCode.KERNELS_BAD_ARGUMENT, expected: c.numKvHeads, actual: 1 });
    expect(await refused({ ...state, headDim: 8 })).toMatchObject({ code: KernelsErrorCode.KERNELS_BAD_ARGUMENT, expected: c.headDim, actual: 8 });
    expect((await refused({ ...state, keys: state.keys.subarray(1) })).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect((await refused({ ...state, values: new Float64Array(state.values.length) as never })).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect((await refused({ ...state, length: 4 })).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect((await refused({ ...state, length: -1 })).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    const nan = syntheticState(5, 7);
    nan.values[3] = Number.NaN;
    expect((await refused(nan)).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    expect((await refused(syntheticState(9, 1))).code).toBe(KernelsErrorCode.KERNELS_CONTEXT_OVERFLOW);
    expect((await refused(null as never)).code).toBe(KernelsErrorCode.KERNELS_BAD_ARGUMENT);
    // None of those took a slot.
    const a = await model.importSequence!(state);
    const b = await model.importSequence!(syntheticState(8, 3));
    expect([a, b]).toEqual([0, 1]);
    expect(model.sequenceLength(b)).toBe(8);
    expect((await refused(state)).code).toBe(KernelsErrorCode.KERNELS_NO_FREE_SLOT);
    model.freeSequence(b);
    expect(await rejectionOf(() => model.exportSequence!(b))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
    expect(await rejectionOf(() => model.exportSequence!(7))).toBe(KernelsErrorCode.KERNELS_UNKNOWN_SLOT);
    // The imported slot steps on from its length.
    const logits = await model.step(rows(a, [3], 5));
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(model.sequenceLength(a)).toBe(6);
    model.dispose();
    expect(await rejectionOf(() => model.exportSequence!(a))).toBe(KernelsErrorCode.KERNELS_DISPOSED);
    expect(await rejectionOf(() => model.importSequence!(state))).toBe(KernelsErrorCode.KERNELS_DISPOSED);
  });
});

describe("sequence calls and steps in flight", () => {
  it("copy / export / import run after the step in flight; free / truncate of its slots are KERNELS_SLOT_BUSY until it settles", async () => {
    const model = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: CONTEXT, maxSequences: 4 });
    for (const method of ["copySequence", "exportSequence", "importSequence"] as const) expect(Object.hasOwn(model, method), method).toBe(true);
    const a = model.allocateSequence();
    await model.step(rows(a, PROMPT, 0));
    const b = model.allocateSequence();
    await model.step(rows(b, [4, 4, 4], 0));
    // A step of `to` in flight, then a copy into it: the copy lands after the step, so `to` ends as the copy
    // (the step's promise must not set its length back to the 16 positions it stepped).
    const long = Array.from({ length: 13 }, (_, i) => 20 + i);
    const stepping = model.step(rows(b, long, 3));
    for (const refuse of [() => model.truncateSequence(b, 0), () => model.freeSequence(b)]) {
      expect(refuse).toThrow(expect.objectContaining({ code: KernelsErrorCode.KERNELS_SLOT_BUSY, field: "slot", actual: b }));
    }
    model.truncateSequence(a, PROMPT.length); // a slot no step writes is free to change
    const copying = model.copySequence!(a, b);
    await Promise.all([stepping, copying]);
    expect(model.sequenceLength(b)).toBe(PROMPT.length);
    expect(bytesEqual((await model.exportSequence!(b)).keys, (await model.exportSequence!(a)).keys)).toBe(true);
    // An export asked for while its slot's prefill runs holds the prefill.
    const d = model.allocateSequence();
    const prefill = model.step(rows(d, PROMPT, 0));
    const exported = await model.exportSequence!(d);
    await prefill;
    expect(exported.length).toBe(PROMPT.length);
    expect(bytesEqual(exported.values, (await model.exportSequence!(a)).values)).toBe(true);
    // An import asked for while a step runs waits for it too; a settled step's slots are free to change.
    const next = model.step(rows(a, [3], PROMPT.length));
    model.freeSequence(d);
    const imported = await model.importSequence!(exported);
    await next;
    expect(model.sequenceLength(imported)).toBe(PROMPT.length);
    model.truncateSequence(b, 0);
    model.freeSequence(b);
    model.dispose();
  });
});
