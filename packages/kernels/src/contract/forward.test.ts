// argmaxRows / topKRows (the definitions of on-device outputs), validateOutputs, requireLogitsOnly and forwardBatch's fallback to step.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { conformanceModel } from "../conformance/test-model.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { argmaxRows, forwardBatch, topKRows } from "./forward.js";
import type { LoadedModel, StepBatch } from "./loaded-model.js";
import { requireLogitsOnly, validateOutputs } from "./validate-batch.js";

function thrown(run: () => unknown): { code: string | false; field: string | undefined } | undefined {
  try {
    run();
  } catch (error) {
    return { code: isHaloError(error) && error.code, field: isHaloError(error) ? error.field : undefined };
  }
  return undefined;
}

/** Largest finite float32 (the sampler's FLOAT32_MAX, what its greedy sanitises +Infinity to). */
const FLOAT32_MAX = 3.4028234663852886e38;

/** Logit rows with many ties and the edge values: NaN, ±Infinity, ±FLOAT32_MAX, −0. */
const logitRows = fc.integer({ min: 1, max: 12 }).chain((vocab) =>
  fc.tuple(
    fc.constant(vocab),
    fc.integer({ min: 1, max: 4 }).chain((rows) =>
      fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(Number.NaN, Infinity, -Infinity, FLOAT32_MAX, -FLOAT32_MAX, -0, 0.5)), {
        minLength: rows * vocab,
        maxLength: rows * vocab,
      }),
    ),
  ),
);

/** The sampler's greedy, spelled out: sanitise (+Infinity → FLOAT32_MAX), then the highest, lowest id on ties, NaN and −Infinity never; −1 when none. */
function samplerGreedy(row: readonly number[]): number {
  let best = -1;
  let bestValue = -Infinity;
  row.forEach((raw, i) => {
    const v = raw === Infinity ? FLOAT32_MAX : raw;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  });
  return best;
}

/** The ranking rule spelled out: higher logit first, NaN last, lower id on ties. */
function naiveRank(row: readonly number[]): number[] {
  const ids = row.map((_, i) => i);
  const rank = (v: number): number => (Number.isNaN(v) ? 0 : 1);
  return ids.sort(
    (a, b) => rank(row[b]!) - rank(row[a]!) || (row[a]! === row[b]! || (Number.isNaN(row[a]!) && Number.isNaN(row[b]!)) ? a - b : row[b]! > row[a]! ? 1 : -1),
  );
}

describe("argmaxRows", () => {
  it("takes the lowest id on ties, never NaN, and −1 for a row with nothing above −∞", () => {
    expect(argmaxRows(Float32Array.of(1, 3, 3, 0), 1, 4)).toEqual(Int32Array.of(1));
    expect(argmaxRows(Float32Array.of(Number.NaN, 2, Number.NaN, 2), 1, 4)).toEqual(Int32Array.of(1));
    expect(argmaxRows(Float32Array.of(Number.NaN, Number.NaN, Number.NaN), 1, 3)).toEqual(Int32Array.of(-1));
    expect(argmaxRows(Float32Array.of(-Infinity, -Infinity, Number.NaN, 5, 5, -1), 2, 3)).toEqual(Int32Array.of(-1, 0));
    expect(argmaxRows(Float32Array.of(Number.NaN, 1, -Infinity), 1, 3)).toEqual(Int32Array.of(1)); // a leading NaN is not the answer
  });

  it("ranks +Infinity as FLOAT32_MAX, as the sampler's greedy does: FLOAT32_MAX at a lower id wins", () => {
    expect(argmaxRows(Float32Array.of(0, FLOAT32_MAX, Infinity), 1, 3)).toEqual(Int32Array.of(1));
    expect(argmaxRows(Float32Array.of(Infinity, FLOAT32_MAX), 1, 2)).toEqual(Int32Array.of(0));
    expect(argmaxRows(Float32Array.of(-0, 0), 1, 2)).toEqual(Int32Array.of(0));
  });

  it("property: the first id of the ranking (highest, NaN last, lowest id on ties)", () => {
    fc.assert(
      fc.property(logitRows, ([vocab, values]) => {
        const rows = values.length / vocab;
        const got = argmaxRows(Float32Array.from(values), rows, vocab);
        for (let r = 0; r < rows; r++) {
          const row = values.slice(r * vocab, (r + 1) * vocab);
          // A row of −Infinity and NaN only has nothing to sample: −1.
          const nothingAbove = row.every((v) => Number.isNaN(v) || v === -Infinity);
          expect(got[r]).toBe(nothingAbove ? -1 : naiveRank(row.map((v) => (v === Infinity ? FLOAT32_MAX : v)))[0]);
          expect(got[r]).toBe(samplerGreedy(Array.from(Float32Array.from(row))));
        }
      }),
    );
  });
});

describe("topKRows", () => {
  it("ranks higher first, lower id on ties, NaN last; k = vocab is the whole ranking", () => {
    const top = topKRows(Float32Array.of(1, Number.NaN, 3, 3, 0), 1, 5, 5);
    expect(Array.from(top.ids)).toEqual([2, 3, 0, 4, 1]);
    expect(Array.from(top.logits)).toEqual([3, 3, 1, 0, Number.NaN]);
    expect(top.k).toBe(5);
    expect(topKRows(Float32Array.of(1, 3, 3, 0, 9, 8, 9, 7), 2, 4, 2)).toEqual({ k: 2, ids: Int32Array.of(1, 2, 0, 2), logits: Float32Array.of(3, 3, 9, 9) });
  });

  it("ties +Infinity with FLOAT32_MAX, lower id first (top-1 is argmaxRows' answer)", () => {
    expect(Array.from(topKRows(Float32Array.of(0, FLOAT32_MAX, Infinity), 1, 3, 2).ids)).toEqual([1, 2]);
    expect(Array.from(topKRows(Float32Array.of(Infinity, FLOAT32_MAX), 1, 2, 2).ids)).toEqual([0, 1]);
  });

  it("property: equals the spelled-out ranking, its logits are the row's, and top-1 agrees with argmaxRows on finite rows", () => {
    fc.assert(
      fc.property(logitRows, fc.integer({ min: 1, max: 12 }), ([vocab, values], kRaw) => {
        const k = Math.min(kRaw, vocab);
        const rows = values.length / vocab;
        const logits = Float32Array.from(values);
        const top = topKRows(logits, rows, vocab, k);
        const all = topKRows(logits, rows, vocab, vocab);
        expect(top.ids).toHaveLength(rows * k);
        for (let r = 0; r < rows; r++) {
          const row = values.slice(r * vocab, (r + 1) * vocab);
          const ranking = naiveRank(row.map((v) => (v === Infinity ? FLOAT32_MAX : v)));
          expect(Array.from(top.ids.subarray(r * k, (r + 1) * k))).toEqual(ranking.slice(0, k));
          expect(Array.from(top.logits.subarray(r * k, (r + 1) * k))).toEqual(ranking.slice(0, k).map((i) => Math.fround(row[i]!)));
          expect(Array.from(all.ids.subarray(r * vocab, (r + 1) * vocab)).sort((a, b) => a - b)).toEqual(row.map((_, i) => i)); // a permutation
          // top-k ties +Infinity with FLOAT32_MAX (its logits are the row's own), as argmaxRows and the sampler do: top-1 is the argmax.
          if (row.some((v) => Number.isFinite(v) || v === Infinity)) expect(top.ids[r * k]).toBe(argmaxRows(logits, rows, vocab)[r]);
        }
      }),
    );
  });
});

describe("validateOutputs and requireLogitsOnly", () => {
  const batch: StepBatch = { tokens: Int32Array.of(1, 2, 3), positions: Int32Array.of(0, 1, 2), slots: Int32Array.of(0, 0, 0), logitRows: Int32Array.of(2) };

  it("accepts every output with its arguments", () => {
    for (const extra of [
      {},
      { output: "logits" as const },
      { output: "argmax" as const },
      { output: "top-k" as const, topK: 1 },
      { output: "top-k" as const, topK: 10 },
      { hiddenRows: Int32Array.of(0, 2) },
      { hiddenRows: new Int32Array(0) },
    ]) {
      expect(thrown(() => validateOutputs({ ...batch, ...extra }, 10))).toBeUndefined();
    }
  });

  it.each([
    ["unknown output", { output: "probs" as never }, "output"],
    ["top-k without topK", { output: "top-k" as const }, "topK"],
    ["topK 0", { output: "top-k" as const, topK: 0 }, "topK"],
    ["topK past vocab", { output: "top-k" as const, topK: 11 }, "topK"],
    ["fractional topK", { output: "top-k" as const, topK: 1.5 }, "topK"],
    ["topK with argmax", { output: "argmax" as const, topK: 3 }, "topK"],
    ["topK with logits by default", { topK: 3 }, "topK"],
    ["hiddenRows of a plain array", { hiddenRows: [0] as unknown as Int32Array }, "hiddenRows"],
    ["hiddenRows out of the batch", { hiddenRows: Int32Array.of(3) }, "hiddenRows[0]"],
    ["hiddenRows negative", { hiddenRows: Int32Array.of(-1) }, "hiddenRows[0]"],
    ["hiddenRows repeated", { hiddenRows: Int32Array.of(1, 1) }, "hiddenRows[1]"],
    ["hiddenRows decreasing", { hiddenRows: Int32Array.of(2, 0) }, "hiddenRows[1]"],
  ])("validateOutputs refuses %s with KERNELS_BAD_BATCH naming the field", (_, extra, field) => {
    expect(thrown(() => validateOutputs({ ...batch, ...extra }, 10))).toEqual({ code: "KERNELS_BAD_BATCH", field });
  });

  it("requireLogitsOnly refuses argmax, top-k and hidden rows, and takes plain or explicit-logits batches", () => {
    expect(thrown(() => requireLogitsOnly({ ...batch, output: "argmax" }))).toEqual({ code: "KERNELS_BAD_BATCH", field: "output" });
    expect(thrown(() => requireLogitsOnly({ ...batch, output: "top-k", topK: 2 }))).toEqual({ code: "KERNELS_BAD_BATCH", field: "output" });
    expect(thrown(() => requireLogitsOnly({ ...batch, hiddenRows: Int32Array.of(0) }))).toEqual({ code: "KERNELS_BAD_BATCH", field: "hiddenRows" });
    expect(thrown(() => requireLogitsOnly(batch))).toBeUndefined();
    expect(thrown(() => requireLogitsOnly({ ...batch, output: "logits", hiddenRows: new Int32Array(0) }))).toBeUndefined();
  });
});

describe("forwardBatch on a model without forward()", () => {
  const weights = conformanceModel({ seed: 21 });
  const vocab = weights.config.vocabSize;

  /** The reference model seen through the plain contract-1 surface only (no forward). */
  async function stepOnly(): Promise<LoadedModel> {
    const inner = await referenceBackend().loadModel(weights, { contextLength: 16, maxSequences: 2 });
    return {
      config: inner.config,
      options: inner.options,
      allocateSequence: () => inner.allocateSequence(),
      freeSequence: (slot) => inner.freeSequence(slot),
      truncateSequence: (slot, length) => inner.truncateSequence(slot, length),
      sequenceLength: (slot) => inner.sequenceLength(slot),
      step: (batch) => inner.step(batch),
      dispose: () => inner.dispose(),
    };
  }

  const prompt = (slot: number, extra: Partial<StepBatch> = {}): StepBatch => ({
    tokens: Int32Array.of(4, 8, 15, 16),
    positions: Int32Array.of(0, 1, 2, 3),
    slots: new Int32Array(4).fill(slot),
    logitRows: Int32Array.of(0, 2, 3),
    ...extra,
  });

  it("derives argmax and top-k on the host from step's logits", async () => {
    const model = await stepOnly();
    const slot = model.allocateSequence();
    const { logits, argmax, topK, hidden } = await forwardBatch(model, prompt(slot));
    expect(logits).toHaveLength(3 * vocab);
    expect(argmax === undefined && topK === undefined && hidden === undefined).toBe(true);
    model.truncateSequence(slot, 0);
    const derived = await forwardBatch(model, prompt(slot, { output: "argmax" }));
    expect(derived.logits).toHaveLength(0);
    expect(derived.argmax).toEqual(argmaxRows(logits, 3, vocab));
    for (const k of [1, 5, vocab]) {
      model.truncateSequence(slot, 0);
      expect((await forwardBatch(model, prompt(slot, { output: "top-k", topK: k }))).topK).toEqual(topKRows(logits, 3, vocab, k));
    }
  });

  it("refuses hidden rows (KERNELS_UNSUPPORTED_CONFIG) and bad outputs (KERNELS_BAD_BATCH) before stepping", async () => {
    const model = await stepOnly();
    const slot = model.allocateSequence();
    await expect(forwardBatch(model, prompt(slot, { hiddenRows: Int32Array.of(3) }))).rejects.toMatchObject({
      code: "KERNELS_UNSUPPORTED_CONFIG",
      field: "hiddenRows",
    });
    await expect(forwardBatch(model, prompt(slot, { output: "top-k", topK: vocab + 1 }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH", field: "topK" });
    await expect(forwardBatch(model, prompt(slot, { output: "argmax", topK: 2 }))).rejects.toMatchObject({ code: "KERNELS_BAD_BATCH", field: "topK" });
    expect(model.sequenceLength(slot)).toBe(0);
    // An empty hiddenRows asks for nothing and is taken: an empty hidden comes back, as from every forward().
    const empty = await forwardBatch(model, prompt(slot, { hiddenRows: new Int32Array(0) }));
    expect(empty.logits).toHaveLength(3 * vocab);
    expect(empty.hidden).toEqual(new Float32Array(0));
  });
});
