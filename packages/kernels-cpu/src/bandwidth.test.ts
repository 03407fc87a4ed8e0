import { describe, expect, it } from "vitest";
import { measureReadBandwidth } from "./bandwidth.js";
import { KernelsCpuErrorCode } from "./errors.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

/** Below this, a read of 64 MiB from memory would be broken rather than slow (a DDR4 channel streams ~20 GB/s). */
const MIN_PLAUSIBLE_GBPS = 0.5;
/** Above this, the passes could not have come from DRAM on any current machine (a bug in the byte count or timer). */
const MAX_PLAUSIBLE_GBPS = 2000;

describe("measureReadBandwidth", () => {
  it("measures a plausible read rate with one and two threads, off the JS thread", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const [one, two] = [await measureReadBandwidth({ threads: 1, mib: 64 }), await measureReadBandwidth({ threads: 2, mib: 64 })];
    clearInterval(timer);
    for (const gbps of [one, two]) {
      expect(Number.isFinite(gbps)).toBe(true);
      expect(gbps).toBeGreaterThan(MIN_PLAUSIBLE_GBPS);
      expect(gbps).toBeLessThan(MAX_PLAUSIBLE_GBPS);
    }
    // The event loop kept turning while the probe ran.
    expect(ticks).toBeGreaterThan(0);
  });

  it("refuses impossible options with KERNELS_CPU_BAD_OPTION", async () => {
    for (const options of [{ threads: 0 }, { threads: 10_000 }, { threads: 1.5 }, { mib: 1 }, { mib: 1e9 }, { mib: Number.NaN }]) {
      expect(await haloCodeOf(() => measureReadBandwidth(options)), JSON.stringify(options)).toBe(KernelsCpuErrorCode.KERNELS_CPU_BAD_OPTION);
    }
  });
});
