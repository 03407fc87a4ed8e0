// The whole-model checks can fail: an orchestration bug that keeps every greedy token is caught by the logit tolerance.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import type { Backend } from "../contract/backend.js";
import type { LoadedModel, StepBatch, StepResult } from "../contract/loaded-model.js";
import { referenceBackend } from "../reference/reference-backend.js";
import { modelChecks, REFERENCE_ITSELF } from "./model-checks.js";
import { defaultConformanceModels } from "./run-conformance.js";
import { TOLERANCES } from "./tolerances.js";
import { wrapBackend } from "./wrap-backend.js";

const [model] = defaultConformanceModels();
const OPTIONS = { promptLength: 6, greedyTokens: 4, contextLength: 32 } as const;

/**
 * The reference with `bump` added to the largest logit of every row at `position`, on every path (step, forward's
 * logits and top-k): greedy tokens unchanged, and every batching of a sequence agrees with every other, so only a
 * comparison with an independent path sees it.
 */
function bumped(bump: number, position: number): () => Backend {
  const apply = (inner: LoadedModel, batch: StepBatch, result: StepResult): StepResult => {
    const vocab = inner.config.vocabSize;
    batch.logitRows.forEach((row, i) => {
      if (batch.positions[row] !== position) return;
      if (result.logits.length > 0) {
        let best = 0;
        for (let v = 1; v < vocab; v++) if (result.logits[i * vocab + v]! > result.logits[i * vocab + best]!) best = v;
        result.logits[i * vocab + best] = result.logits[i * vocab + best]! + bump;
      }
      if (result.topK !== undefined) result.topK.logits[i * result.topK.k] = result.topK.logits[i * result.topK.k]! + bump;
    });
    return result;
  };
  return () =>
    wrapBackend(referenceBackend(), {
      name: "bumped",
      model: (inner) => ({
        step: async (batch) => apply(inner, batch, { logits: await inner.step(batch) }).logits,
        forward: async (batch) => apply(inner, batch, await inner.forward!(batch)),
      }),
    });
}

/** Runs the checks whose name contains `part`: the first failure's code, "skipped: …", or "passed". */
async function outcome(factory: () => Backend, part: string): Promise<string> {
  const checks = modelChecks(factory, [model!], OPTIONS).filter((c) => c.name.includes(part));
  expect(checks.length).toBeGreaterThan(0);
  for (const check of checks) {
    try {
      const result = await check.run();
      if (result !== undefined) return `skipped: ${result.skipped}`;
    } catch (error) {
      return isHaloError(error) ? error.code : String(error);
    }
  }
  return "passed";
}

const MISMATCH = "KERNELS_CONFORMANCE_MISMATCH";
// The first decode step's position: its logits are compared, and its greedy token is fed back.
const DECODE = OPTIONS.promptLength;

describe("whole-model checks catch an orchestration bug that keeps the greedy tokens", () => {
  it("a logit row off by 1e-3 (10× modelLogits) fails against the float64 oracle and against the reference", async () => {
    expect(1e-3).toBeGreaterThanOrEqual(10 * TOLERANCES.modelLogits);
    expect(await outcome(bumped(1e-3, DECODE), "greedy per-token kv=f32 matches the float64 oracle")).toBe(MISMATCH);
    expect(await outcome(bumped(1e-3, DECODE), "greedy per-token kv=f32 matches reference")).toBe(MISMATCH);
    expect(await outcome(bumped(1e-3, DECODE), "greedy per-token kv=int8 matches reference")).toBe(MISMATCH);
  });

  it("the same wrapper without the bug passes, and the batching checks cannot see the bug (it is consistent)", async () => {
    expect(await outcome(bumped(0, DECODE), "matches")).toBe("passed");
    expect(await outcome(bumped(1e-3, DECODE), "batched equal each alone")).toBe("passed");
    expect(await outcome(bumped(1e-3, 2), "prefill in one step equals token by token")).toBe("passed");
  });

  it("on the reference itself the comparisons with the reference are skipped with the reason; the oracle checks run", async () => {
    expect(await outcome(() => referenceBackend(), "kv=f16 matches reference")).toBe(`skipped: ${REFERENCE_ITSELF}`);
    expect(await outcome(() => referenceBackend(), "matches the float64 oracle")).toBe("passed");
  });
});
