// Reference backend, contract 2: forward outputs and hidden rows, copySequence, export/import of a sequence, estimateMemory.
import { sequenceBatch } from "../conformance/model-checks.js";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { LoadedModel, SequenceState, StepBatch } from "../contract/loaded-model.js";
import { argmaxRows, topKRows } from "../contract/forward.js";
import { defaultConformanceModels } from "../conformance/run-conformance.js";
import { referenceBackend, referenceBackendFactory } from "./reference-backend.js";
import type { ReferenceLoadedModel } from "./reference-model.js";
import { oracleForward, oracleHead, oracleRmsNorm } from "../conformance/oracle.js";

// The suite's GQA model (SiLU, per-row scales, untied head: every contract-2 path on one small model).
const weights = defaultConformanceModels().find((m) => m.name === "gqa-silu-row-scale-untied")!.weights;
const c = weights.config;
const PROMPT = [3, 14, 15, 92, 65, 35, 89];

/** Every row's logits of `tokens` in one slot from `start` (plus `extra` batch fields). */
const rows = (slot: number, tokens: readonly number[], start: number, extra: Partial<StepBatch> = {}): StepBatch =>
  sequenceBatch(slot, tokens, start, "all", extra);

async function load(options: { kvDtype?: "f32" | "f16" | "int8"; maxSequences?: number; contextLength?: number } = {}): Promise<ReferenceLoadedModel> {
  return (await referenceBackend().loadModel(weights, { contextLength: 32, maxSequences: 4, ...options })) as ReferenceLoadedModel;
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return isHaloError(error) ? error.code : String(error);
  }
  return undefined;
}

/** The code a promise rejects with (copy / export / import are asynchronous). */
async function rejectionOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return isHaloError(error) ? error.code : String(error);
  }
  return undefined;
}

describe("reference forward", () => {
  it("logits equal step's byte for byte; argmax and top-k are argmaxRows / topKRows of them", async () => {
    const model = await load();
    const a = model.allocateSequence();
    const b = model.allocateSequence();
    const c2 = model.allocateSequence();
    const logits = await model.step(rows(a, PROMPT, 0));
    const forward = await model.forward(rows(b, PROMPT, 0));
    expect(Buffer.from(forward.logits.buffer).equals(Buffer.from(logits.buffer))).toBe(true);
    expect(forward.hidden).toBeUndefined();
    const { argmax, logits: empty } = await model.forward(rows(c2, PROMPT, 0, { output: "argmax" }));
    expect(empty).toHaveLength(0);
    expect(argmax).toEqual(argmaxRows(logits, PROMPT.length, c.vocabSize));
    for (const k of [1, 5, c.vocabSize]) {
      model.truncateSequence(c2, 0);
      const { topK } = await model.forward(rows(c2, PROMPT, 0, { output: "top-k", topK: k }));
      expect(topK).toEqual(topKRows(logits, PROMPT.length, c.vocabSize, k));
    }
    expect(model.sequenceLength(c2)).toBe(PROMPT.length);
  });

  it("hidden rows are the residual stream before the output norm: the oracle's norm + head of them give the logits bit for bit", async () => {
    const model = await load();
    const slot = model.allocateSequence();
    const { logits, hidden } = await model.forward(rows(slot, PROMPT, 0, { hiddenRows: Int32Array.of(0, 2, 6) }));
    expect(hidden).toHaveLength(3 * c.hiddenSize);
    const wanted = Int32Array.of(0, 2, 6);
    // The conformance oracle's float64 norm and head (no reference code), not the reference's own functions.
    const expected = oracleHead(
      Float32Array.from(oracleRmsNorm(hidden!, weights.outputNorm.toFloat32(), c.rmsNormEps)),
      weights.lmHead!.toFloat32(),
      c.vocabSize,
    );
    wanted.forEach((row, i) =>
      expect(expected.subarray(i * c.vocabSize, (i + 1) * c.vocabSize)).toEqual(logits.subarray(row * c.vocabSize, (row + 1) * c.vocabSize)),
    );
    // And the hidden rows themselves equal the float64 oracle model's (f32 KV, the reference's default) bit for bit.
    const oracle = oracleForward(weights, PROMPT, "per-token").hidden;
    wanted.forEach((row, i) =>
      expect(hidden!.subarray(i * c.hiddenSize, (i + 1) * c.hiddenSize)).toEqual(oracle.subarray(row * c.hiddenSize, (row + 1) * c.hiddenSize)),
    );
  });

  it("an empty hiddenRows gives an empty hidden array; step refuses outputs and hidden rows before changing anything", async () => {
    const model = await load();
    const slot = model.allocateSequence();
    expect((await model.forward(rows(slot, [1], 0, { hiddenRows: new Int32Array(0) }))).hidden).toHaveLength(0);
    await expect(model.step(rows(slot, [2], 1, { output: "argmax" }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH", field: "output" });
    await expect(model.step(rows(slot, [2], 1, { hiddenRows: Int32Array.of(0) }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH", field: "hiddenRows" });
    await expect(model.forward(rows(slot, [2], 1, { output: "top-k", topK: c.vocabSize + 1 }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH" });
    await expect(model.forward(rows(slot, [2], 1, { hiddenRows: Int32Array.of(1) }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH" });
    expect(model.sequenceLength(slot)).toBe(1);
  });
});

describe("reference copySequence", () => {
  it("copies length and values exactly; the copies are independent afterwards; from === to changes nothing", async () => {
    const model = await load();
    const a = model.allocateSequence();
    const b = model.allocateSequence();
    await model.step(rows(a, PROMPT, 0));
    await model.step(rows(b, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9], 0)); // longer than A: the copy must shorten it
    await model.copySequence(a, b);
    expect(model.sequenceLength(b)).toBe(PROMPT.length);
    expect(await model.exportSequence(b)).toEqual(await model.exportSequence(a));
    await model.copySequence(a, a);
    expect(model.sequenceLength(a)).toBe(PROMPT.length);
    const la = await model.step(rows(a, [7], PROMPT.length));
    const lb = await model.step(rows(b, [7], PROMPT.length));
    expect(lb).toEqual(la);
    await model.step(rows(a, [1, 2], PROMPT.length + 1));
    model.truncateSequence(b, 2);
    expect(model.sequenceLength(a)).toBe(PROMPT.length + 3);
    expect(await rejectionOf(() => model.copySequence(a, 3))).toBe("KERNELS_UNKNOWN_SLOT");
    expect(await rejectionOf(() => model.copySequence(-1, a))).toBe("KERNELS_UNKNOWN_SLOT");
    model.dispose();
    expect(await rejectionOf(() => model.copySequence(a, b))).toBe("KERNELS_DISPOSED");
  });
});

describe("reference exportSequence / importSequence", () => {
  for (const kvDtype of ["f32", "f16", "int8"] as const) {
    it(`kv=${kvDtype}: import of an export continues the sequence with the same logits`, async () => {
      const model = await load({ kvDtype });
      const slot = model.allocateSequence();
      await model.step(rows(slot, PROMPT, 0));
      const state = await model.exportSequence(slot);
      expect(state).toMatchObject({ length: PROMPT.length, numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim });
      expect(state.keys).toHaveLength(c.numLayers * PROMPT.length * c.numKvHeads * c.headDim);
      const imported = await model.importSequence(state);
      expect(model.sequenceLength(imported)).toBe(PROMPT.length);
      // Rows already rounded through the dtype round to themselves.
      expect(await model.exportSequence(imported)).toEqual(state);
      const original = await model.step(rows(slot, [5, 6], PROMPT.length));
      const continued = await model.step(rows(imported, [5, 6], PROMPT.length));
      expect(continued).toEqual(original);
    });
  }

  it("the export is a copy, and the import copies the state", async () => {
    const model = await load();
    const slot = model.allocateSequence();
    await model.step(rows(slot, PROMPT, 0));
    const state = await model.exportSequence(slot);
    const keep = await model.exportSequence(slot);
    state.keys.fill(1);
    expect(await model.exportSequence(slot)).toEqual(keep);
    const imported = await model.importSequence(keep);
    keep.values.fill(2);
    expect(await model.exportSequence(imported)).toEqual(await model.exportSequence(slot));
  });

  it("import rounds f32 rows through the KV dtype exactly as a step writes them", async () => {
    const f32 = await load();
    const slot = f32.allocateSequence();
    await f32.step(rows(slot, PROMPT, 0));
    const state = await f32.exportSequence(slot);
    // Layer 0's keys and values do not depend on the cache (later layers read rounded rows), so an f16 or int8
    // step writes exactly the f32 rows rounded.
    const layer0 = PROMPT.length * c.numKvHeads * c.headDim;
    for (const kvDtype of ["f16", "int8"] as const) {
      const model = await load({ kvDtype });
      const own = model.allocateSequence();
      await model.step(rows(own, PROMPT, 0));
      const imported = await model.exportSequence(await model.importSequence(state));
      const stepped = await model.exportSequence(own);
      expect(imported.keys.subarray(0, layer0)).toEqual(stepped.keys.subarray(0, layer0));
      expect(imported.values.subarray(0, layer0)).toEqual(stepped.values.subarray(0, layer0));
      expect(imported.keys.subarray(0, layer0)).not.toEqual(state.keys.subarray(0, layer0)); // it really rounded
    }
  });

  it("refuses bad states with typed errors before taking a slot", async () => {
    const model = await load({ maxSequences: 2, contextLength: 8 });
    const slot = model.allocateSequence();
    await model.step(rows(slot, [1, 2, 3], 0));
    const good = await model.exportSequence(slot);
    const size = (length: number): number => c.numLayers * length * c.numKvHeads * c.headDim;
    const bad: Array<[string, SequenceState, string, string]> = [
      ["numLayers", { ...good, numLayers: c.numLayers + 1 }, "KERNELS_BAD_ARGUMENT", "numLayers"],
      ["numKvHeads", { ...good, numKvHeads: 1 }, "KERNELS_BAD_ARGUMENT", "numKvHeads"],
      ["headDim", { ...good, headDim: c.headDim * 2 }, "KERNELS_BAD_ARGUMENT", "headDim"],
      ["length -1", { ...good, length: -1 }, "KERNELS_BAD_ARGUMENT", "length"],
      ["length 1.5", { ...good, length: 1.5 }, "KERNELS_BAD_ARGUMENT", "length"],
      ["past context", { ...good, length: 9, keys: new Float32Array(size(9)), values: new Float32Array(size(9)) }, "KERNELS_CONTEXT_OVERFLOW", "length"],
      ["short keys", { ...good, keys: good.keys.subarray(1) }, "KERNELS_BAD_ARGUMENT", "keys"],
      ["values not f32", { ...good, values: Array.from(good.values) as unknown as Float32Array }, "KERNELS_BAD_ARGUMENT", "values"],
      ["NaN key", { ...good, keys: Float32Array.from(good.keys, (v, i) => (i === 5 ? Number.NaN : v)) }, "KERNELS_BAD_ARGUMENT", "keys[5]"],
      ["Infinity value", { ...good, values: Float32Array.from(good.values, (v, i) => (i === 0 ? Infinity : v)) }, "KERNELS_BAD_ARGUMENT", "values[0]"],
    ];
    for (const [what, state, code, field] of bad) {
      try {
        await model.importSequence(state);
        expect.unreachable(what);
      } catch (error) {
        expect({ what, code: isHaloError(error) && error.code, field: isHaloError(error) && error.field }).toEqual({ what, code, field });
      }
    }
    expect(await rejectionOf(() => model.importSequence(null as unknown as SequenceState))).toBe("KERNELS_BAD_ARGUMENT");
    // A full context is a valid state (its next step overflows).
    const full = await model.importSequence({ ...good, length: 8, keys: new Float32Array(size(8)), values: new Float32Array(size(8)) });
    expect(model.sequenceLength(full)).toBe(8);
    expect(await rejectionOf(() => model.importSequence(good))).toBe("KERNELS_NO_FREE_SLOT");
    expect(await rejectionOf(() => model.exportSequence(5))).toBe("KERNELS_UNKNOWN_SLOT");
    model.freeSequence(full);
    expect(model.sequenceLength(await model.importSequence({ ...good, length: 0, keys: new Float32Array(0), values: new Float32Array(0) }))).toBe(0);
  });

  it("property: any finite state imports into an f32 cache and exports unchanged", async () => {
    const model: LoadedModel = await load({ maxSequences: 1, contextLength: 6 });
    const width = c.numKvHeads * c.headDim;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 6 }), fc.integer(), async (length, seed) => {
        const n = c.numLayers * length * width;
        const values = (salt: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed + salt * 7919 + i) * 1000));
        const state: SequenceState = { length, numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, keys: values(1), values: values(2) };
        const slot = await model.importSequence!(state);
        expect(await model.exportSequence!(slot)).toEqual(state);
        model.freeSequence(slot);
      }),
      { numRuns: 40 },
    );
  });
});

describe("reference estimateMemory", () => {
  it("counts int8 trits, float32 norms, embedding, head and KV, and scratch for preferredBatchTokens rows", () => {
    const backend = referenceBackend();
    const e = backend.estimateMemory!(c, { contextLength: 32, maxSequences: 3, kvDtype: "int8" });
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const trits = c.numLayers * ((qDim + 2 * kvDim) * c.hiddenSize + c.hiddenSize * qDim + 3 * c.intermediateSize * c.hiddenSize);
    const norms = 4 * (c.numLayers * (2 * c.hiddenSize + qDim + c.intermediateSize) + c.hiddenSize);
    const table = 4 * c.vocabSize * c.hiddenSize;
    expect(e.weightsBytes).toBe(trits + norms + 2 * table); // untied: embedding and head
    expect(e.headBytes).toBe(table);
    expect(e.kvBytesPerPosition).toBe(2 * c.numLayers * kvDim * 4); // float32 whatever the dtype
    expect(e.kvBytes).toBe(3 * 32 * e.kvBytesPerPosition);
    expect(e.totalBytes).toBe(e.weightsBytes + e.kvBytes + e.scratchBytes);
    expect(e.decodeReadBytes).toBe(trits + norms + table + 4 * c.hiddenSize);
    expect(e.scratchBytes).toBeGreaterThan(backend.capabilities().preferredBatchTokens * c.vocabSize * 4);
    const t = backend.estimateMemory!({ ...c, tiedEmbeddings: true }, { contextLength: 8 });
    expect(t.kvBytes).toBe(8 * t.kvBytesPerPosition); // maxSequences defaults to 1
    expect(t.weightsBytes).toBe(e.weightsBytes - table); // a tied head is the embedding, counted once
    expect(t.headBytes).toBe(table);
  });

  it("refuses options a load would refuse", () => {
    const backend = referenceBackend({ maxSequences: 2 });
    expect(codeOf(() => backend.estimateMemory!(c, { contextLength: 0 }))).toBe("KERNELS_BAD_OPTION");
    expect(codeOf(() => backend.estimateMemory!(c, { contextLength: 8, maxSequences: 3 }))).toBe("KERNELS_BAD_OPTION");
    expect(codeOf(() => backend.estimateMemory!(c, { contextLength: 8, kvDtype: "q4" as never }))).toBe("KERNELS_BAD_OPTION");
  });
});

describe("referenceBackend maxSequences option", () => {
  it.each([0, -1, 1.5, Number.NaN, "4" as unknown as number])("refuses maxSequences=%s with KERNELS_BAD_OPTION", (maxSequences) => {
    expect(codeOf(() => referenceBackend({ maxSequences }))).toBe(KernelsErrorCode.KERNELS_BAD_OPTION);
    expect(codeOf(() => referenceBackendFactory.create({ maxSequences }))).toBe(KernelsErrorCode.KERNELS_BAD_OPTION);
  });

  it("caps the sequences a load may ask for", async () => {
    const backend = referenceBackend({ maxSequences: 2 });
    expect(backend.capabilities().maxSequences).toBe(2);
    await expect(backend.loadModel(weights, { contextLength: 8, maxSequences: 3 })).rejects.toMatchObject({ code: "KERNELS_BAD_OPTION" });
  });
});
