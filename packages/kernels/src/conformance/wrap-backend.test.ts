// delegateLoadedModel / wrapBackend: every call reaches the inner model unless replaced; undefined removes an optional method.
import { describe, expect, it } from "vitest";
import { forwardBatch } from "../contract/forward.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { defaultConformanceModels } from "./run-conformance.js";
import { sequenceBatch } from "./model-checks.js";
import { wrapBackend } from "./wrap-backend.js";

const weights = defaultConformanceModels()[0]!.weights;

describe("wrapBackend", () => {
  it("delegates loading, slots, steps and the contract-2 methods, with the name and capabilities laid over", async () => {
    const inner = referenceBackend();
    const wrapped = wrapBackend(inner, { name: "traced", capabilities: { preferredBatchTokens: 7 } });
    expect(wrapped.name).toBe("traced");
    expect(wrapped.capabilities()).toEqual({ ...inner.capabilities(), preferredBatchTokens: 7 });
    const model = await wrapped.loadModel(weights, { contextLength: 16, maxSequences: 2 });
    const plain = await inner.loadModel(weights, { contextLength: 16 });
    try {
      const a = model.allocateSequence();
      const b = plain.allocateSequence();
      expect(await model.step(sequenceBatch(a, [1, 2, 3], 0, "last"))).toEqual(await plain.step(sequenceBatch(b, [1, 2, 3], 0, "last")));
      expect(model.sequenceLength(a)).toBe(3);
      expect(typeof model.forward).toBe("function");
      const copy = model.allocateSequence();
      await model.copySequence!(a, copy);
      expect(model.sequenceLength(copy)).toBe(3);
      expect((await model.exportSequence!(copy)).length).toBe(3);
    } finally {
      model.dispose();
      plain.dispose();
    }
  });

  it("replaces the members it is given, and undefined removes an optional method (forwardBatch then derives on the host)", async () => {
    const steps: number[] = [];
    const wrapped = wrapBackend(referenceBackend(), {
      model: (inner) => ({
        step: (batch) => (steps.push(batch.tokens.length), inner.step(batch)),
        forward: undefined,
        copySequence: undefined,
      }),
    });
    const model = await wrapped.loadModel(weights, { contextLength: 16 });
    try {
      expect("forward" in model).toBe(false);
      expect("copySequence" in model).toBe(false);
      expect(typeof model.exportSequence).toBe("function");
      const slot = model.allocateSequence();
      const { argmax } = await forwardBatch(model, sequenceBatch(slot, [4, 5], 0, "last", { output: "argmax" }));
      expect(argmax).toHaveLength(1);
      expect(steps).toEqual([2]);
    } finally {
      model.dispose();
    }
  });
});
