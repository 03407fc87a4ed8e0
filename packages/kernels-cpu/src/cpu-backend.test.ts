// Conformance of the CPU backend on every kernel path this machine has, plus its own option and misuse checks.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { runConformance } from "@halo/kernels";
import { createBackend } from "./cpu-backend.js";
import { availableIsas } from "./available-isas.js";
import { KernelsCpuErrorCode } from "./errors.js";

for (const isa of availableIsas()) {
  runConformance(() => createBackend({ isa, threads: 2 }), { describe, it }, { name: `cpu ${isa}`, hasOps: true });
}

describe("createBackend options", () => {
  it.each([0, -1, 1025, 1.5, Number.NaN, "2" as unknown as number])("refuses threads=%s with KERNELS_CPU_BAD_OPTION", (threads) => {
    try {
      createBackend({ threads });
      expect.unreachable();
    } catch (error) {
      expect(isHaloError(error) && error.code).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    }
  });

  it("refuses unknown isa and lmHead values", () => {
    expect(() => createBackend({ isa: "sse9" as never })).toThrow(/unknown instruction-set path/);
    expect(() => createBackend({ lmHead: "q4" as never })).toThrow(/unknown LM head storage/);
  });

  it("probes available and names its kernels", async () => {
    const probe = await createBackend({ threads: 1 }).probe();
    expect(probe.available).toBe(true);
    expect(probe.reason).toContain(availableIsas()[0]!);
  });
});
