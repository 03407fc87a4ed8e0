// Contract 2's forward on the CPU backend: native argmax / top-k against their scalar twins, hidden rows against the reference.
import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  KernelsErrorCode,
  TOLERANCES,
  argmaxRows,
  defaultConformanceModels,
  forwardBatch,
  referenceBackend,
  topKRows,
  type Backend,
  type LoadedModel,
  type StepBatch,
  sequenceBatch,
} from "@halo/kernels";
import { createBackend } from "./cpu-backend.js";
import { builtIsas, isaSkipNote } from "./available-isas.js";
import { nativeBinding, type NativeBinding, type NativeModelHandle } from "./native-binding.js";
import { CpuLoadedModel, hasContract2 } from "./cpu-loaded-model.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

// The suite's GQA model (SiLU, per-row scales, untied head: every contract-2 path on one small model).
const weights = defaultConformanceModels().find((m) => m.name === "gqa-silu-row-scale-untied")!.weights;
const c = weights.config;
const PROMPT = [3, 14, 15, 92, 65, 35, 89];

/** Every row's logits of `tokens` in one slot from `start` (plus `extra` batch fields). */
const rows = (slot: number, tokens: readonly number[], start: number, extra: Partial<StepBatch> = {}): StepBatch =>
  sequenceBatch(slot, tokens, start, "all", extra);

/** Largest finite float32 (the sampler's FLOAT32_MAX). */
const FLOAT32_MAX = 3.4028234663852886e38;

/** Logits with the cases the greedy rule must get right: ties, NaN, ±Infinity, ±FLOAT32_MAX, −0. */
const awkwardLogit = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -3, max: 3 }).map((v) => v / 2) },
  { weight: 3, arbitrary: fc.float({ noNaN: false }) },
  { weight: 2, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity, FLOAT32_MAX, -FLOAT32_MAX, -0, 0) },
);

describe("native argmax and top-k are argmaxRows / topKRows of @halo/kernels", () => {
  const native = nativeBinding();

  it("argmax: ties to the lowest id, NaN never wins, a row with nothing above −∞ gives −1", () => {
    expect(native.argmaxRows!(Float32Array.of(1, 3, 3, 0), 1, 4)).toEqual(Int32Array.of(1));
    expect(native.argmaxRows!(Float32Array.of(Number.NaN, 2, Number.NaN, 2), 1, 4)).toEqual(Int32Array.of(1));
    expect(native.argmaxRows!(Float32Array.of(Number.NaN, -Infinity, Number.NaN), 1, 3)).toEqual(Int32Array.of(-1));
    expect(native.argmaxRows!(Float32Array.of(-Infinity, -5), 1, 2)).toEqual(Int32Array.of(1));
    // +Infinity ranks as FLOAT32_MAX (the sampler's greedy sanitises it so): FLOAT32_MAX at a lower id wins the tie.
    expect(native.argmaxRows!(Float32Array.of(0, FLOAT32_MAX, Infinity), 1, 3)).toEqual(Int32Array.of(1));
    expect(native.argmaxRows!(Float32Array.of(Infinity, FLOAT32_MAX), 1, 2)).toEqual(Int32Array.of(0));
  });

  it("top-k ties +∞ with FLOAT32_MAX (the lower id first), as argmax does", () => {
    const out = native.topKRows!(Float32Array.of(0, 3.4028234663852886e38, Infinity), 1, 3, 2) as { ids: Int32Array; logits: Float32Array };
    expect(Array.from(out.ids)).toEqual([1, 2]);
    expect(Array.from(out.logits)).toEqual([3.4028234663852886e38, Infinity]);
  });

  it("top-k: higher logit, then lower id; NaN last (after −∞)", () => {
    const out = native.topKRows!(Float32Array.of(Number.NaN, -Infinity, 2, 2, 5), 1, 5, 5);
    expect(out).not.toBeTypeOf("number");
    const { ids, logits } = out as { ids: Int32Array; logits: Float32Array };
    expect(Array.from(ids)).toEqual([4, 2, 3, 1, 0]);
    expect(Array.from(logits)).toEqual([5, 2, 2, -Infinity, Number.NaN]);
  });

  it("agree with the twins on random rows (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(awkwardLogit, { minLength: 120, maxLength: 120 }),
        fc.nat(),
        (rowCount, vocab, pool, kSeed) => {
          const logits = Float32Array.from({ length: rowCount * vocab }, (_, i) => pool[i % pool.length]!);
          const k = 1 + (kSeed % vocab);
          expect(native.argmaxRows!(logits, rowCount, vocab)).toEqual(argmaxRows(logits, rowCount, vocab));
          const got = native.topKRows!(logits, rowCount, vocab, k) as { ids: Int32Array; logits: Float32Array };
          const want = topKRows(logits, rowCount, vocab, k);
          expect(got.ids).toEqual(want.ids);
          // Compared bitwise so that NaN and −0 count too.
          expect(new Uint32Array(got.logits.buffer)).toEqual(new Uint32Array(want.logits.buffer));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses a k outside [1, vocab] and arrays that are not whole rows", () => {
    expect(native.topKRows!(new Float32Array(4), 1, 4, 0)).toBe(1);
    expect(native.topKRows!(new Float32Array(4), 1, 4, 5)).toBe(1);
    expect(native.argmaxRows!(new Float32Array(5), 1, 4)).toBe(1);
  });
});

// Every path built for this architecture: one this CPU lacks is listed as skipped, with the reason in its name.
for (const isa of builtIsas()) {
  const note = isaSkipNote(isa);
  describe.skipIf(note !== "")(`cpu ${isa} forward${note}`, () => {
    // Made before the cases run, not while they are collected: a skipped path's backend would throw here.
    let backend!: Backend;
    beforeAll(() => {
      backend = createBackend({ isa, threads: 2 });
    });

    it("lists argmax, top-k, hidden rows, copy and sequence transfer", () => {
      const caps = backend.capabilities();
      expect(caps.outputs).toEqual(["logits", "argmax", "top-k"]);
      expect([caps.hiddenRows, caps.copySequence, caps.sequenceTransfer]).toEqual([true, true, true]);
    });

    it("logits equal step's byte for byte; argmax and top-k are argmaxRows / topKRows of them", async () => {
      const model = await backend.loadModel(weights, { contextLength: 32, maxSequences: 3 });
      const [a, b, d] = [model.allocateSequence(), model.allocateSequence(), model.allocateSequence()];
      const logits = await model.step(rows(a, PROMPT, 0));
      const forward = await model.forward!(rows(b, PROMPT, 0));
      expect(Buffer.from(forward.logits.buffer).equals(Buffer.from(logits.buffer))).toBe(true);
      expect(forward.hidden).toBeUndefined();
      expect(forward.argmax).toBeUndefined();
      const { argmax, logits: empty } = await model.forward!(rows(d, PROMPT, 0, { output: "argmax" }));
      expect(empty).toHaveLength(0);
      expect(argmax).toEqual(argmaxRows(logits, PROMPT.length, c.vocabSize));
      for (const k of [1, 5, c.vocabSize]) {
        model.truncateSequence(d, 0);
        const result = await model.forward!(rows(d, PROMPT, 0, { output: "top-k", topK: k }));
        expect(result.logits).toHaveLength(0);
        expect(result.topK).toEqual(topKRows(logits, PROMPT.length, c.vocabSize, k));
      }
      expect(model.sequenceLength(d)).toBe(PROMPT.length);
      model.dispose();
    });

    it("argmax equals the reference's greedy ids; hidden rows match the reference within TOLERANCES.hiddenStates", async () => {
      for (const kvDtype of ["f32", "f16", "int8"] as const) {
        const cpu = await backend.loadModel(weights, { contextLength: 32, kvDtype });
        const reference = await referenceBackend().loadModel(weights, { contextLength: 32, kvDtype });
        const hiddenRows = Int32Array.of(0, 3, PROMPT.length - 1);
        const want = await reference.forward!(rows(reference.allocateSequence(), PROMPT, 0, { output: "argmax", hiddenRows }));
        const got = await cpu.forward!(rows(cpu.allocateSequence(), PROMPT, 0, { output: "argmax", hiddenRows }));
        reference.dispose();
        expect(got.argmax).toEqual(want.argmax);
        expect(got.hidden).toHaveLength(hiddenRows.length * c.hiddenSize);
        for (let r = 0; r < hiddenRows.length; r++) {
          const expected = want.hidden!.subarray(r * c.hiddenSize, (r + 1) * c.hiddenSize);
          const actual = got.hidden!.subarray(r * c.hiddenSize, (r + 1) * c.hiddenSize);
          const scale = Math.max(...Array.from(expected, Math.abs));
          const error = Math.max(...Array.from(expected, (e, i) => Math.abs(e - actual[i]!))) / scale;
          expect(error, `${kvDtype} hidden row ${hiddenRows[r]}`).toBeLessThanOrEqual(TOLERANCES.hiddenStates);
        }
        cpu.dispose();
      }
    });

    it("hidden rows are the batch's own rows: the same as a step of that row's prefix alone, with any output", async () => {
      const model = await backend.loadModel(weights, { contextLength: 32, maxSequences: 2 });
      const whole = await model.forward!(rows(model.allocateSequence(), PROMPT, 0, { output: "top-k", topK: 3, hiddenRows: Int32Array.of(2) }));
      const slot = model.allocateSequence();
      await model.step(rows(slot, PROMPT.slice(0, 2), 0));
      const alone = await model.forward!(rows(slot, [PROMPT[2]!], 2, { hiddenRows: Int32Array.of(0) }));
      const error = Math.max(...Array.from(alone.hidden!, (v, i) => Math.abs(v - whole.hidden![i]!)));
      expect(error).toBeLessThanOrEqual(TOLERANCES.batchInvariance);
      expect(alone.logits).toHaveLength(c.vocabSize);
      const empty = await model.forward!(rows(slot, [PROMPT[3]!], 3, { hiddenRows: new Int32Array(0) }));
      expect(empty.hidden).toEqual(new Float32Array(0));
      model.dispose();
    });
  });
}

describe("cpu forward misuse", () => {
  it("step refuses contract-2 outputs; forward refuses bad outputs before any KV is written; disposed is KERNELS_DISPOSED", async () => {
    const model: LoadedModel = await createBackend({ threads: 2 }).loadModel(weights, { contextLength: 16 });
    const slot = model.allocateSequence();
    expect(await haloCodeOf(() => model.step(rows(slot, [1], 0, { output: "argmax" })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.step(rows(slot, [1], 0, { hiddenRows: Int32Array.of(0) })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { output: "top-k", topK: 0 })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { output: "top-k", topK: c.vocabSize + 1 })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { output: "argmax", topK: 2 })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { output: "best" as never })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1, 2], 0, { hiddenRows: Int32Array.of(1, 1) })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { hiddenRows: Int32Array.of(1) })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(await haloCodeOf(() => model.forward!(rows(slot, [1], 0, { hiddenRows: [0] as never })))).toBe(KernelsErrorCode.KERNELS_BAD_BATCH);
    expect(model.sequenceLength(slot)).toBe(0);
    const ok = await model.forward!(rows(slot, [1], 0, { output: "argmax" }));
    expect(ok.argmax).toHaveLength(1);
    model.dispose();
    expect(await haloCodeOf(() => model.forward!(rows(slot, [2], 1)))).toBe(KernelsErrorCode.KERNELS_DISPOSED);
  });
});

describe("an addon built before contract 2 (a stale prebuild)", () => {
  it("is detected; forward derives argmax / top-k on the host and refuses hidden rows naming the rebuild; copy / export / import are absent, as capabilities say", async () => {
    expect(hasContract2(nativeBinding())).toBe(true);
    expect(hasContract2({ NativeModel: class {} } as unknown as NativeBinding)).toBe(false);
    const stale = { step: async () => new Float32Array(c.vocabSize), allocSlot: () => 0, freeSlot: () => 0, dispose: () => {} } as unknown as NativeModelHandle;
    const model = new CpuLoadedModel(c, { contextLength: 8, maxSequences: 2, kvDtype: "f32", activationQuant: "per-token" }, stale, 16);
    const slot = model.allocateSequence();
    expect(await model.step(rows(slot, [1], 0))).toHaveLength(c.vocabSize);
    // forward still answers what the old step can (argmax and top-k of its logits, on the host); hidden rows it cannot.
    const { argmax } = await model.forward(rows(slot, [1], 1, { output: "argmax" }));
    expect(argmax).toEqual(Int32Array.of(0));
    const { topK } = await model.forward(rows(slot, [1], 2, { output: "top-k", topK: 2, hiddenRows: new Int32Array(0) }));
    expect(topK?.ids).toEqual(Int32Array.of(0, 1));
    const refusal = await model.forward(rows(slot, [1], 3, { hiddenRows: Int32Array.of(0) })).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG, field: "hiddenRows" });
    expect(String((refusal as Error).message)).toMatch(/Rebuild it: `npm rebuild @halo\/kernels-cpu`/);
    await expect(forwardBatch(model, rows(slot, [1], 3, { hiddenRows: Int32Array.of(0) }))).rejects.toMatchObject({
      code: KernelsErrorCode.KERNELS_UNSUPPORTED_CONFIG,
    });
    for (const method of ["copySequence", "exportSequence", "importSequence"] as const) {
      expect(method in model, method).toBe(false);
      expect(typeof (model as LoadedModel)[method], method).toBe("undefined");
    }
    expect(model.sequenceLength(slot)).toBe(3);
  });
});
