// The backends installed with the engine (its optional dependencies, found by discovery like any other): the GPU
// backend ranks first, and on a machine whose GPU it cannot open `auto` runs the next one and says why hip did not run.
import { afterEach, describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { discoverBackends, loadModel } from "./index.js";

const savedDevice = process.env.HALO_HIP_DEVICE;
afterEach(() => {
  if (savedDevice === undefined) delete process.env.HALO_HIP_DEVICE;
  else process.env.HALO_HIP_DEVICE = savedDevice;
});

describe("the backends installed with the engine", () => {
  it("hip (the GPU backend) is found and ranks above cpu and reference", async () => {
    const { factories, packages, refused } = await discoverBackends();
    expect(refused).toEqual([]);
    const names = factories.map((f) => f.name);
    expect(names).toContain("hip");
    expect(packages["hip"]).toBe("@halo/kernels-hip");
    expect(names.indexOf("hip")).toBeLessThan(names.indexOf("reference"));
    if (names.includes("cpu")) expect(names.indexOf("hip")).toBeLessThan(names.indexOf("cpu"));
  });

  it("auto runs hip only where its probe opens a device; otherwise the next backend runs and hip is reported skipped with the probe's reason", async () => {
    delete process.env.HALO_HIP_DEVICE;
    const { factories } = await discoverBackends();
    const hip = factories.find((f) => f.name === "hip")!;
    const probe = await hip.probe();
    expect(probe.reason).not.toBe("");
    const engine = await loadModel(synthModel({ seed: 5 }), { contextLength: 32, maxSequences: 1 });
    try {
      if (probe.available) {
        // A machine with a GPU the package has code for: auto takes it, and it is never the emulator unasked.
        expect(engine.backendFactory?.name).toBe("hip");
        expect(probe.details?.["kind"]).not.toBe("emulator");
      } else {
        expect(engine.backendFactory?.name).not.toBe("hip");
        expect(engine.skippedBackends[0]).toEqual({ name: "hip", reason: probe.reason });
        // The reason says what is missing: the addon, the runtime library, the device or code for its architecture.
        expect(probe.reason).toMatch(/addon|runtime|driver|no GPU|device|architecture|code/i);
      }
    } finally {
      engine.dispose();
    }
  });

  it("HALO_HIP_DEVICE=emulator makes hip available as the CPU emulator, and says so", async () => {
    process.env.HALO_HIP_DEVICE = "emulator";
    const hip = (await discoverBackends()).factories.find((f) => f.name === "hip")!;
    const probe = await hip.probe();
    if (probe.details?.["kind"] === undefined && /addon/.test(probe.reason)) {
      // No addon (a machine without a C++ toolchain built none): the probe must say so, not pretend; the test
      // command (HALO_REQUIRE_NATIVE=1) builds it, so there this is a failure.
      expect(probe.available).toBe(false);
      expect(process.env.HALO_REQUIRE_NATIVE, `the hip addon is missing: ${probe.reason}`).not.toBe("1");
      return;
    }
    expect(probe).toMatchObject({ available: true, details: { device: "emulator", kind: "emulator" } });
    expect(probe.reason).toMatch(/emulator/i);
  });
});
