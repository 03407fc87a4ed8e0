// The capability checks can fail: deliberately broken backends (wrappers of the reference) are caught, honest ones pass.
import { describe, expect, it, vi } from "vitest";
import { isHaloError } from "@halo/errors";
import type { Backend, BackendCapabilities } from "../contract/backend.js";
import type { LoadedModel, SequenceState } from "../contract/loaded-model.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { rmsNormRows } from "../reference/rms-norm.js";
import { capabilityChecks } from "./capability-checks.js";
import { checkKvHandoff } from "./kv-handoff.js";
import { wrapBackend } from "./wrap-backend.js";
import { defaultConformanceModels, runConformance, type ConformanceTestContext } from "./run-conformance.js";

const [model] = defaultConformanceModels();
const models = [model!];

/** The reference backend with its loaded models' methods replaced by `patch` and its capabilities by `caps`. */
function wrapped(
  patch: (inner: LoadedModel) => Partial<LoadedModel>,
  caps: Partial<BackendCapabilities> = {},
  backendPatch: Partial<Backend> = {},
): () => Backend {
  return () => ({ ...wrapBackend(referenceBackend(), { name: "broken", capabilities: caps, model: patch }), ...backendPatch });
}

/** Runs the checks whose name starts with `prefix`; returns the first failure's code (or "passed"). */
async function outcome(factory: () => Backend, prefix: string): Promise<string> {
  const checks = capabilityChecks(factory, models, { promptLength: 6, contextLength: 32 }).filter((c) => c.name.startsWith(prefix));
  expect(checks.length).toBeGreaterThan(0);
  for (const check of checks) {
    try {
      await check.run();
    } catch (error) {
      return isHaloError(error) ? error.code : String(error);
    }
  }
  return "passed";
}

const MISMATCH = "KERNELS_CONFORMANCE_MISMATCH";

describe("capability checks catch broken backends", () => {
  it("an argmax off by one", async () => {
    const broken = wrapped((m) => ({
      forward: async (batch) => {
        const result = await m.forward!(batch);
        return result.argmax === undefined ? result : { ...result, argmax: result.argmax.map((id) => (id + 1) % m.config.vocabSize) };
      },
    }));
    expect(await outcome(broken, "outputs/")).toBe(MISMATCH);
  });

  it("top-k ids in the wrong order", async () => {
    const broken = wrapped((m) => ({
      forward: async (batch) => {
        const result = await m.forward!(batch);
        return result.topK === undefined ? result : { ...result, topK: { ...result.topK, ids: result.topK.ids.slice().reverse() } };
      },
    }));
    expect(await outcome(broken, "outputs/")).toBe(MISMATCH);
  });

  it("an argmax step that writes other KV than a plain step", async () => {
    const broken = wrapped((m) => ({
      forward: async (batch) => {
        const result = await m.forward!(batch);
        if (batch.output !== "argmax") return result;
        // Rewrite the rows just stepped with the next token id each: the argmax is right, the cache is not.
        const starts = new Map<number, number>();
        batch.slots.forEach((slot, i) => starts.set(slot, Math.min(starts.get(slot) ?? Infinity, batch.positions[i]!)));
        for (const [slot, start] of starts) m.truncateSequence(slot, start);
        await m.step({
          tokens: batch.tokens.map((t) => (t + 1) % m.config.vocabSize),
          positions: batch.positions,
          slots: batch.slots,
          logitRows: new Int32Array(0),
        });
        return result;
      },
    }));
    expect(await outcome(broken, "outputs/")).toBe(MISMATCH);
  });

  it("hidden states taken after the output norm", async () => {
    const { outputNorm, config } = model!.weights;
    const broken = wrapped((m) => ({
      forward: async (batch) => {
        const result = await m.forward!(batch);
        return result.hidden === undefined || result.hidden.length === 0
          ? result
          : { ...result, hidden: rmsNormRows(result.hidden, outputNorm.toFloat32(), config.rmsNormEps) };
      },
    }));
    expect(await outcome(broken, "hiddenRows/")).toBe(MISMATCH);
  });

  it("an import that drops the last layer", async () => {
    const broken = wrapped((m) => ({
      importSequence: async (state) => {
        const perLayer = state.keys.length / state.numLayers;
        const keys = state.keys.slice();
        const values = state.values.slice();
        keys.fill(0, keys.length - perLayer);
        values.fill(0, values.length - perLayer);
        return m.importSequence!({ ...state, keys, values });
      },
    }));
    expect(await outcome(broken, "sequenceTransfer/")).toBe(MISMATCH);
    await expect(checkKvHandoff(referenceBackend(), broken(), { weights: model!.weights, prompt: [1, 2, 3, 4, 5], contextLength: 32 })).rejects.toMatchObject({
      code: MISMATCH,
    });
  });

  it("an export that hands out the same object twice (not a copy)", async () => {
    const broken = wrapped((m) => {
      const cached = new Map<number, SequenceState>();
      return {
        exportSequence: async (slot) => {
          const state = cached.get(slot) ?? (await m.exportSequence!(slot));
          cached.set(slot, state);
          return state;
        },
      };
    });
    expect(await outcome(broken, "sequenceTransfer/export")).toBe(MISMATCH);
  });

  it("a copy that does nothing, and a copy that only copies the length", async () => {
    expect(
      await outcome(
        wrapped(() => ({ copySequence: async () => {} })),
        "copySequence/",
      ),
    ).toBe(MISMATCH);
    const lengthOnly = wrapped((m) => ({
      copySequence: async (from, to) => {
        const target = m.sequenceLength(to);
        const length = m.sequenceLength(from);
        if (target >= length) m.truncateSequence(to, length);
        else throw new Error("test wrapper: target too short");
      },
    }));
    expect(await outcome(lengthOnly, "copySequence/")).toBe(MISMATCH);
  });

  it("a copy that refuses from === to", async () => {
    const broken = wrapped((m) => ({
      copySequence: async (from, to) => {
        if (from === to) throw new Error("same slot");
        await m.copySequence!(from, to);
      },
    }));
    await expect(outcome(broken, "misuse/copySequence")).resolves.toMatch(/same slot/);
  });

  it("claims without methods, and a preferredBatchTokens past maxBatchTokens", async () => {
    expect(
      await outcome(
        wrapped(() => ({ copySequence: undefined as never })),
        "capabilities/every",
      ),
    ).toBe(MISMATCH);
    expect(
      await outcome(
        wrapped(() => ({ forward: undefined as never })),
        "capabilities/every",
      ),
    ).toBe(MISMATCH);
    expect(
      await outcome(
        wrapped(() => ({}), { preferredBatchTokens: 5000 }),
        "capabilities/preferred",
      ),
    ).toBe(MISMATCH);
  });

  it("estimates whose sums do not add up or that ignore contextLength", async () => {
    const inner = referenceBackend();
    const off = wrapped(() => ({}), {}, { estimateMemory: (c, o) => ({ ...inner.estimateMemory!(c, o), kvBytes: 1 }) });
    expect(await outcome(off, "estimateMemory/")).toBe(MISMATCH);
    const fixed = wrapped(() => ({}), {}, { estimateMemory: (c, o) => inner.estimateMemory!(c, { ...o, contextLength: 8 }) });
    expect(await outcome(fixed, "estimateMemory/")).toBe(MISMATCH);
    const wider = wrapped(
      () => ({}),
      {},
      {
        estimateMemory: (c, o) => {
          const e = inner.estimateMemory!(c, o);
          const perPosition = e.kvBytesPerPosition * (o.kvDtype === "int8" ? 2 : 1);
          const kvBytes = (o.maxSequences ?? 1) * o.contextLength * perPosition;
          return { ...e, kvBytesPerPosition: perPosition, kvBytes, totalBytes: e.weightsBytes + kvBytes + e.scratchBytes };
        },
      },
    );
    expect(await outcome(wider, "estimateMemory/")).toBe(MISMATCH);
  });
});

describe("capability checks on backends that claim nothing", () => {
  const bare = wrapped(
    () => ({ forward: undefined as never, copySequence: undefined as never, exportSequence: undefined as never, importSequence: undefined as never }),
    { outputs: ["logits"], hiddenRows: false, copySequence: false, sequenceTransfer: false },
    { estimateMemory: undefined as never },
  );

  it("skip the unclaimed checks with the reason (not a pass); the output checks still run through forwardBatch's host fallback", async () => {
    const skipped: string[] = [];
    const passed: string[] = [];
    for (const check of capabilityChecks(bare, models, { promptLength: 6, contextLength: 32 })) {
      const result = await check.run();
      if (result === undefined) passed.push(check.name);
      else skipped.push(`${check.name}: ${result.skipped}`);
    }
    for (const capability of ["hiddenRows", "copySequence", "sequenceTransfer", "estimateMemory"]) {
      expect(skipped.some((line) => line.startsWith(`${capability}/`) && line.endsWith(`does not claim ${capability}`))).toBe(true);
    }
    expect(passed.some((name) => name.startsWith("outputs/"))).toBe(true);
    expect(passed.some((name) => name.startsWith("hiddenRows/") || name.startsWith("copySequence/"))).toBe(false);
  });

  it("runConformance reports an unclaimed check through the runner's skip", async () => {
    const bodies = new Map<string, (context?: ConformanceTestContext) => Promise<void>>();
    runConformance(bare, { describe: (_name, body) => body(), it: (name, body) => void bodies.set(name, body) }, { hasOps: false, models });
    const [name, body] = [...bodies].find(([name]) => name.startsWith("hiddenRows/"))!;
    const skip = vi.fn();
    await body({ skip });
    expect(skip, name).toHaveBeenCalledWith("broken does not claim hiddenRows");
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    await body();
    expect(warn.mock.calls.map((call) => String(call[0]))).toEqual([`conformance: ${name} not run: broken does not claim hiddenRows`]);
    warn.mockRestore();
  });

  it("the hand-off measures the reference against itself as exact", async () => {
    const result = await checkKvHandoff(referenceBackend(), referenceBackend({ splitKvTile: 0 }), {
      weights: model!.weights,
      prompt: [1, 2, 3, 4, 5],
      kvDtype: "int8",
      contextLength: 32,
    });
    expect(result.tokens).toHaveLength(4);
    expect(result.maxDifference).toBe(0);
  });
});
