import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "@halo/h1b-format";
import { referenceBackend, type Backend } from "@halo/kernels";
import { loadModel } from "./index.js";

/** A backend that is never available, with the reason a real one would give. */
function unavailable(name: string, reason: string): Backend {
  const inner = referenceBackend();
  return { ...inner, name, probe: async () => ({ available: false, reason }) };
}

describe("backend choice and the skipped-backend report", () => {
  it("runs the first entry of a list that can, and lists why each earlier one was passed over", async () => {
    const engine = await loadModel(synthModel({ seed: 2 }), {
      backend: [unavailable("gpu", "no device. Fix: plug one in"), referenceBackend()],
      contextLength: 32,
    });
    try {
      expect(engine.backend).toBe("reference");
      expect(engine.skippedBackends).toEqual([{ name: "gpu", reason: "no device. Fix: plug one in" }]);
    } finally {
      engine.dispose();
    }
  });

  it("reports nothing skipped when the first choice runs", async () => {
    const engine = await loadModel(synthModel({ seed: 2 }), { backend: "reference", contextLength: 32 });
    try {
      expect(engine.skippedBackends).toEqual([]);
    } finally {
      engine.dispose();
    }
  });

  it("auto: runs cpu when its native addon loads, else names why it fell back to reference", async () => {
    const engine = await loadModel(synthModel({ seed: 2 }), { contextLength: 32 });
    try {
      if (engine.backend === "cpu") expect(engine.skippedBackends).toEqual([]);
      else {
        expect(engine.backend).toBe("reference");
        expect(engine.skippedBackends.map((s) => s.name)).toEqual(["cpu"]);
        expect(engine.skippedBackends[0]!.reason).toMatch(/Fix: `?npm (install|rebuild) @halo\/kernels-cpu/);
      }
    } finally {
      engine.dispose();
    }
  });

  it("refuses when no entry can run, listing every reason", async () => {
    const error = await loadModel(synthModel({ seed: 2 }), { backend: [unavailable("a", "reason A"), unavailable("b", "reason B")], contextLength: 32 }).catch((e: unknown) => e);
    expect(isHaloError(error) && error.code).toBe("ENGINE_NO_BACKEND");
    expect((error as Error).message).toContain("a: reason A; b: reason B");
  });
});
