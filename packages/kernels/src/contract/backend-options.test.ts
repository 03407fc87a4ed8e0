// checkBackendOptions (the option check of every factory's create) and the reference factory that uses it.
import { describe, expect, it } from "vitest";
import { totalmem } from "node:os";
import { referenceBackend, referenceBackendFactory } from "../reference/reference-backend.js";
import { checkBackendOptions } from "./backend-options.js";

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("checkBackendOptions", () => {
  it("returns an object whose keys are all allowed, the same object", () => {
    const options = { threads: 2 };
    expect(checkBackendOptions("mine", ["threads", "device"], options)).toBe(options);
    expect(checkBackendOptions("mine", [], {})).toEqual({});
  });

  it("refuses a non-object and an unknown key with KERNELS_BAD_OPTION naming <backend>.<key> and the allowed keys", () => {
    for (const [bad, actual] of [
      [null, "null"],
      [[1], "an array"],
      ["x", "string"],
      [3, "number"],
    ] as const) {
      expect(refusal(() => checkBackendOptions("mine", ["threads"], bad))).toMatchObject({ code: "KERNELS_BAD_OPTION", field: "mine", actual });
    }
    expect(refusal(() => checkBackendOptions("mine", ["threads", "device"], { threads: 1, lmHead: "int8" }))).toMatchObject({
      code: "KERNELS_BAD_OPTION",
      field: "mine.lmHead",
      expected: "threads, device",
      actual: "lmHead",
    });
  });

  it("is what referenceBackendFactory.create checks with", () => {
    expect(refusal(() => referenceBackendFactory.create({ threads: 2 }))).toMatchObject({ code: "KERNELS_BAD_OPTION", field: "reference.threads" });
    expect(refusal(() => referenceBackendFactory.create(null as never))).toMatchObject({ code: "KERNELS_BAD_OPTION", field: "reference" });
    expect(referenceBackendFactory.create({ splitKvTile: 4 }).name).toBe("reference split-kv 4");
  });
});

describe("reference probe", () => {
  it("reports host memory (the engine refuses loads that cannot fit)", async () => {
    for (const probe of [await referenceBackendFactory.probe(), await referenceBackend().probe()]) {
      expect(probe.available).toBe(true);
      expect(probe.memory?.kind).toBe("host");
      expect(probe.memory?.totalBytes).toBe(totalmem());
      expect(probe.memory!.freeBytes).toBeGreaterThan(0);
      expect(probe.memory!.freeBytes).toBeLessThanOrEqual(totalmem());
    }
  });
});
